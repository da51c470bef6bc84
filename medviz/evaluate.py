"""Evaluate a registered model: ``python -m medviz.evaluate --model NAME --json [--data DIR] [--split test]``.

Prints one JSON object with ``--json``, else a table. The work is done by the model's task package,
``medviz.<task>.evaluate``, which provides::

    add_arguments(parser)                      # extra options, e.g. --acceleration
    evaluate(entry, args) -> dict              # one JSON-able result object (model, task, split, n, ...)
    format_table(result) -> str                # the human-readable table printed without --json

:func:`evaluation_report` does the same for a finished training run (the Training page): the run's best
weights are exported into a private registry inside the run folder and handed to the task's evaluator,
so the page shows the same numbers as ``python -m medviz.evaluate``; an evaluator may add task details
(``report_details``).

This module sits above the task packages (it may import each of them); nothing below imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from medviz.classification import evaluate as classification_evaluate
from medviz.models.registry import get_entry
from medviz.reconstruction import evaluate as reconstruction_evaluate
from medviz.segmentation import evaluate as segmentation_evaluate
from medviz.train.engine import export_model
from medviz.types import MedvizError

EVALUATORS: dict[str, ModuleType] = {
    "classification": classification_evaluate,
    "segmentation": segmentation_evaluate,
    "reconstruction": reconstruction_evaluate,
}


def evaluator_for(task: str) -> ModuleType:
    """The evaluation module of ``task`` (``ValueError`` for a task without one)."""
    if task not in EVALUATORS:
        raise ValueError(f"No evaluator for task {task!r}")
    return EVALUATORS[task]


PRIVATE = "run"  # model name inside <run_dir>/eval


def _evaluator_args(module: Any, split: str, data: Path | None, device: str, fast: bool) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    module.add_arguments(p)
    argv = ["--split", split, "--device", device] + (["--data", str(data)] if data else [])
    args = p.parse_args(argv)
    if fast:  # fewer bootstrap resamples: the page wants an answer in seconds
        for key in ("n_boot", "bootstrap"):
            if hasattr(args, key):
                setattr(args, key, 200)
    return args


def evaluation_report(task: Any, result: Any, run_dir: Path, split: str = "val", device: str = "cpu",
                      fast: bool = True) -> dict[str, Any]:
    """Evaluate ``result.model`` (best weights) on ``split`` with the task's evaluator.

    Returns:
        ``{"task", "split", "best_epoch", "monitor", "best_val", "history", "metrics", "note"}`` plus,
        by task: ``confusion`` (K, K) counts, ``classes`` and ``roc`` (``fpr``/``tpr`` lists) for
        classification; ``per_case`` (case, Dice) worst first for segmentation; ``psnr``/``ssim`` entries
        in ``metrics`` for reconstruction. ``note`` explains what is missing when an evaluator is absent.
    """
    report: dict[str, Any] = {"task": task.name, "split": split, "best_epoch": result.best_epoch,
                              "monitor": result.monitor, "best_val": result.best_metric,
                              "history": list(result.history), "metrics": {}, "note": ""}
    if result.history:
        report["metrics"] = {k: v for k, v in result.history[result.best_epoch - 1].items()
                             if k.startswith("val_") and isinstance(v, float)}
    try:
        module = evaluator_for(task.name)
        eval_dir = Path(run_dir) / "eval"
        export_model(task, result, eval_dir, PRIVATE, "(Training page run; not registered)", register=True)
        entry = get_entry(PRIVATE, weights_dir=eval_dir)
        args = _evaluator_args(module, split, getattr(task.args, "data", None), device, fast)
        out = module.evaluate(entry, args)
    except (ImportError, NotImplementedError, AttributeError, KeyError, TypeError, ValueError, MedvizError) as e:
        report["note"] = f"detailed {task.name} evaluation unavailable ({type(e).__name__}: {e}); showing validation metrics"
        return report
    report["evaluator"] = {k: v for k, v in out.items() if isinstance(v, (int, float, str))}
    details = getattr(module, "report_details", None)
    if details is not None:
        report.update(details(entry, args, out, device))
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)

    p = argparse.ArgumentParser(prog="python -m medviz.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model name (python -m medviz.models list)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--data", type=Path, default=None, help="data folder/file (default: the model's data set)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    try:
        entry = get_entry(known.model) if known.model else None
        module = evaluator_for(entry.task) if entry else None
        if module is not None:
            module.add_arguments(p.add_argument_group(f"{entry.task} options"))
        args = p.parse_args(argv)
        result = module.evaluate(entry, args)
    except MedvizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else module.format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
