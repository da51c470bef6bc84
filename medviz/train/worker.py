"""The training child process: ``python -m medviz.train.child --control FD --events FD`` runs :func:`main`.

Started by :class:`medviz.train.process.TrainingProcess` (never by hand). The parent writes one request
on the control pipe (:class:`TrainRequest`: train or resume one run; :class:`ExportRequest`: export a
finished run's best weights), then ``"stop"`` when the run is to stop. The child answers on the events
pipe with ``(kind, value)`` messages: ``("event", TrainEvent)`` for each training event, then one of
``("result", RunSummary)``, ``("entry", dict)`` (the task's manifest entry of an export) or
``("error", str)`` (what went wrong, in words). Both pipes carry pickles; they are private to the two
processes (``os.pipe`` between a parent and the child it started), so nothing else can write them.

A stop request, SIGTERM, SIGINT or the end of the control pipe (the server went away, even by
``kill -9``) all stop training before its next step; the last completed epoch's checkpoint stays
(see :mod:`medviz.train.checkpoint`). The child knows only its own request: no other job, session
or owner token reaches it (the parent starts it with ``close_fds``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from medviz.config import get_settings
from medviz.models.runtime import set_inference_threads
from medviz.models.weights import load_state_dict
from medviz.train.command import TrainCommand
from medviz.train.engine import TrainResult, train
from medviz.train.events import TrainEvent
from medviz.train.priority import lower_process_priority
from medviz.types import MedvizError

log = logging.getLogger(__name__)
STOP = "stop"


@dataclass(frozen=True)
class TrainRequest:
    """Train (or resume) one run.

    Attributes:
        command: the run's configuration (the task is built from it in the child).
        run_dir: the run's checkpoint folder.
        resume: continue from ``run_dir/last.pt``.
        nice: the nice value the child runs at (None: as started).
    """

    command: TrainCommand
    run_dir: Path
    resume: bool = False
    nice: int | None = None


@dataclass(frozen=True)
class ExportRequest:
    """Export a run's best weights through its task (:meth:`~medviz.train.task.TrainTask.export`).

    The child builds the task and its data again (a task's export may need what its data told it:
    class names, channels), loads ``weights`` into a fresh network and answers with the entry.
    """

    command: TrainCommand
    weights: Path
    out_dir: Path
    name: str
    metrics: dict[str, Any]
    command_line: str
    nice: int | None = None


@dataclass(frozen=True)
class RunSummary:
    """A finished (or stopped) run without its model, which stays in ``run_dir/best.safetensors``."""

    status: str
    best_epoch: int
    best_metric: float
    monitor: str
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, result: TrainResult) -> RunSummary:
        return cls(status=result.status, best_epoch=result.best_epoch, best_metric=result.best_metric,
                   monitor=result.monitor, history=list(result.history))


def unexpected_error(task: str, error: BaseException) -> str:
    """The words shown for an error the task did not anticipate (a plugin bug): no exception class name."""
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else "no details"
    return (f"the {task} training stopped because of an unexpected problem in the program ({detail}); the server "
            "log has the details")


class _Sender:
    """Send messages to the parent; once the parent is gone, ask training to stop instead of failing."""

    def __init__(self, conn: Connection, stop: threading.Event) -> None:
        self.conn, self.stop, self.lock = conn, stop, threading.Lock()

    def __call__(self, kind: str, value: Any) -> None:
        try:
            with self.lock:
                self.conn.send((kind, value))
        except OSError:
            self.stop.set()

    def event(self, event: TrainEvent) -> None:
        if event.kind != "error":  # the parent reports errors itself, in words (``("error", ...)``)
            self("event", event)


def _watch(control: Connection, stop: threading.Event) -> None:
    """Stop on the parent's ``"stop"`` or when the control pipe ends (the parent is gone)."""
    while True:
        try:
            if control.recv() == STOP:
                stop.set()
        except (EOFError, OSError):
            stop.set()
            return


def _train(request: TrainRequest, send: _Sender, stop: threading.Event) -> None:
    task = request.command.build_task()
    result = train(task, request.command.config, request.run_dir, listeners=[send.event], stop_event=stop,
                   resume=request.resume)
    send("result", RunSummary.of(result))


def _export(request: ExportRequest, send: _Sender) -> None:
    task = request.command.build_task()
    task.build_data()
    model = task.build_model()
    model.load_state_dict(load_state_dict(request.weights), strict=True)
    model.eval()
    send("entry", task.export(model, request.out_dir, request.name, request.metrics, request.command_line))


def serve(control: Connection, events: Connection) -> int:
    """Read one request from ``control``, do it, answer on ``events``; the exit status is 0 when an
    answer was sent."""
    request = control.recv()
    if not isinstance(request, (TrainRequest, ExportRequest)):
        raise TypeError(f"not a worker request: {type(request).__name__}")
    lower_process_priority(request.nice)
    set_inference_threads(get_settings().infer_threads)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=_watch, args=(control, stop), name="medviz-worker-control", daemon=True).start()
    send = _Sender(events, stop)
    try:
        if isinstance(request, TrainRequest):
            _train(request, send, stop)
        else:
            _export(request, send)
    except MedvizError as e:
        send("error", str(e))
    except Exception as e:  # noqa: BLE001 -- a plugin bug ends the job visibly, in words; the trace goes to the log
        log.exception("training child failed")
        send("error", unexpected_error(request.command.task, e))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medviz.train.child", description=__doc__.splitlines()[0])
    parser.add_argument("--control", type=int, required=True, help="file descriptor of the request pipe")
    parser.add_argument("--events", type=int, required=True, help="file descriptor of the answer pipe")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="medviz training child: %(message)s")
    return serve(Connection(args.control, writable=False), Connection(args.events, readable=False))
