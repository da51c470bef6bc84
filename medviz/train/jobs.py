"""Background training jobs for the web app (no Streamlit here: the page keeps one
:class:`JobManager` in ``st.cache_resource`` and a random owner token in ``st.session_state``).

A job is a child process (:mod:`medviz.train.process`, :mod:`medviz.train.worker`) running
:func:`medviz.train.engine.train` at a lower CPU priority, watched by a thread of the server that puts the
child's training events into the job's :class:`EventLog` as they come, sends it Stop, and keeps its
result (the selected weights stay in the run folder; promoting exports them through another short child,
see :class:`~medviz.train.process.ChildTask`). A child that ends without a result (killed, crashed)
leaves the job ``failed`` with a message in words; Resume continues from its last completed epoch. When
the server ends, its children are stopped and then ended by their PIDs (:func:`shutdown_all`, run by
the server's lifespan and at exit); a child whose server vanished stops by itself (its control pipe ends). Jobs belong to the owner token that started them; another token sees
or stops a job only after the owner shares it (a share code) and that token joins with the code.
Only the owner can promote a job into the model registry: into the user models folder
(``MEDVIZ_USER_MODELS_DIR``), never into the shipped ``weights/``, and never under a shipped model's name.

At most ``max_running`` jobs train at once per server (1 by default: the CPU is shared); a start or
resume beyond that waits in a first-in-first-out queue (status ``queued``) and starts by itself when
a running job ends; a waiting job can be cancelled (:meth:`JobManager.cancel`, or Stop). Training
processes run at a lower CPU priority than the page (:mod:`medviz.train.priority`).

Data sources chosen on the page must lie under the data folder or the owner's upload folder, and the paths
task options hold (start weights, ensemble members) under the runs, user models or shipped weights folder
(:mod:`medviz.train.paths`, :mod:`medviz.train.uploads`); :meth:`JobManager.start` checks this again.

Example:
    >>> manager = JobManager()
    >>> job = manager.start(owner, TrainCommand("classification", config=TrainConfig(epochs=5)))
    >>> manager.stop(job.id, owner); manager.resume(job.id, owner)
    >>> manager.queue_place(other.id, owner2)       # QueuePlace(position=1, eta_s=...) while job runs
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medviz.config import get_settings
from medviz.models.registry import SHIPPED, USER_TRAINED, ModelEntry, list_models, read_manifest
from medviz.train.checkpoint import LAST
from medviz.train.command import TrainCommand, command_line, to_argv
from medviz.train.engine import BEST, TrainResult, export_model
from medviz.train.eta import wait_estimate
from medviz.train.events import EventLog, TrainEvent
from medviz.train.paths import DataSourceError, check_data_source, check_option_paths
from medviz.train.priority import TRAINING_NICE, lower_thread_priority, nice_target
from medviz.train.process import BestWeights, ChildError, ChildTask, TrainingProcess
from medviz.train.uploads import public_command, upload_folder
from medviz.train.worker import RunSummary, TrainRequest
from medviz.types import MedvizError

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RUNNING = ("starting", "running")
ACTIVE = (*RUNNING, "queued")


class JobError(MedvizError):
    """A job request that cannot be honoured (busy server, unknown job, not yours, ...)."""


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued job stands.

    Attributes:
        position: 1 for the next job to start.
        eta_s: rough seconds until it starts (see :func:`medviz.train.eta.wait_estimate`); None
            while there is nothing to extrapolate from yet.
    """

    position: int
    eta_s: float | None


@dataclass
class Job:
    """One training run started from the page.

    Attributes:
        status: ``queued`` (waiting for a free slot), ``starting`` (data loading), ``running``,
            ``completed``, ``early_stopped``, ``stopped``, ``failed`` or ``cancelled`` (left the queue).
        command: the run's configuration.
        argv: the equivalent command-line arguments (``python -m medviz.train ...``), for display
            and the model card (an uploaded data source appears as ``<uploaded: NAME>``).
        task: the task as the server sees it (:class:`~medviz.train.process.ChildTask`: its export runs in
            a child).
        result: the last run's :class:`~medviz.train.engine.TrainResult`; its ``model`` is a
            :class:`~medviz.train.process.BestWeights` (the weights stay in the run folder).
        thread: the server thread that watches the training process.
        native_id: the training process's id (PID) once it runs (its nice value is lowered).
    """

    id: str
    owner: str
    command: TrainCommand
    argv: list[str]
    task: Any
    cfg: Any
    run_dir: Path
    log: EventLog = field(default_factory=EventLog)
    stop_event: threading.Event = field(default_factory=threading.Event)
    status: str = "starting"
    result: Any = None
    error: str = ""
    share_code: str | None = None
    viewers: set[str] = field(default_factory=set)
    created: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    promoted: ModelEntry | None = None
    native_id: int | None = None
    process: TrainingProcess | None = None
    resume_pending: bool = False

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def active(self) -> bool:
        """Queued or training: not finished."""
        return self.status in ACTIVE

    @property
    def task_name(self) -> str:
        return self.task.name

    def events(self) -> list[TrainEvent]:
        return self.log.snapshot()

    def _listen(self, event: TrainEvent) -> None:
        if event.kind == "start" and self.status == "starting":
            self.status = "running"
        self.log(event)

    def _run(self, resume: bool, nice: int = TRAINING_NICE) -> None:
        """Train in a child process and follow it until it ends (in the job's watching thread)."""
        lower_thread_priority(nice)  # the watching thread too: unpickling events is training work
        try:
            child = TrainingProcess(TrainRequest(self.command, self.run_dir, resume, nice=nice_target(nice)), nice)
        except ChildError as e:
            self._fail(str(e))
            return
        self.native_id, self.process = child.pid, child
        outcome = None
        with child:
            while True:
                if self.stop_event.is_set():
                    child.request_stop()
                try:
                    message = child.receive(timeout=0.2)
                except (EOFError, OSError):
                    break
                if message is None:
                    continue
                if message[0] == "event":
                    self._listen(message[1])
                else:
                    outcome = message
            child.finish()
        if outcome is not None and outcome[0] == "result":
            self._finished(outcome[1])
        elif outcome is not None:
            self._fail(outcome[1])
        else:
            log.warning("training job %s: the child process %d ended without a result (%s)", self.id, child.pid,
                        child.ended())
            self._fail(f"the training process ended unexpectedly ({child.ended()}) before it finished; "
                       + ("Resume continues from the last completed epoch" if (self.run_dir / LAST).exists()
                          else "no epoch was completed, so start the run again"))

    def _finished(self, summary: RunSummary) -> None:
        weights = BestWeights(self.run_dir / BEST) if summary.best_epoch >= 1 else None
        self.result = TrainResult(status=summary.status, model=weights, best_epoch=summary.best_epoch,
                                  best_metric=summary.best_metric, monitor=summary.monitor,
                                  history=summary.history, run_dir=self.run_dir)
        self.status = summary.status

    def _fail(self, message: str) -> None:
        self.log(TrainEvent("error", message=message))
        self.error, self.status = message, "failed"


class JobManager:
    """Thread-safe registry of jobs for one server process.

    Args:
        runs_dir: parent folder of the jobs' run folders and of the upload folders (default:
            ``get_settings().runs_dir``).
        max_running: jobs allowed to train at the same time.
        keep_finished: finished jobs remembered per owner.
        max_queued: jobs allowed to wait in the queue (a start beyond that is refused).
        nice: how much lower than the server's the training processes' CPU priority is.
    """

    def __init__(self, runs_dir: Path | None = None, max_running: int = 1, keep_finished: int = 5,
                 max_queued: int = 16, nice: int = TRAINING_NICE) -> None:
        self.runs_dir = runs_dir
        self.max_running = max_running
        self.keep_finished = keep_finished
        self.max_queued = max_queued
        self.nice = nice
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # ids of queued jobs, first to start first
        self._lock = threading.Lock()
        self._closed = False
        _MANAGERS.add(self)

    def upload_folder(self, owner: str) -> Path:
        """The folder this owner's uploads are saved in (the only place outside the data folder that
        the owner's runs may read)."""
        return upload_folder(owner, self.runs_dir)

    def shown_argv(self, owner: str, command: TrainCommand) -> list[str]:
        """The command's arguments as shown to users: an upload by its file name, never its server path."""
        return to_argv(public_command(command, self.upload_folder(owner)))

    # -- starting -------------------------------------------------------------------------------------
    def start(self, owner: str, command: TrainCommand) -> Job:
        """Build the task ``command`` describes and start training it in a child process (``resume`` is
        ignored: use :meth:`resume`).

        When ``max_running`` jobs are training already, the job is queued (status ``queued``) and
        starts when its turn comes.

        Raises:
            JobError: the queue is full, the data source lies outside the data folder and the
                owner's upload folder, a path option (``init``, ...) lies outside the runs, user models and
                shipped weights folders (or inside the upload folders), the command names its own run or
                export folder, or an option value is invalid (out of range, not a choice, ...).
        """
        _check_owner(owner)
        if command.run.run_dir is not None or command.run.out is not None:
            raise JobError("run folders are chosen by the server, not by training options")
        found = command.problems()
        if found:
            raise JobError(f"invalid training options: {'; '.join(found)}")
        data = command.run.data
        if data is not None:
            try:
                data = check_data_source(data, [self.upload_folder(owner)])
            except DataSourceError as e:
                raise JobError(str(e)) from None
        try:
            options = check_option_paths(command.options, self.runs_dir)
        except DataSourceError as e:
            raise JobError(str(e)) from None
        command = replace(command, run=replace(command.run, data=data, resume=False), options=options)
        task = ChildTask(command.build_task(), command, self.nice)
        with self._lock:
            self._prune(owner)
            job_id = secrets.token_hex(4)
            run_dir = (self.runs_dir or get_settings().runs_dir) / f"job-{job_id}"
            job = Job(id=job_id, owner=owner, command=command, argv=self.shown_argv(owner, command), task=task,
                      cfg=command.config, run_dir=run_dir)
            self._admit(job, resume=False)
            self._jobs[job_id] = job
        return job

    def resume(self, job_id: str, owner: str) -> Job:
        """Continue a stopped or failed job from its last checkpoint (same run folder; owner only); it
        waits in the queue when the server is busy."""
        job = self._owned(job_id, owner)
        with self._lock:
            if job.running:
                raise JobError("this run is still training")
            if job.queued:
                raise JobError("this run is already waiting in the queue")
            if job.status not in ("stopped", "failed", "completed", "early_stopped", "cancelled"):
                raise JobError(f"a {job.status} run cannot be resumed")
            if not (job.run_dir / "last.pt").exists():
                raise JobError("no completed epoch to resume from yet: start the run again instead")
            job.stop_event.clear()
            job.error = ""
            self._admit(job, resume=True)
        return job

    def _admit(self, job: Job, resume: bool) -> None:
        """Launch ``job`` now if a slot is free and nobody waits, else append it to the queue (lock held)."""
        if self._closed:
            raise JobError("the server is shutting down; start the run again once it is back")
        if not self._queue and self._busy() < self.max_running:
            self._launch(job, resume)
            return
        if len(self._queue) >= self.max_queued:
            raise JobError(f"the training queue is full ({len(self._queue)} runs waiting); try again later")
        job.status, job.resume_pending = "queued", resume
        self._queue.append(job.id)

    def _busy(self) -> int:
        return sum(j.running for j in self._jobs.values())

    def _advance(self) -> None:
        """Start queued jobs, oldest first, while slots are free (called when a job's thread ends)."""
        with self._lock:
            while not self._closed and self._queue and self._busy() < self.max_running:
                job = self._jobs.get(self._queue.pop(0))
                if job is not None and job.queued:
                    self._launch(job, job.resume_pending)

    def _prune(self, owner: str) -> None:
        """Forget this owner's oldest finished jobs beyond ``keep_finished`` (their models hold memory;
        their run folders stay on disk)."""
        done = sorted((j for j in self._jobs.values() if j.owner == owner and not j.active), key=lambda j: j.created)
        for job in done[: max(len(done) - self.keep_finished + 1, 0)]:
            del self._jobs[job.id]

    def _launch(self, job: Job, resume: bool) -> None:
        thread = threading.Thread(target=self._work, args=(job, resume), name=f"medviz-train-{job.id}", daemon=True)
        job.thread = thread  # before the status changes: wait() reads the thread once the job is not queued
        job.status, job.resume_pending = "starting", False
        thread.start()

    def _work(self, job: Job, resume: bool) -> None:
        try:
            job._run(resume, self.nice)
        except Exception:  # noqa: BLE001 -- the job must end visibly and the queue go on, whatever happened
            log.exception("training job %s: watching its process failed", job.id)
            job._fail("following the training process failed; the server log has the details")
        finally:
            self._advance()

    def shutdown(self, grace: float = 5.0) -> None:
        """End every job for good (the server is going): cancel the queue, ask each training process to
        stop, and end by its PID any that has not within ``grace`` seconds. Run at interpreter exit."""
        with self._lock:
            self._closed = True
            for job_id in list(self._queue):
                self._dequeue(self._jobs[job_id])
            running = [j for j in self._jobs.values() if j.running]
        for job in running:
            job.stop_event.set()
            if job.process is not None:
                job.process.request_stop()
        deadline = time.monotonic() + grace
        for job in running:
            while job.process is None and job.running and time.monotonic() < deadline:
                time.sleep(0.05)  # still starting its process
            if job.process is not None and not job.process.wait(max(deadline - time.monotonic(), 0.0)):
                job.process.kill()

    # -- access ---------------------------------------------------------------------------------------
    def jobs(self, owner: str) -> list[Job]:
        """The jobs ``owner`` may see (started or joined), newest first."""
        with self._lock:
            mine = [j for j in self._jobs.values() if owner == j.owner or owner in j.viewers]
        return sorted(mine, key=lambda j: j.created, reverse=True)

    def get(self, job_id: str, owner: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or (owner != job.owner and owner not in job.viewers):
            raise JobError(f"no training run {job_id!r} visible to this session")
        return job

    def stop(self, job_id: str, owner: str) -> Job:
        """Ask the job to stop before its next step (nothing partial is saved); a queued job is cancelled."""
        job = self.get(job_id, owner)
        with self._lock:
            if job.queued:
                self._dequeue(job)
                return job
        job.stop_event.set()
        return job

    def cancel(self, job_id: str, owner: str) -> Job:
        """Take a queued job out of the queue (status ``cancelled``); whoever may stop it may cancel it."""
        job = self.get(job_id, owner)
        with self._lock:
            if not job.queued:
                raise JobError("only a run waiting in the queue can be cancelled; use Stop for a running one")
            self._dequeue(job)
        return job

    def _dequeue(self, job: Job) -> None:
        self._queue.remove(job.id)
        job.status, job.resume_pending = "cancelled", False

    def queue_place(self, job_id: str, owner: str) -> QueuePlace | None:
        """The job's place in the queue and a rough wait; None when it is not queued."""
        job = self.get(job_id, owner)
        with self._lock:
            if not job.queued:
                return None
            index = self._queue.index(job.id)
            ahead = [self._jobs[i].cfg.epochs for i in self._queue[:index] if i in self._jobs]
            running = [j.events() for j in self._jobs.values() if j.running]
        return QueuePlace(position=index + 1, eta_s=wait_estimate(running, ahead, self.max_running))

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        """Wait for the job's watching thread to end, which it does once its process has ended (a queued job:
        wait until it has started and ended)."""
        job = self.get(job_id, owner)
        deadline = None if timeout is None else time.monotonic() + timeout
        while job.queued and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        thread = job.thread
        if thread is None or job.queued:
            return job
        # _launch sets the thread and the status under the manager's lock just before it starts the thread: a
        # thread not yet started cannot be joined, so wait for it to start (ident is set by start())
        while thread.ident is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.01)
        if thread.ident is not None:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return job

    # -- sharing --------------------------------------------------------------------------------------
    def share(self, job_id: str, owner: str) -> str:
        """A code another session can use to see and stop this job (owner only)."""
        job = self._owned(job_id, owner)
        with self._lock:
            job.share_code = job.share_code or secrets.token_urlsafe(12)
        return job.share_code

    def unshare(self, job_id: str, owner: str) -> None:
        job = self._owned(job_id, owner)
        with self._lock:
            job.share_code, job.viewers = None, set()

    def join(self, code: str, owner: str) -> Job:
        _check_owner(owner)
        with self._lock:
            for job in self._jobs.values():
                if job.share_code and secrets.compare_digest(job.share_code, code.strip()):
                    job.viewers.add(owner)
                    return job
        raise JobError("unknown or revoked share code")

    def _owned(self, job_id: str, owner: str) -> Job:
        job = self.get(job_id, owner)
        if job.owner != owner:
            raise JobError("only the session that started this run can do that")
        return job

    # -- results --------------------------------------------------------------------------------------
    def promote(self, job_id: str, owner: str, name: str, models_dir: Path | None = None) -> ModelEntry:
        """Export the job's best weights and model card into the user models folder and register them
        there (owner only); the shipped ``weights/`` folder is never written.

        Args:
            models_dir: the folder receiving the model (default: ``get_settings().user_models_dir``,
                ``MEDVIZ_USER_MODELS_DIR``); it may not be the shipped weights folder.

        Returns:
            The registered entry (typed spec inside, origin ``user-trained`` when ``models_dir`` is the
            user models folder); the model then appears in ``list_models`` of its task.

        Raises:
            JobError: not the owner, a bad name, a shipped model's name, the name of another user-trained
                model (this run may promote again under its own name), a running run, nothing to promote, or
                a destination inside the shipped weights folder.
        """
        job = self._owned(job_id, owner)
        if not NAME_RE.match(name):
            raise JobError(f"model name {name!r}: use 1-64 lower-case letters, digits, '-' or '_'")
        if job.running:
            raise JobError("stop the run or let it finish before promoting it")
        if job.result is None or job.result.best_epoch < 1:
            raise JobError("this run has no completed epoch to promote")
        settings = get_settings()
        dest = Path(models_dir or settings.user_models_dir)
        if Path(os.path.realpath(dest)).is_relative_to(os.path.realpath(settings.weights_dir)):
            raise JobError(f"promoted models go to the user models folder, not into the shipped weights folder "
                           f"({settings.weights_dir}); set MEDVIZ_USER_MODELS_DIR to a folder outside it")
        if any(e.name == name for e in list_models() if e.origin == SHIPPED):
            raise JobError(f"{name!r} is the name of a shipped model; choose another name for your model")
        again = job.promoted is not None and job.promoted.name == name  # this run's own earlier promotion
        if not again and any(m.get("name") == name for m in read_manifest(dest)):
            raise JobError(f"a user-trained model named {name!r} exists already; choose another name")
        try:
            raw = export_model(job.task, job.result, dest, name, command_line(job.argv), register=True)
        except ChildError as e:
            raise JobError(f"the model could not be exported: {e}") from None
        job.promoted = ModelEntry(raw=raw, weights_dir=dest, origin=USER_TRAINED)
        return job.promoted


_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


@atexit.register
def shutdown_all() -> None:
    """:meth:`JobManager.shutdown` of every manager of this process: no training process outlives its server.

    Run at interpreter exit, and by the web server's lifespan when it stops (uvicorn ends the process by
    re-raising SIGTERM after its graceful shutdown, so exit handlers do not run there)."""
    for manager in list(_MANAGERS):
        manager.shutdown()


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or len(owner) < 16:
        raise JobError("a session owner token of at least 16 characters is required")
