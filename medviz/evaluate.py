"""Evaluate a registered model: ``python -m medviz.evaluate --model NAME --json [--data DIR] [--split test]``.

Prints one JSON object with ``--json``, else a table. The work is done by the model's task package,
``medviz.<task>.evaluate``, which provides::

    OPTIONS                                    # its EvalOptions dataclass (medviz.options), e.g. acceleration
    evaluate(entry, options) -> dict           # one JSON-able result object (model, task, split, n, ...)
    format_table(result) -> str                # the human-readable table printed without --json

The command line derives its flags from the ``OPTIONS`` fields (:func:`medviz.train.cli.add_options`).

:func:`evaluation_report` does the same for a finished training run (the Training page): the run's best
weights are exported into a private registry inside the run folder and handed to the task's evaluator,
so the page shows the same numbers as ``python -m medviz.evaluate``; an evaluator may add task details
(``report_details``).

This module sits above the task packages (it may import each of them); nothing below imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from medviz.classification import evaluate as classification_evaluate
from medviz.constants import Task
from medviz.models.registry import get_entry
from medviz.options import EvalOptions
from medviz.reconstruction import evaluate as reconstruction_evaluate
from medviz.segmentation import evaluate as segmentation_evaluate
from medviz.sequence import evaluate as sequence_evaluate
from medviz.superres import evaluate as superres_evaluate
from medviz.train.cli import add_options, options_from
from medviz.train.engine import export_model
from medviz.types import MedvizError

EVALUATORS: dict[str, ModuleType] = {
    Task.CLASSIFICATION: classification_evaluate,
    Task.SEGMENTATION: segmentation_evaluate,
    Task.RECONSTRUCTION: reconstruction_evaluate,
    Task.SEQUENCE: sequence_evaluate,
    Task.SUPERRES: superres_evaluate,
}


def evaluator_for(task: str) -> ModuleType:
    """The evaluation module of ``task`` (``ValueError`` for a task without one)."""
    if task not in EVALUATORS:
        raise ValueError(f"No evaluator for task {task!r}")
    return EVALUATORS[task]


PRIVATE = "run"  # model name inside <run_dir>/eval


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
        options = module.OPTIONS(split=split, device=device, data=task.data_path)
        if fast:  # fewer bootstrap resamples: the page wants an answer in seconds
            options = options.quick()
        out = module.evaluate(entry, options)
    except (ImportError, NotImplementedError, AttributeError, KeyError, TypeError, ValueError, MedvizError) as e:
        report["note"] = f"detailed {task.name} evaluation unavailable ({e}); showing validation metrics"
        return report
    report["evaluator"] = {k: v for k, v in out.items() if isinstance(v, (int, float, str))}
    details = getattr(module, "report_details", None)
    if details is not None:
        report.update(details(entry, options, out, device))
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)

    p = argparse.ArgumentParser(prog="python -m medviz.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model name (python -m medviz.models list)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    try:
        entry = get_entry(known.model) if known.model else None
        module = evaluator_for(entry.task) if entry else None
        add_options(p, EvalOptions, "common.")
        if module is not None:
            add_options(p.add_argument_group(f"{entry.task} options"), module.OPTIONS, "task.",
                        skip=[f.name for f in dataclasses.fields(EvalOptions)])
        args = p.parse_args(argv)
        common = options_from(args, EvalOptions, "common.")
        given = {f.name: getattr(common, f.name) for f in dataclasses.fields(EvalOptions)}
        result = module.evaluate(entry, options_from(args, module.OPTIONS, "task.", **given))
    except MedvizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else module.format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
