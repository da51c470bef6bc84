"""Training jobs run in child processes: another PID at a lower priority holding only its own pipes, events
streamed live, Stop/Resume across processes, a killed or crashing child gives a job error in words, and no
child outlives its server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from medviz.train.command import TrainCommand
from medviz.train.engine import TrainConfig
from medviz.train.jobs import JobError, JobManager
from medviz.train.priority import TRAINING_NICE, thread_nice
from tests.train.conftest import ROOT, toy_env
from tests.train.toy_task import ToyOptions

ALICE, BOB = "a" * 24, "b" * 24
CONFIG = TrainConfig(epochs=3, batch_size=8, lr=0.01, device="cpu")
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback")
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _cmd(options: ToyOptions | None = None, **config) -> TrainCommand:
    return TrainCommand("toy", config=replace(CONFIG, **config), options=options)


def _wait(job, cond, timeout=120):
    deadline = time.monotonic() + timeout
    while not cond(job):
        assert time.monotonic() < deadline, f"job stuck in {job.status}: {job.error}"
        time.sleep(0.05)


def _epochs(job) -> int:
    return sum(e.kind == "epoch" for e in job.events())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pipes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("pipe:"):
            out.add(target)
    return out


@linux
def test_jobs_train_in_child_processes_that_hold_only_their_own_pipes_and_end_with_stop_or_shutdown(tmp_path):
    m = JobManager(runs_dir=tmp_path, max_running=2)
    a = m.start(ALICE, _cmd(ToyOptions(step_delay=0.02), epochs=100_000))
    b = m.start(BOB, _cmd(ToyOptions(step_delay=0.02), epochs=100_000))
    waiting = m.start(ALICE, _cmd())
    try:
        for job in (a, b):
            _wait(job, lambda j: any(e.kind == "step" for e in j.events()))  # events arrive while it trains
        assert len({a.native_id, b.native_id, os.getpid()}) == 3
        server = os.getpriority(os.PRIO_PROCESS, 0)
        for job in (a, b):
            assert _alive(job.native_id) and job.running
            assert Path(f"/proc/{job.native_id}/stat").read_text().split(")")[-1].split()[1] == str(os.getpid())
            assert thread_nice(job.native_id) == min(server + TRAINING_NICE, 19)
            # its request and events pipes only: no other job's pipe, nothing of the server's open files
            assert len(_pipes(job.native_id)) == 2, _pipes(job.native_id)
            cmdline = Path(f"/proc/{job.native_id}/cmdline").read_bytes().decode()
            assert ALICE not in cmdline and BOB not in cmdline and str(tmp_path) not in cmdline
        assert not _pipes(a.native_id) & _pipes(b.native_id)
        m.stop(a.id, ALICE)
        m.wait(a.id, ALICE, 60)
        assert a.status == "stopped" and not _alive(a.native_id)  # Stop ends the child
        assert waiting.running or waiting.status == "completed"  # the freed slot went to the queue
        m.shutdown(grace=20)  # the server ends: the queue is cancelled, running children end
        m.wait(b.id, BOB, 30)
        m.wait(waiting.id, ALICE, 30)
        assert b.status == "stopped" and not _alive(b.native_id)
        assert not (waiting.native_id and _alive(waiting.native_id))
        with pytest.raises(JobError, match="shutting down"):
            m.start(ALICE, _cmd())
    finally:
        m.shutdown(grace=20)


@linux
def test_a_killed_child_leaves_a_failed_job_in_words_and_resume_continues_from_its_checkpoint(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(step_delay=0.05)))
    _wait(job, lambda j: _epochs(j) >= 1)
    first = job.native_id
    os.kill(first, signal.SIGKILL)  # the child this test's manager started
    m.wait(job.id, ALICE, 60)
    assert job.status == "failed" and not _alive(first)
    assert "ended unexpectedly" in job.error and "SIGKILL" in job.error and "Resume" in job.error, job.error
    assert not CLASS_NAME.search(job.error), job.error
    assert job.events()[-1].kind == "error" and job.events()[-1].message == job.error

    m.resume(job.id, ALICE)
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error
    assert job.native_id != first and job.error == ""
    start = [e for e in job.events() if e.kind == "start"][-1]
    assert start.metrics["resumed"] and start.epoch >= 1  # continued from the last completed epoch
    assert [h["epoch"] for h in job.result.history] == [1, 2, 3]


def test_a_crash_in_the_child_is_a_job_error_in_words(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(crash_at_step=2)))
    m.wait(job.id, ALICE, 60)
    assert job.status == "failed"
    assert "unexpected problem" in job.error and "server log" in job.error, job.error
    assert not CLASS_NAME.search(job.error), job.error
    assert all(not CLASS_NAME.search(e.message) for e in job.events())
    with pytest.raises(JobError, match="no completed epoch"):
        m.promote(job.id, ALICE, "toy-crashed", tmp_path / "w")


SERVER = """
import sys, time
from pathlib import Path
from medviz.train.command import TrainCommand
from medviz.train.engine import TrainConfig
from medviz.train.jobs import JobManager
from tests.train.toy_task import ToyOptions
m = JobManager(runs_dir=Path(sys.argv[1]))
job = m.start("s" * 24, TrainCommand("toy", config=TrainConfig(epochs=100_000, batch_size=8, device="cpu"),
                                     options=ToyOptions(step_delay=0.02)))
while not any(e.kind == "step" for e in job.events()):
    time.sleep(0.05)
print(job.native_id, flush=True)
time.sleep(600)
"""


@linux
def test_a_child_whose_server_is_killed_stops_by_itself(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path)], cwd=ROOT, env=toy_env(),
                              stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(server.stdout.readline())
        os.kill(server.pid, signal.SIGKILL)  # the server this test started; its child is not signalled
        server.wait(30)
        deadline = time.monotonic() + 60
        while _alive(child):
            assert time.monotonic() < deadline, "the training child outlived its server"
            time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)  # started by the server this test started
        server.stdout.close()
