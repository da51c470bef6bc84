"""Background jobs: ownership, sharing, one run at a time, stop/resume, promotion."""

from __future__ import annotations

import time

import pytest

from medviz.models.registry import list_models
from medviz.train.jobs import JobError, JobManager

ALICE, BOB = "a" * 24, "b" * 24
ARGV = ["--task", "toy", "--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--device", "cpu"]


def _wait(job, cond, timeout=120):
    deadline = time.monotonic() + timeout
    while not cond(job):
        assert time.monotonic() < deadline, f"job stuck in {job.status}: {job.error}"
        time.sleep(0.05)


def test_jobs_are_private_single_and_resumable(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, [*ARGV, "--step-delay", "0.05"])
    with pytest.raises(JobError, match="already in progress"):
        m.start(BOB, ARGV)
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
    job = m.start(ALICE, [*ARGV, "--step-delay", "0.05"])
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
    job = m.start(ALICE, ARGV)
    m.wait(job.id, ALICE, 120)
    with pytest.raises(JobError, match="model name"):
        m.promote(job.id, ALICE, "../evil", tmp_path / "w")
    entry = m.promote(job.id, ALICE, "toy-x", tmp_path / "w")
    assert [e.name for e in list_models("toy", tmp_path / "w")] == ["toy-x"]
    assert "python -m medviz.train --task toy" in (tmp_path / "w" / entry["card"]).read_text()


def test_failures_are_reported_not_raised(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, [*ARGV, "--nan-at-step", "2"])
    m.wait(job.id, ALICE, 60)
    assert job.status == "failed" and "step 2" in job.error
    with pytest.raises(JobError, match="invalid training options"):
        m.start(ALICE, ["--task", "toy", "--epochs", "many"])
    with pytest.raises(JobError, match="chosen by the server"):
        m.start(ALICE, [*ARGV, "--features", "8", "--run-dir", "/tmp/elsewhere"])
    with pytest.raises(JobError, match="owner token"):
        m.start("short", ARGV)


def test_old_finished_jobs_are_forgotten(tmp_path):
    m = JobManager(runs_dir=tmp_path, keep_finished=2)
    ids = []
    for _ in range(3):
        job = m.start(ALICE, [*ARGV, "--epochs", "1"])
        m.wait(job.id, ALICE, 60)
        ids.append(job.id)
    assert [j.id for j in m.jobs(ALICE)] == ids[:0:-1]
