"""Memory and time per epoch of a training configuration, *measured* on this device.

Method: build the task's data and network, run one warm-up and ``steps`` timed optimiser steps
(forward, loss, backward, AdamW update) on real training batches, and extrapolate to the number of
steps per epoch. Memory is the CUDA peak allocation on GPU; on CPU it is the growth of the
process's resident memory over those steps plus the parameter state (weights, gradients and two
AdamW moments: 16 bytes per float32 parameter), a lower bound that excludes the data cache.
"""

from __future__ import annotations

import time
from typing import Any

from medviz.config import select_device
from medviz.train.engine import TrainConfig, TrainingError
from medviz.train.runtime import Dist, make_loaders, to_device
from medviz.train.task import TrainTask


def estimate(task: TrainTask, cfg: TrainConfig, steps: int = 2) -> dict[str, Any]:
    """Measure ``steps`` training steps of ``task`` under ``cfg`` (the model is thrown away).

    Returns:
        ``{"device", "params", "param_state_mb", "peak_mb", "step_s", "steps_per_epoch", "epoch_s",
        "train_samples", "val_samples", "method"}``; seconds are wall-clock on this machine now
        (other work on a shared machine slows them).

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
        try:
            batch = next(it)
        except StopIteration:
            break
        t = time.perf_counter()
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
    step_s = sum(times) / len(times) if times else float("nan")
    param_mb = params * 16 / 2**20
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = max(proc.memory_info().rss - rss0, 0) / 2**20 + param_mb
    return {"device": device, "params": params, "param_state_mb": param_mb, "peak_mb": peak_mb, "step_s": step_s,
            "steps_per_epoch": n_steps, "epoch_s": step_s * n_steps, "train_samples": len(data.train),
            "val_samples": len(data.val),
            "method": f"measured {len(times)} training step(s) after 1 warm-up on {device}, x {n_steps} steps/epoch "
                      "(validation time not included)"}
