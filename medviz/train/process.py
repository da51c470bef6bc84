"""Training in a child process, from the server's side (the child's side is :mod:`medviz.train.worker`).

Why a child process and not a thread: a training thread in the server competes with the pages for
Python's interpreter lock, which no nice value can lower (the viewer's slice step took 2.27x as long
while a run trained; see the README's "Load benchmark"). A child has its own interpreter and runs
at a lower CPU priority as a whole.

Why ``subprocess`` of ``python -m medviz.train.child`` and not :mod:`multiprocessing`'s spawn: spawn
re-imports the parent's ``__main__`` in the child, and while a Streamlit page runs,
``sys.modules["__main__"]`` is that page's script, so the child would run a page. A fresh
interpreter imports only the training code, gets no file descriptor but its two pipes
(``close_fds``), and knows nothing but its request.

The child is started from a thread whose nice value was lowered first: Linux gives a new process the
nice value of the thread that forked it, so every thread of the child (torch's workers, the data
loader's) runs lowered from the start.

Example:
    >>> with TrainingProcess(TrainRequest(command, run_dir, nice=nice_target())) as child:
    ...     message = child.receive(timeout=0.2)   # ("event", TrainEvent) ... ("result", RunSummary)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from medviz.train.command import TrainCommand
from medviz.train.priority import TRAINING_NICE, lower_thread_priority, nice_target
from medviz.train.task import TrainTask
from medviz.train.worker import STOP, ExportRequest, TrainRequest
from medviz.types import MedvizError

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the medviz package


class ChildError(MedvizError):
    """A child process could not do what it was asked (its message is in words)."""


def _env() -> dict[str, str]:
    """The server's environment, with the folder of the ``medviz`` package first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH", "")]))
    return env


class TrainingProcess:
    """One child process doing one request; its messages come back over a private pipe.

    Args:
        request: what the child does.
        increment: how much lower than the server's its CPU priority is (see :mod:`medviz.train.priority`).

    Raises:
        ChildError: the child could not be started (the reason in words).
    """

    def __init__(self, request: TrainRequest | ExportRequest, increment: int = TRAINING_NICE) -> None:
        control_r, control_w = os.pipe()
        events_r, events_w = os.pipe()
        argv = [sys.executable, "-m", "medviz.train.child", "--control", str(control_r), "--events", str(events_w)]
        started: dict[str, Any] = {}

        def spawn() -> None:  # in a thread of its own, lowered first: the child inherits its nice value
            lower_thread_priority(increment)
            try:
                started["popen"] = subprocess.Popen(argv, pass_fds=(control_r, events_w), stdin=subprocess.DEVNULL,
                                                    stdout=subprocess.DEVNULL, env=_env(), close_fds=True)
            except OSError as e:
                started["error"] = e

        thread = threading.Thread(target=spawn, name="medviz-train-spawn", daemon=True)
        thread.start()
        thread.join()
        os.close(control_r)
        os.close(events_w)
        self._control = Connection(control_w, readable=False)
        self._events = Connection(events_r, writable=False)
        if "popen" not in started:
            self.close()
            reason = getattr(started.get("error"), "strerror", None) or "unknown reason"
            raise ChildError(f"the training process could not be started ({reason})")
        self.popen: subprocess.Popen = started["popen"]
        self._stop_sent = False
        try:
            self._control.send(request)
        except OSError:  # the child died at once: receive() reports the end, ended() says how
            pass

    @property
    def pid(self) -> int:
        return self.popen.pid

    def receive(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """The child's next message, or None when none came within ``timeout`` seconds.

        Raises:
            EOFError: the child closed its end (it has ended or is ending).
        """
        if not wait([self._events], timeout):
            return None
        return self._events.recv()

    def request_stop(self) -> None:
        """Ask the child to stop before its next training step (once; a child already gone is fine)."""
        if self._stop_sent:
            return
        self._stop_sent = True
        try:
            self._control.send(STOP)
        except OSError:
            pass

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for the child to end (killing it, by its PID, when it does not within ``timeout``); its exit code."""
        if not self.wait(timeout):
            self.kill()
        return self.popen.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the child to end; whether it has."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """End the child at once (SIGKILL to its PID; its checkpoints are kill-safe)."""
        if self.popen.poll() is None:
            self.popen.kill()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ended(self) -> str:
        """How the child ended, in words (for messages)."""
        code = self.popen.poll()
        if code is None:
            return "it is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"it was ended by {name}"
        return f"it exited with status {code}"

    def close(self) -> None:
        for conn in (self._control, self._events):
            conn.close()

    def __enter__(self) -> TrainingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_request(request: ExportRequest, increment: int = TRAINING_NICE) -> Any:
    """Do ``request`` in a child and return its answer's value.

    Raises:
        ChildError: the child answered with an error or ended without answering (in words).
    """
    with TrainingProcess(request, increment) as child:
        answer = None
        try:
            while answer is None or answer[0] == "event":
                answer = child.receive()
        except EOFError:
            answer = None
        child.finish()
        if answer is None:
            raise ChildError(f"the export process ended without an answer ({child.ended()})")
        if answer[0] == "error":
            raise ChildError(answer[1])
        return answer[1]


@dataclass(frozen=True)
class BestWeights:
    """Where a run trained in a child keeps its selected model (the ``model`` of its result in the server)."""

    path: Path


class ChildTask:
    """The server's stand-in for a job's task: reads like the task (``name``, ``options``, ``data_path``,
    ``monitor``, ...), but :meth:`export` runs in a child that builds the task and its data again, since a
    task's export may need what only its data told it (class names, channels), and the data stay out of the
    server.

    Args:
        task: the task built from ``command`` in the server (no data loaded).
        command: the run's configuration.
        increment: CPU priority of the export child, as for training.
    """

    def __init__(self, task: TrainTask, command: TrainCommand, increment: int = TRAINING_NICE) -> None:
        self._task, self._command, self._increment = task, command, increment

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        """:meth:`medviz.train.task.TrainTask.export` of the weights ``model`` names (a :class:`BestWeights`)."""
        if not isinstance(model, BestWeights):
            raise TypeError(f"a run trained in a child process exports its saved weights, not {type(model).__name__}")
        return run_request(ExportRequest(self._command, model.path, Path(out_dir), name, metrics, command,
                                         nice=nice_target(self._increment)), self._increment)
