"""Training events delivered to listeners (command-line progress bar, Training page, tests)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class TrainEvent:
    """One thing that happened during training.

    Attributes:
        kind: ``"start"``, ``"step"``, ``"epoch"``, ``"end"``, ``"stopped"`` or ``"error"``.
        epoch: 0-based epoch index.
        step: optimiser steps done in this epoch; ``steps_per_epoch`` is the total.
        metrics: for ``step``: ``loss`` and the task's step parts (:meth:`~medviz.train.task.TrainTask.step_metrics`);
            for ``epoch``: ``train_loss``, ``train_<part>`` means plus the task's validation
            metrics; for ``start``: the dataset summary under ``summary``.
        lr: learning rate in use.
        throughput: training samples per second over the epoch so far.
        memory_mb: peak GPU memory (CUDA) or resident memory of the process (CPU), in MB.
        elapsed_s: seconds since the run (or resumed run) started.
        message: human-readable text for ``end``/``stopped``/``error``.
    """

    kind: str
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    epochs: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    lr: float = 0.0
    throughput: float = 0.0
    memory_mb: float = 0.0
    elapsed_s: float = 0.0
    message: str = ""


Listener = Callable[[TrainEvent], None]


class EventLog:
    """A thread-safe list of events: a listener the UI can poll from another thread."""

    def __init__(self) -> None:
        self._events: list[TrainEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: TrainEvent) -> None:
        with self._lock:
            self._events.append(event)

    def snapshot(self) -> list[TrainEvent]:
        with self._lock:
            return list(self._events)

    def epochs(self) -> list[TrainEvent]:
        return [e for e in self.snapshot() if e.kind == "epoch"]
