"""``python -m medviz.train --task {classification,segmentation,reconstruction} --data DIR ...``

Trains through the one engine, shows a progress bar, and writes the selected model's weights,
model card and metrics to ``--out`` (``--register`` also adds it to that folder's manifest).
Runs the same way under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from medviz.config import get_settings
from medviz.train.engine import TrainConfig, export_model, train
from medviz.train.progress import ProgressBar
from medviz.train.registry import get_task_class, task_names
from medviz.types import MedvizError


def build_parser(task: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medviz.train", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=task_names())
    p.add_argument("--data", type=Path, default=None, help="data folder or file (default: the task's data set under MEDVIZ_DATA_DIR)")
    p.add_argument("--name", default=None, help="model name in the registry (default: <task>-run)")
    p.add_argument("--out", type=Path, default=None, help="folder for weights, model card and metrics (default: <run-dir>/export)")
    p.add_argument("--register", action="store_true", help="add the model to <out>/manifest.json")
    p.add_argument("--run-dir", type=Path, default=None, help="checkpoint folder (default: MEDVIZ_RUNS_DIR/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--scheduler", choices=["cosine", "step", "none"], default="cosine")
    p.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: off)")
    p.add_argument("--skip-nonfinite", type=int, default=0, metavar="N",
                   help="skip up to N optimiser steps with a NaN/Inf loss or gradient instead of failing (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if task in task_names():
        get_task_class(task).add_arguments(p.add_argument_group(f"{task} options"))
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    return build_parser(known.task).parse_args(argv)


def config_from_args(args: argparse.Namespace):
    """The :class:`~medviz.train.engine.TrainConfig` described by parsed command-line options."""
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       scheduler=args.scheduler, patience=args.patience, seed=args.seed, device=args.device,
                       amp=not args.no_amp, num_workers=args.num_workers, max_steps_per_epoch=args.max_steps_per_epoch,
                       grad_clip=args.grad_clip, skip_nonfinite=args.skip_nonfinite)


def command_line(argv: list[str]) -> str:
    """The shell command that reproduces a run (``--resume`` dropped), for model cards."""
    return "python -m medviz.train " + " ".join(shlex.quote(a) for a in argv if a != "--resume")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    name = args.name or f"{args.task}-run"
    run_dir = args.run_dir or get_settings().runs_dir / name
    out = args.out or run_dir / "export"
    cfg = config_from_args(args)
    task = get_task_class(args.task)(args)
    listeners = [] if args.quiet else [ProgressBar()]
    command = command_line(argv)
    stop = threading.Event()
    previous = {}
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and threading.current_thread() is threading.main_thread():
        # Ctrl-C / SIGTERM: stop cleanly, keep the last checkpoint (handlers restored afterwards).
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = task.assembled_result() or train(task, cfg, run_dir, listeners=listeners, stop_event=stop,
                                                  resume=args.resume)
        if int(os.environ.get("RANK", "0")) != 0:
            return 0
        if result.status == "stopped":
            print(json.dumps({"status": "stopped", "run_dir": str(run_dir),
                              "resume": "rerun the same command with --resume"}, indent=2))
            return 3
        entry = export_model(task, result, out, name, command, register=args.register)
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
                      "weights": str(out / entry["file"]), "metrics": str(metrics_path), "run_dir": str(run_dir)},
                     indent=2))
    return 0
