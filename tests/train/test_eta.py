"""Rough progress and queue-wait numbers from training events."""

from __future__ import annotations

import pytest

from medviz.train.eta import progress_numbers, wait_estimate
from medviz.train.events import TrainEvent


def _run(epochs_done: float, epochs: int, epoch_s: float) -> list[TrainEvent]:
    """Events of a run that has trained ``epochs_done`` epochs of ``epochs``, ``epoch_s`` seconds each."""
    whole = int(epochs_done)
    step = round((epochs_done - whole) * 10)
    return [TrainEvent("start", epochs=epochs),
            TrainEvent("step", epoch=whole, step=step, steps_per_epoch=10, epochs=epochs,
                       elapsed_s=epochs_done * epoch_s)]


def test_progress_numbers():
    p = progress_numbers(_run(2.5, 10, 4.0))
    assert p["epoch_s"] == pytest.approx(4.0) and p["eta_s"] == pytest.approx(30.0)
    assert p["fraction"] == pytest.approx(0.25) and p["epoch"] == 3
    assert progress_numbers([TrainEvent("start")]) == {}


def test_wait_estimate_adds_the_runs_ahead_to_the_running_runs_time_left():
    running = [_run(2.5, 10, 4.0)]  # 30 s left
    assert wait_estimate(running, [], slots=1) == pytest.approx(30.0)
    assert wait_estimate(running, [5, 2], slots=1) == pytest.approx(30.0 + 7 * 4.0)
    two = [_run(2.5, 10, 4.0), _run(9.0, 10, 2.0)]  # 30 s and 2 s left; 3 s per epoch on average
    assert wait_estimate(two, [5], slots=2) == pytest.approx(2.0 + 5 * 3.0)
    assert wait_estimate([[TrainEvent("start")]], [3], slots=1) is None  # nothing to extrapolate from yet
