"""Background jobs: ownership, sharing, one run at a time, stop/resume, promotion."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from medviz.models.registry import list_models
from medviz.train.command import RunOptions, TrainCommand
from medviz.train.engine import TrainConfig
from medviz.train.jobs import JobError, JobManager
from tests.train.toy_task import ToyOptions

ALICE, BOB = "a" * 24, "b" * 24
CONFIG = TrainConfig(epochs=3, batch_size=8, lr=0.01, device="cpu")


def _cmd(options: ToyOptions | None = None, run: RunOptions | None = None, **config) -> TrainCommand:
    """The toy task's command (built in the test: the task is registered by an autouse fixture)."""
    return TrainCommand("toy", run=run or RunOptions(), config=replace(CONFIG, **config), options=options)


def _wait(job, cond, timeout=120):
    deadline = time.monotonic() + timeout
    while not cond(job):
        assert time.monotonic() < deadline, f"job stuck in {job.status}: {job.error}"
        time.sleep(0.05)


def test_jobs_are_private_single_and_resumable(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(step_delay=0.05)))
    with pytest.raises(JobError, match="already in progress"):
        m.start(BOB, _cmd())
    assert m.jobs(BOB) == []
    with pytest.raises(JobError, match="no training run"):
        m.stop(job.id, BOB)
    _wait(job, lambda j: any(e.kind == "epoch" for e in j.events()))
    m.stop(job.id, ALICE)
    m.wait(job.id, ALICE, 60)
    assert job.status == "stopped" and job.result.best_epoch >= 1
    m.resume(job.id, ALICE)
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error
    assert [h["epoch"] for h in job.result.history] == [1, 2, 3]
    assert sum(e.kind == "start" for e in job.events()) == 2


def test_share_code_lets_another_session_see_and_stop_but_not_promote(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(step_delay=0.05)))
    code = m.share(job.id, ALICE)
    with pytest.raises(JobError, match="share code"):
        m.join("wrong", BOB)
    assert m.join(code, BOB) is job and m.jobs(BOB) == [job]
    m.stop(job.id, BOB)
    m.wait(job.id, ALICE, 60)
    assert job.status == "stopped"
    with pytest.raises(JobError, match="only the session"):
        m.promote(job.id, BOB, "stolen", tmp_path / "w")
    m.unshare(job.id, ALICE)
    assert m.jobs(BOB) == []


def test_promote_registers_the_model(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd())
    m.wait(job.id, ALICE, 120)
    with pytest.raises(JobError, match="model name"):
        m.promote(job.id, ALICE, "../evil", tmp_path / "w")
    entry = m.promote(job.id, ALICE, "toy-x", tmp_path / "w")
    assert [e.name for e in list_models("toy", tmp_path / "w")] == ["toy-x"]
    assert "python -m medviz.train --task toy" in entry.card_path.read_text()


def test_failures_are_reported_not_raised(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(nan_at_step=2)))
    m.wait(job.id, ALICE, 60)
    assert job.status == "failed" and "step 2" in job.error
    with pytest.raises(JobError, match="invalid training options"):
        m.start(ALICE, _cmd(epochs=0))
    with pytest.raises(JobError, match="Training images"):
        m.start(ALICE, _cmd(ToyOptions(n_train=0)))
    with pytest.raises(JobError, match="chosen by the server"):
        m.start(ALICE, _cmd(run=RunOptions(run_dir=Path("/tmp/elsewhere"))))
    with pytest.raises(JobError, match="owner token"):
        m.start("short", _cmd())


def test_old_finished_jobs_are_forgotten(tmp_path):
    m = JobManager(runs_dir=tmp_path, keep_finished=2)
    ids = []
    for _ in range(3):
        job = m.start(ALICE, _cmd(epochs=1))
        m.wait(job.id, ALICE, 60)
        ids.append(job.id)
    assert [j.id for j in m.jobs(ALICE)] == ids[:0:-1]
