"""The one runtime for models shared by every browser session.

A model returned by ``st.cache_resource`` is the *same object* in all sessions, so every inference,
test-time augmentation and Grad-CAM call of every task runs inside :func:`using`: it holds the
model's re-entrant lock, puts every submodule in eval mode, picks the gradient policy and, on exit
(also on errors), restores what it changed. :func:`run_with_oom_fallback` adds the CUDA
out-of-memory ladder (smaller batches, CPU stitching, a CPU copy) with every attempt inside
:func:`using`.

Example:
    >>> with using(model) as m:                        # inference: no autograd graph  # doctest: +SKIP
    ...     logits = m(x)
    >>> with using(model, grad=True) as m:             # Grad-CAM: gradients reach x only  # doctest: +SKIP
    ...     m(x.requires_grad_()).sum().backward()
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.RLock:
    """The re-entrant lock of one model object (created on first use).

    Locks are held in a :class:`weakref.WeakKeyDictionary`, so a model that is garbage-collected takes
    its lock with it.

    Args:
        model: a ``torch.nn.Module`` (any weak-referenceable object).

    Returns:
        The same :class:`threading.RLock` for every call with the same object.
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def model_device(model: Any) -> str:
    """Where ``model``'s first parameter lives (``"cpu"`` for a model without parameters)."""
    p = next(iter(model.parameters()), None)
    return str(p.device) if p is not None else "cpu"


@contextmanager
def using(model: Any, grad: bool = False) -> Iterator[Any]:
    """Run a block with a shared model: locked, in eval mode, with a gradient policy; then restore it.

    On entry the model's re-entrant lock (:func:`model_lock`) is taken and every submodule is put in
    eval mode. With ``grad=False`` the block runs under ``torch.inference_mode()`` (no autograd
    graph). With ``grad=True`` it runs under ``torch.enable_grad()`` (and out of any inference mode)
    with every parameter's ``requires_grad`` switched off, so gradients reach the input only
    (Grad-CAM) and nothing is written into the weights' ``.grad``.

    Restored on exit, also when the block raises: the train/eval mode of every submodule, the
    ``requires_grad`` flag of every parameter, and every parameter's ``.grad`` (a gradient that
    appeared during the block is cleared; one that was there before is put back). Weights and
    buffers are not touched (eval mode keeps batch-norm statistics frozen). Calls nest in the same
    thread; calls from other threads on the same model wait for the lock.

    Args:
        model: a ``torch.nn.Module``, possibly shared by every session.
        grad: False for inference, True when the block needs gradients with respect to its input.

    Yields:
        ``model`` itself.

    Example:
        >>> with using(model) as m:                    # doctest: +SKIP
        ...     y = m(x)
    """
    import torch

    with model_lock(model), ExitStack() as stack:
        modes = [(m, m.training) for m in model.modules()]
        params = list(model.parameters())
        flags = [p.requires_grad for p in params]
        grads = [p.grad for p in params]

        def restore() -> None:
            for m, training in modes:
                m.training = training
            for p, flag, g in zip(params, flags, grads):
                p.requires_grad_(flag)
                p.grad = g

        stack.callback(restore)
        model.eval()
        if grad:
            for p in params:
                p.requires_grad_(False)
            stack.enter_context(torch.inference_mode(False))  # also inside a caller's inference_mode
            stack.enter_context(torch.enable_grad())
        else:
            stack.enter_context(torch.inference_mode())
        yield model


def run_with_oom_fallback(model: Any, attempt: Callable[[Any, int, str, str], T], batch_size: int, *,
                          stitch: bool = False) -> tuple[T, str, list[str]]:
    """``attempt(model, batch_size, device, stitch_device)`` inside :func:`using`, with a CUDA OOM ladder.

    The first attempt runs where the model's parameters are. Each ``torch.OutOfMemoryError`` frees the
    CUDA cache and takes the next step, adding a note: halve the batch (down to 1); then, with
    ``stitch=True`` (sliding-window inference), stitch the output on the CPU; then run on a CPU copy
    of the model (made under the model's lock, with the original batch size). An error on the CPU is
    raised. The shared model is never moved: the CPU copy is a ``copy.deepcopy``; every attempt
    restores the model as :func:`using` describes.

    Args:
        model: the (shared) network.
        attempt: ``(model, batch_size, device, stitch_device) -> result``; runs under
            ``torch.inference_mode()``.
        batch_size: the first batch size.
        stitch: whether ``attempt`` can stitch its output on another device (a step of the ladder).

    Returns:
        ``(result, device used, notes)``.

    Raises:
        torch.OutOfMemoryError: out of memory on the CPU too.
    """
    import torch

    notes: list[str] = []
    device = model_device(model)
    current, bs, stitch_device = model, batch_size, device
    with model_lock(model):
        while True:
            try:
                with using(current) as m:
                    return attempt(m, bs, device, stitch_device), device, notes
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                if bs > 1:
                    bs = max(1, bs // 2)
                    notes.append(f"GPU out of memory: batch size reduced to {bs}.")
                elif stitch and stitch_device != "cpu":
                    stitch_device = "cpu"
                    notes.append("GPU out of memory: stitching the sliding-window output on the CPU.")
                elif device != "cpu":
                    current, device, stitch_device, bs = copy.deepcopy(model).cpu(), "cpu", "cpu", batch_size
                    notes.append("GPU out of memory: running on the CPU instead.")
                else:
                    raise


def set_inference_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count for this process (the ``MEDVIZ_INFER_THREADS`` setting).

    Call it once at server start, before the first model call: threads started afterwards (every
    Streamlit script run, the warm-up, training jobs) use that count. ``None`` keeps torch's default
    (one thread per core). On a small shared host one thread per call lets concurrent sessions' model
    calls run side by side instead of contending for the same cores (see ``bench/load.py``).

    Args:
        threads: a positive count, or None for torch's default.

    Returns:
        The count torch reports afterwards.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
