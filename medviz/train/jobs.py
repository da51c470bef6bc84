"""Background training jobs for the web app (no Streamlit here: the page keeps one
:class:`JobManager` in ``st.cache_resource`` and a random owner token in ``st.session_state``).

A job is a thread running :func:`medviz.train.engine.train` with an :class:`EventLog` listener and a
``threading.Event`` for Stop. Jobs belong to the owner token that started them; another token sees
or stops a job only after the owner shares it (a share code) and that token joins with the code.
Only the owner can promote a job into the model registry. At most ``max_running`` jobs run at once
per server (1 by default: the CPU is shared); another start is refused with a clear message.

Example:
    >>> manager = JobManager()
    >>> job = manager.start(owner, TrainCommand("classification", config=TrainConfig(epochs=5)))
    >>> manager.stop(job.id, owner); manager.resume(job.id, owner)
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medviz.config import get_settings
from medviz.models.registry import ModelEntry
from medviz.train.command import TrainCommand, command_line, to_argv
from medviz.train.engine import export_model, train
from medviz.train.events import EventLog, TrainEvent
from medviz.types import MedvizError

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RUNNING = ("starting", "running")


class JobError(MedvizError):
    """A job request that cannot be honoured (busy server, unknown job, not yours, ...)."""


@dataclass
class Job:
    """One training run started from the page.

    Attributes:
        status: ``starting`` (data loading), ``running``, ``completed``, ``early_stopped``,
            ``stopped`` or ``failed``.
        command: the run's configuration.
        argv: the equivalent command-line arguments (``python -m medviz.train ...``), for display
            and the model card.
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

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def task_name(self) -> str:
        return self.task.name

    def events(self) -> list[TrainEvent]:
        return self.log.snapshot()

    def _listen(self, event: TrainEvent) -> None:
        if event.kind == "start" and self.status == "starting":
            self.status = "running"
        self.log(event)

    def _run(self, resume: bool) -> None:
        try:
            self.result = train(self.task, self.cfg, self.run_dir, listeners=[self._listen],
                                stop_event=self.stop_event, resume=resume)
            self.status = self.result.status
        except MedvizError as e:
            self.error, self.status = str(e), "failed"
        except Exception as e:  # a plugin bug must end the job visibly, not kill the thread silently
            log.exception("training job %s crashed", self.id)
            self.error, self.status = f"{type(e).__name__}: {e}", "failed"


class JobManager:
    """Thread-safe registry of jobs for one server process.

    Args:
        runs_dir: parent folder of the jobs' run folders (default: ``get_settings().runs_dir``).
        max_running: jobs allowed to train at the same time.
    """

    def __init__(self, runs_dir: Path | None = None, max_running: int = 1, keep_finished: int = 5) -> None:
        self.runs_dir = runs_dir
        self.max_running = max_running
        self.keep_finished = keep_finished
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # -- starting -------------------------------------------------------------------------------------
    def start(self, owner: str, command: TrainCommand) -> Job:
        """Build the task ``command`` describes and start training it in a thread (``resume`` is
        ignored: use :meth:`resume`).

        Raises:
            JobError: another job is running, the command names its own run or export folder, or
                an option value is invalid (out of range, not a choice, ...).
        """
        _check_owner(owner)
        if command.run.run_dir is not None or command.run.out is not None:
            raise JobError("run folders are chosen by the server, not by training options")
        found = command.problems()
        if found:
            raise JobError(f"invalid training options: {'; '.join(found)}")
        command = replace(command, run=replace(command.run, resume=False))
        task = command.build_task()
        with self._lock:
            self._check_capacity()
            self._prune(owner)
            job_id = secrets.token_hex(4)
            run_dir = (self.runs_dir or get_settings().runs_dir) / f"job-{job_id}"
            job = Job(id=job_id, owner=owner, command=command, argv=to_argv(command), task=task,
                      cfg=command.config, run_dir=run_dir)
            self._jobs[job_id] = job
            self._launch(job, resume=False)
        return job

    def resume(self, job_id: str, owner: str) -> Job:
        """Continue a stopped or failed job from its last checkpoint (same run folder; owner only)."""
        job = self._owned(job_id, owner)
        with self._lock:
            if job.running:
                raise JobError("this run is still training")
            if job.status not in ("stopped", "failed", "completed", "early_stopped"):
                raise JobError(f"a {job.status} run cannot be resumed")
            if not (job.run_dir / "last.pt").exists():
                raise JobError("no completed epoch to resume from yet: start the run again instead")
            self._check_capacity()
            job.stop_event.clear()
            job.error, job.status = "", "starting"
            self._launch(job, resume=True)
        return job

    def _check_capacity(self) -> None:
        busy = sum(j.running for j in self._jobs.values())
        if busy >= self.max_running:
            raise JobError(f"{busy} training run(s) already in progress on this server (limit {self.max_running}); "
                           "wait until it finishes or is stopped, then start again")

    def _prune(self, owner: str) -> None:
        """Forget this owner's oldest finished jobs beyond ``keep_finished`` (their models hold memory;
        their run folders stay on disk)."""
        done = sorted((j for j in self._jobs.values() if j.owner == owner and not j.running), key=lambda j: j.created)
        for job in done[: max(len(done) - self.keep_finished + 1, 0)]:
            del self._jobs[job.id]

    @staticmethod
    def _launch(job: Job, resume: bool) -> None:
        job.thread = threading.Thread(target=job._run, args=(resume,), name=f"medviz-train-{job.id}", daemon=True)
        job.thread.start()

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
        """Ask the job to stop before its next step; nothing partial is saved."""
        job = self.get(job_id, owner)
        job.stop_event.set()
        return job

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        job = self.get(job_id, owner)
        if job.thread is not None:
            job.thread.join(timeout)
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
    def promote(self, job_id: str, owner: str, name: str, weights_dir: Path | None = None) -> ModelEntry:
        """Export the job's best weights and model card into the registry (owner only).

        Returns:
            The registered entry (typed spec inside); the model then appears in ``list_models`` of its task.
        """
        job = self._owned(job_id, owner)
        if not NAME_RE.match(name):
            raise JobError(f"model name {name!r}: use 1-64 lower-case letters, digits, '-' or '_'")
        if job.running:
            raise JobError("stop the run or let it finish before promoting it")
        if job.result is None or job.result.best_epoch < 1:
            raise JobError("this run has no completed epoch to promote")
        wd = weights_dir or get_settings().weights_dir
        entry = ModelEntry(raw=export_model(job.task, job.result, wd, name, command_line(job.argv), register=True),
                           weights_dir=wd)
        job.promoted = entry
        return entry


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or len(owner) < 16:
        raise JobError("a session owner token of at least 16 characters is required")
