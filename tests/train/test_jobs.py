"""Background jobs: ownership, sharing, a queue behind one running run, stop/resume, promotion, allowed data
sources, lower CPU priority."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from medviz.models.registry import list_models
from medviz.train.command import RunOptions, TrainCommand
from medviz.train.engine import TrainConfig
from medviz.train.jobs import JobError, JobManager
from medviz.train.paths import REFUSED
from medviz.train.priority import TRAINING_NICE, thread_nice
from medviz.train.uploads import SessionUploads
from tests.train.toy_task import ToyOptions

ALICE, BOB, CAROL = "a" * 24, "b" * 24, "c" * 24
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
    waiting = m.start(BOB, _cmd())
    assert waiting.status == "queued" and m.jobs(BOB) == [waiting]
    m.cancel(waiting.id, BOB)
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


def test_waiting_on_a_run_whose_thread_has_not_started_yet_waits_for_it(tmp_path, monkeypatch):
    """A run's thread is registered (status "starting") just before it is started; a wait that comes in
    between must wait for it, not fail on joining a thread not yet started (seen once on a loaded host)."""
    import threading

    real = threading.Thread

    class LateThread(real):
        def start(self):  # the run's thread starts 0.3 s after it is registered
            real(target=lambda: (time.sleep(0.3), real.start(self)), daemon=True).start()

    m = JobManager(runs_dir=tmp_path)
    monkeypatch.setattr("medviz.train.jobs.threading.Thread", LateThread)
    job = m.start(ALICE, _cmd(epochs=1))
    monkeypatch.setattr("medviz.train.jobs.threading.Thread", real)
    assert job.status == "starting" and job.thread.ident is None
    assert m.wait(job.id, ALICE, 120) is job
    assert job.thread.ident is not None and not job.thread.is_alive() and job.status == "completed"


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


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_promote_writes_only_the_user_models_folder_and_refuses_shipped_names(tmp_path, monkeypatch):
    from medviz.models.registry import SHIPPED, USER_TRAINED
    from medviz.train.engine import export_model

    weights, user = tmp_path / "weights", tmp_path / "user-models"
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(user))
    m = JobManager(runs_dir=tmp_path / "runs")
    job = m.start(ALICE, _cmd(epochs=1))
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error
    export_model(job.task, job.result, weights, "toy-shipped", "cmd", register=True)  # the "shipped" model
    before = _listing(weights)
    manifest = (weights / "manifest.json").read_bytes()

    entry = m.promote(job.id, ALICE, "toy-mine")
    assert entry.origin == USER_TRAINED and entry.weights_dir == user
    assert _listing(weights) == before and (weights / "manifest.json").read_bytes() == manifest
    assert {"manifest.json", "toy-mine.safetensors", "toy-mine.md"} <= set(_listing(user))
    assert [(e.name, e.origin, e.label) for e in list_models("toy")] == [
        ("toy-shipped", SHIPPED, "toy-shipped (shipped)"), ("toy-mine", USER_TRAINED, "toy-mine (user-trained)")]
    assert m.promote(job.id, ALICE, "toy-mine").name == "toy-mine"  # the same run may promote again

    user_files = _listing(user)
    with pytest.raises(JobError, match="'toy-shipped' is the name of a shipped model; choose another name"):
        m.promote(job.id, ALICE, "toy-shipped")
    other = m.start(BOB, _cmd(epochs=1))
    m.wait(other.id, BOB, 120)
    with pytest.raises(JobError, match="user-trained model named 'toy-mine' exists already"):
        m.promote(other.id, BOB, "toy-mine")  # another session's model is not overwritten
    with pytest.raises(JobError, match="not into the shipped weights folder"):
        m.promote(job.id, ALICE, "toy-sneaky", weights / "sub")
    assert _listing(weights) == before and _listing(user) == user_files


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


def _long(m: JobManager, owner: str = ALICE):
    """A run that trains until it is stopped (the queue tests must not race its end)."""
    job = m.start(owner, _cmd(ToyOptions(step_delay=0.02), epochs=100_000))
    _wait(job, lambda j: any(e.kind == "step" for e in j.events()))
    return job


def test_a_busy_server_queues_runs_first_in_first_out_and_starts_the_next_by_itself(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    first = _long(m)
    b = m.start(BOB, _cmd(epochs=1))
    c = m.start(CAROL, _cmd(epochs=1))
    d = m.start(BOB, _cmd(epochs=1))
    assert [j.status for j in (b, c, d)] == ["queued"] * 3
    assert [m.queue_place(j.id, o).position for j, o in ((b, BOB), (c, CAROL), (d, BOB))] == [1, 2, 3]
    assert m.queue_place(first.id, ALICE) is None
    place = m.queue_place(c.id, CAROL)
    assert place.eta_s is not None and place.eta_s > 0
    assert m.jobs(CAROL) == [c]  # the queue does not show other sessions' runs
    with pytest.raises(JobError, match="no training run"):
        m.cancel(b.id, CAROL)
    with pytest.raises(JobError, match="only a run waiting"):
        m.cancel(first.id, ALICE)
    m.cancel(c.id, CAROL)
    assert c.status == "cancelled" and m.queue_place(d.id, BOB).position == 2
    with pytest.raises(JobError, match="only a run waiting"):
        m.cancel(c.id, CAROL)
    m.stop(first.id, ALICE)
    m.wait(d.id, BOB, 120)
    assert first.status == "stopped"
    assert b.status == "completed" and d.status == "completed", (b.error, d.error)
    assert c.thread is None and c.events() == []
    assert b.thread is not None and not b.thread.is_alive()  # d started only after b ended (one slot)


def test_stop_on_a_queued_run_cancels_it_and_a_resume_waits_its_turn(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = m.start(ALICE, _cmd(ToyOptions(step_delay=0.02), epochs=2))
    m.wait(job.id, ALICE, 120)
    blocker = _long(m, BOB)
    queued = m.start(CAROL, _cmd())
    m.stop(queued.id, CAROL)
    assert queued.status == "cancelled"
    m.resume(job.id, ALICE)
    with pytest.raises(JobError, match="already waiting"):
        m.resume(job.id, ALICE)
    assert job.status == "queued" and m.queue_place(job.id, ALICE).position == 1
    m.stop(blocker.id, BOB)
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error
    assert sum(e.kind == "start" for e in job.events()) == 2


def test_the_queue_has_a_limit(tmp_path):
    m = JobManager(runs_dir=tmp_path, max_queued=1)
    first = _long(m)
    waiting = m.start(BOB, _cmd())
    with pytest.raises(JobError, match="queue is full"):
        m.start(CAROL, _cmd())
    assert m.jobs(CAROL) == []
    m.cancel(waiting.id, BOB)
    m.stop(first.id, ALICE)
    m.wait(first.id, ALICE, 60)


def _thread_ids(pid: int | str = "self") -> set[int]:
    return {int(p.name) for p in Path(f"/proc/{pid}/task").iterdir()}


def _nices(tids: set[int]) -> dict[int, int]:
    """Nice values of the threads that still exist."""
    out = {}
    for tid in tids:
        try:
            out[tid] = thread_nice(tid)
        except ProcessLookupError:
            pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_training_runs_at_a_lower_cpu_priority_than_the_server(tmp_path):
    m = JobManager(runs_dir=tmp_path)
    job = _long(m)
    try:
        assert job.native_id is not None and job.thread.is_alive()
        assert job.native_id != os.getpid()  # training runs in a child process
        server = os.getpriority(os.PRIO_PROCESS, 0)
        assert thread_nice(job.native_id) == min(server + TRAINING_NICE, 19) > server
        assert thread_nice() == server  # the calling (serving) thread keeps its priority
        # every thread of the child (torch's intra-op workers, the data loader's thread) runs at the lower priority
        created = _nices(_thread_ids(job.native_id))
        assert job.native_id in created and set(created.values()) == {created[job.native_id]}, created
        # a queued run, started from the ending run's (lowered) thread, is lowered once, not twice
        nxt = m.start(BOB, _cmd(ToyOptions(step_delay=0.02), epochs=100_000))
        m.stop(job.id, ALICE)
        _wait(nxt, lambda j: any(e.kind == "step" for e in j.events()))
        assert thread_nice(nxt.native_id) == min(server + TRAINING_NICE, 19)
        m.stop(nxt.id, BOB)
        m.wait(nxt.id, BOB, 60)
    finally:
        m.stop(job.id, ALICE)
        m.wait(job.id, ALICE, 60)


def test_start_accepts_only_the_data_folder_and_the_owners_uploads(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MEDVIZ_DATA_DIR", str(data))
    (tmp_path / "outside.npz").write_bytes(b"x")
    os.symlink(tmp_path, data / "up")
    m = JobManager(runs_dir=tmp_path / "runs")
    for bad in ("/etc/hostname", str(tmp_path / "outside.npz"), str(tmp_path / "missing.npz"),
                f"{data}/../outside.npz", str(data / "up" / "outside.npz")):
        with pytest.raises(JobError) as e:
            m.start(ALICE, _cmd(run=RunOptions(data=Path(bad)), epochs=1))
        assert str(e.value) == REFUSED, bad
    upload = SessionUploads(m.upload_folder(ALICE)).save("brains.npz", b"x")
    with pytest.raises(JobError, match="cannot be used"):
        m.start(BOB, _cmd(run=RunOptions(data=upload), epochs=1))  # another session's upload
    job = m.start(ALICE, _cmd(run=RunOptions(data=upload), epochs=1))
    assert "<uploaded: brains.npz>" in job.argv and not any(str(tmp_path) in a for a in job.argv)
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error


def test_start_takes_start_weights_only_from_the_runs_user_models_or_weights_folders(tmp_path, monkeypatch):
    from medviz.segmentation.options import SegmentationTrainOptions
    from medviz.train.paths import MODEL_REFUSED

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(tmp_path / "user-models"))
    m = JobManager(runs_dir=tmp_path / "runs")
    upload = SessionUploads(m.upload_folder(ALICE)).save("weights.safetensors", b"x")
    for bad in ("/etc/hostname", str(tmp_path / "elsewhere.safetensors"), str(upload)):
        with pytest.raises(JobError) as e:
            m.start(ALICE, TrainCommand("segmentation", config=CONFIG,
                                        options=SegmentationTrainOptions(init=Path(bad))))
        assert str(e.value) == MODEL_REFUSED, bad
    with pytest.raises(JobError, match="cannot be used from the web page"):  # every path option of a task
        m.start(ALICE, _cmd(ToyOptions(trace=tmp_path / "trace.txt")))
    job = m.start(ALICE, _cmd(ToyOptions(trace=tmp_path / "runs" / "trace.txt"), epochs=1))
    m.wait(job.id, ALICE, 120)
    assert job.status == "completed", job.error
    assert (tmp_path / "runs" / "trace.txt").read_text()
