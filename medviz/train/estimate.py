"""Memory and time per epoch of a training configuration, *measured* on this device.

Method: build the task's data and network, run one warm-up and ``steps`` timed optimiser steps
(fetching the batch from the loader, forward, loss, backward, AdamW update) on real training batches
and extrapolate their median to the number of steps per epoch; then time the task's own validation on the first
validation samples (at least two validation batches) and extrapolate to the whole validation split,
because the engine validates after every epoch and an epoch's time includes it. Memory is the CUDA
peak allocation on GPU; on CPU it is the growth of the process's resident memory over those steps
plus the parameter state (weights, gradients and two AdamW moments: 16 bytes per float32
parameter), a lower bound that excludes the data cache.

The estimate is marked ``rough`` (and its ``method`` text says so and why) when it rests on fewer than
two timed steps, the validation could not be timed, the step times varied more than 1.5-fold, or the
machine is busy (1-minute load average at or above the core count: other work then changes the
speed between the estimate and the run); the first epoch also pays the warm-up the estimate leaves out. ``bench/estimate.py``
compares it with measured first epochs.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from medviz.config import select_device
from medviz.train.engine import TrainConfig, TrainingError
from medviz.train.runtime import Dist, make_loaders, to_device
from medviz.train.task import TaskData, TrainTask

MIN_VAL_SAMPLES = 64  # validation samples timed at least (fewer only when the split is smaller)


def estimate(task: TrainTask, cfg: TrainConfig, steps: int = 5) -> dict[str, Any]:
    """Measure ``steps`` training steps and a slice of the validation of ``task`` under ``cfg`` (the
    model is thrown away).

    Returns:
        ``{"device", "params", "param_state_mb", "peak_mb", "step_s", "steps_per_epoch", "train_s",
        "val_s", "epoch_s", "train_samples", "val_samples", "rough", "method"}``: ``step_s`` is one
        training step with its data loading, ``train_s = step_s * steps_per_epoch``, ``val_s`` the
        extrapolated validation and ``epoch_s = train_s + val_s``; seconds are wall-clock on this
        machine now (other work on a shared machine slows them). ``rough`` says the numbers cannot be
        trusted to within a factor 1.5 (see the module docstring).

    Raises:
        TrainingError: the data set is empty or smaller than one batch.
    """
    import psutil
    import torch

    device = select_device(cfg.device)
    data = task.build_data()
    if len(data.train) == 0:
        raise TrainingError("the training split is empty")
    torch.manual_seed(cfg.seed)
    model = task.build_model().to(device).train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    _, loader, _ = make_loaders(data, cfg.batch_size, 0, device, Dist(), cfg.seed)
    n_steps = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    it = iter(loader)
    for i in range(steps + 1):
        t = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        batch = to_device(batch, device, False)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=cfg.amp and device.startswith("cuda")):
            loss = task.training_loss(model, batch)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times) if times else float("nan")
    param_mb = params * 16 / 2**20
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = max(proc.memory_info().rss - rss0, 0) / 2**20 + param_mb
    val_s, timed_val = _validation_seconds(task, data, model, cfg, device)
    train_s = step_s * n_steps
    busy = _busy()
    spread = max(times) / max(min(times), 1e-9) if times else float("inf")
    rough = len(times) < 2 or val_s is None or busy or spread > 1.5
    val_text = (f"validation timed on {timed_val} of {len(data.val)} samples" if val_s is not None
                else "validation could not be timed and is not included")
    notes = [*(["the machine is busy with other work"] if busy else []),
             *([f"step times varied {spread:.1f}-fold"] if times and spread > 1.5 else [])]
    return {"device": device, "params": params, "param_state_mb": param_mb, "peak_mb": peak_mb, "step_s": step_s,
            "steps_per_epoch": n_steps, "train_s": train_s, "val_s": val_s or 0.0,
            "epoch_s": train_s + (val_s or 0.0), "train_samples": len(data.train), "val_samples": len(data.val),
            "rough": rough,
            "method": f"{'rough: ' if rough else ''}measured {len(times)} training step(s) with data loading after "
                      f"1 warm-up on {device} (median), x {n_steps} steps/epoch; {val_text}"
                      f"{'; ' + ', '.join(notes) if notes else ''}"}


def _busy() -> bool:
    """Whether other work keeps every core busy (1-minute load average at or above the core count)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # not available on this platform
        return False


def _validation_seconds(task: TrainTask, data: TaskData, model: Any, cfg: TrainConfig,
                        device: str) -> tuple[float | None, int]:
    """Seconds of the task's validation over the whole validation split, extrapolated from its first
    ``max(2 batches, MIN_VAL_SAMPLES)`` samples, and how many were timed; ``(None, 0)`` when it fails."""
    import torch
    from torch.utils.data import Subset

    n_val = len(data.val)
    if n_val == 0:
        return 0.0, 0
    k = min(n_val, max(2 * cfg.batch_size, MIN_VAL_SAMPLES))
    part = data.val if k == n_val else Subset(data.val, range(k))
    _, _, val_loader = make_loaders(TaskData(train=data.train, val=part), cfg.batch_size, 0, device, Dist(), cfg.seed)
    model.eval()
    t = time.perf_counter()
    try:
        with torch.inference_mode():
            task.validate(model, val_loader, device)
    except (ValueError, ZeroDivisionError, IndexError):  # a metric undefined on a slice (e.g. one class only):
        pass  # the forward passes, the bulk of the time, have run
    except Exception:  # noqa: BLE001 - the estimate must not fail on a task's validation of a partial split
        return None, 0
    finally:
        model.train()
    return (time.perf_counter() - t) * n_val / k, k
