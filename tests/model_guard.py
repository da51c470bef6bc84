"""One test helper for every task: a call on a shared model must leave it exactly as found.

Example:
    >>> from tests.model_guard import assert_model_untouched
    >>> prob = assert_model_untouched(model, lambda: predict_probs(model, x)[0])   # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_GLOBAL_HOOK_DICTS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                      "_global_backward_pre_hooks")


def _hooks(model: Any) -> dict[str, list[int]]:
    """Hook ids per ``module name/hook kind`` (module hooks, parameter tensor hooks, global module hooks)."""
    import torch.nn.modules.module as module_mod

    out: dict[str, list[int]] = {}
    for name, m in model.named_modules():
        for kind in _HOOK_DICTS:
            out[f"{name or '<root>'}.{kind}"] = sorted(getattr(m, kind, None) or {})
    for name, p in model.named_parameters():
        out[f"{name}._tensor_backward_hooks"] = sorted(p._backward_hooks or {})
    for kind in _GLOBAL_HOOK_DICTS:
        out[f"torch.nn.{kind}"] = sorted(getattr(module_mod, kind, None) or {})
    return out


def assert_model_untouched(model: Any, fn: Callable[[], T], thread_grace_s: float = 2.0) -> T:
    """Run ``fn()`` and assert that ``model`` is exactly as before; returns ``fn``'s result.

    Checked after the call: the same state-dict keys with every tensor equal (values, dtype, shape);
    every parameter's ``.grad`` is None; every parameter's ``requires_grad`` flag and every submodule's
    train/eval mode as before; no hook (forward, forward-pre, backward, full-backward, backward-pre,
    tensor hooks on parameters, global module hooks) added; no new thread left alive (threads get
    ``thread_grace_s`` seconds to finish).

    Raises:
        AssertionError: naming what changed.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n or "<root>": m.training for n, m in model.named_modules()}
    hooks = _hooks(model)
    threads = set(threading.enumerate())

    result = fn()

    after = model.state_dict()
    assert list(after) == list(state), f"state-dict keys changed: {sorted(set(after) ^ set(state))}"
    changed = [k for k, v in after.items()
               if v.dtype != state[k].dtype or v.shape != state[k].shape or not bool((v.detach() == state[k]).all())]
    assert not changed, f"state-dict tensors changed: {changed[:10]}"
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert not with_grad, f".grad left on {len(with_grad)} parameter(s), e.g. {with_grad[:5]}"
    new_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    assert new_flags == flags, f"requires_grad changed on {[n for n in flags if new_flags.get(n) != flags[n]][:10]}"
    new_modes = {n or "<root>": m.training for n, m in model.named_modules()}
    assert new_modes == modes, f"train/eval mode changed on {[n for n in modes if new_modes.get(n) != modes[n]][:10]}"
    new_hooks = _hooks(model)
    added = [k for k in new_hooks if new_hooks[k] != hooks.get(k, [])]
    assert not added, f"hooks left on the model: {added[:10]}"
    deadline = time.monotonic() + thread_grace_s
    alive = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    while alive and time.monotonic() < deadline:
        alive[0].join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [t for t in alive if t.is_alive()]
    assert not alive, f"threads left alive: {[t.name for t in alive]}"
    return result
