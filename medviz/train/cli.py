"""``python -m medviz.train --task {classification,segmentation,reconstruction} --data DIR ...``

Trains through the one engine, shows a progress bar, and writes the selected model's weights,
model card and metrics to ``--out`` (``--register`` also adds it to that folder's manifest).
Runs the same way under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Iterable

from medviz.models.registry import ModelEntry
from medviz.options import describe
from medviz.train.command import RunOptions, TrainCommand, command_line
from medviz.train.engine import TrainConfig, export_model, train
from medviz.train.progress import ProgressBar
from medviz.train.registry import get_task_class, task_names
from medviz.types import MedvizError


def add_options(parser: Any, cls: Any, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """Add one flag per field of the options dataclass ``cls`` to ``parser`` (a parser or group).

    Flags, types, ``nargs``, choices, metavars and help come from :func:`medviz.options.describe`;
    the ``dest`` of field ``x`` is ``prefix + x`` (read back with :func:`options_from`)."""
    for o in describe(cls):
        if o.name in skip:
            continue
        kw: dict[str, Any] = {"dest": prefix + o.name, "default": o.default,
                              "help": o.help.replace("%", "%%") or None}
        if o.type is bool and o.container is None:
            kw["action"] = "store_false" if o.negated else "store_true"
        else:
            kw.update(type=o.type, nargs=o.nargs, choices=o.choices,
                      metavar=None if o.choices else o.metavar or o.name.upper())
        parser.add_argument(o.flag, **{k: v for k, v in kw.items() if v is not None or k == "default"})


def options_from(ns: argparse.Namespace, cls: Any, prefix: str = "", **given: Any) -> Any:
    """The ``cls`` instance described by parsed flags (see :func:`add_options`); ``given`` fields win."""
    values = {o.name: o.convert(getattr(ns, prefix + o.name)) for o in describe(cls) if o.name not in given}
    return cls(**values, **given)


def build_parser(task: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medviz.train", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=task_names())
    add_options(p, RunOptions, "run.")
    add_options(p, TrainConfig, "config.")
    if task in task_names():
        add_options(p.add_argument_group(f"{task} options"), get_task_class(task).Options, "task.")
    return p


def parse(argv: list[str]) -> TrainCommand:
    """The :class:`~medviz.train.command.TrainCommand` a ``python -m medviz.train`` argv describes
    (argparse errors exit, as on the command line)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    ns = build_parser(known.task).parse_args(argv)
    return TrainCommand(task=ns.task, run=options_from(ns, RunOptions, "run."),
                        config=options_from(ns, TrainConfig, "config."),
                        options=options_from(ns, get_task_class(ns.task).Options, "task."))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = parse(argv)
    found = cmd.problems()
    if found:
        print(f"error: {'; '.join(found)}", file=sys.stderr)
        return 2
    name, run_dir, out = cmd.model_name(), cmd.run_dir(), cmd.out_dir()
    cfg = cmd.config
    task = cmd.build_task()
    listeners = [] if cmd.run.quiet else [ProgressBar()]
    command = command_line(argv)
    stop = threading.Event()
    previous = {}
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and threading.current_thread() is threading.main_thread():
        # Ctrl-C / SIGTERM: stop cleanly, keep the last checkpoint (handlers restored afterwards).
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = task.assembled_result() or train(task, cfg, run_dir, listeners=listeners, stop_event=stop,
                                                  resume=cmd.run.resume)
        if int(os.environ.get("RANK", "0")) != 0:
            return 0
        if result.status == "stopped":
            print(json.dumps({"status": "stopped", "run_dir": str(run_dir),
                              "resume": "rerun the same command with --resume"}, indent=2))
            return 3
        entry = export_model(task, result, out, name, command, register=cmd.run.register)
        metrics_path = out / f"{name}.metrics.json"
        metrics_path.write_text(json.dumps({"command": command, "status": result.status,
                                            "best_epoch": result.best_epoch, "monitor": result.monitor,
                                            "best_val": result.best_metric, "history": result.history}, indent=2))
    except (MedvizError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps({"status": result.status, "best_epoch": result.best_epoch, result.monitor: result.best_metric,
                      "weights": str(ModelEntry(raw=entry, weights_dir=out).weights_path), "metrics": str(metrics_path), "run_dir": str(run_dir)},
                     indent=2))
    return 0
