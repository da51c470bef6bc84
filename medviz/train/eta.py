"""Progress and time-left numbers computed from a run's training events (no Streamlit here).

All times are extrapolations from the epochs done so far, so they are rough: an epoch's cost
changes with the data loader's warm-up, validation and other load on the server.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Sequence

from medviz.train.events import TrainEvent


def progress_numbers(events: Sequence[TrainEvent]) -> dict[str, Any]:
    """Fraction done, ETA (s), throughput (samples/s), memory (MB), current epoch (1-based), epochs
    and seconds per epoch from the latest events; empty before the first step."""
    start = next((e for e in reversed(events) if e.kind == "start"), None)
    last = next((e for e in reversed(events) if e.kind in ("step", "epoch")), None)
    if start is None or last is None:
        return {}
    spe = max(last.steps_per_epoch, 1)
    pos = last.epoch + (1.0 if last.kind == "epoch" else last.step / spe)
    done = pos - start.epoch
    per_epoch = last.elapsed_s / done if done > 0 else float("nan")
    return {"fraction": min(pos / max(last.epochs, 1), 1.0), "eta_s": per_epoch * (last.epochs - pos),
            "throughput": last.throughput, "memory_mb": last.memory_mb, "epoch": last.epoch + 1,
            "epochs": last.epochs, "epoch_s": per_epoch}


def wait_estimate(running: Sequence[Sequence[TrainEvent]], ahead_epochs: Sequence[int], slots: int) -> float | None:
    """Rough seconds until a queued run starts.

    Args:
        running: the events of each run now training.
        ahead_epochs: epochs of each queued run ahead of this one, in queue order.
        slots: runs allowed to train at the same time.

    Returns:
        Seconds, assuming each run ahead takes as long per epoch as the running runs do on average;
        None while no running run has finished a step (nothing to extrapolate from).
    """
    numbers = [progress_numbers(ev) for ev in running]
    per_epoch = [n["epoch_s"] for n in numbers if n and math.isfinite(n["epoch_s"])]
    if not per_epoch or len(per_epoch) < len(numbers):
        return None
    free = [max(n["eta_s"], 0.0) for n in numbers] + [0.0] * max(slots - len(numbers), 0)
    heapq.heapify(free)
    epoch_s = sum(per_epoch) / len(per_epoch)
    for epochs in ahead_epochs:
        heapq.heappush(free, heapq.heappop(free) + epochs * epoch_s)
    return free[0]
