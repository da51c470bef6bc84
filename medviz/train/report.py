"""Evaluation report of a finished training run, for the Training page.

The run's best weights are exported into a private registry inside the run folder and handed to
the task's evaluator (:mod:`medviz.evaluation`), so the page shows the same numbers as
``python -m medviz.evaluate``. Tasks without an evaluator get the validation history only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from medviz.types import MedvizError

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
    from medviz.models.registry import get_entry
    from medviz.train.engine import export_model

    report: dict[str, Any] = {"task": task.name, "split": split, "best_epoch": result.best_epoch,
                              "monitor": result.monitor, "best_val": result.best_metric,
                              "history": list(result.history), "metrics": {}, "note": ""}
    if result.history:
        report["metrics"] = {k: v for k, v in result.history[result.best_epoch - 1].items()
                             if k.startswith("val_") and isinstance(v, float)}
    try:
        from medviz.evaluation import evaluator_for

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
    if task.name == "classification":
        _add_classification(report, module, entry, args, device)
    elif task.name == "segmentation" and isinstance(out.get("per_patient"), dict):
        report["per_case"] = sorted(out["per_patient"].items(), key=lambda kv: kv[1])
    return report


def _add_classification(report: dict[str, Any], module: Any, entry: Any, args: argparse.Namespace,
                        device: str) -> None:
    from medviz.evaluation.report import confusion, roc
    from medviz.models.weights import load_model

    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    run = module.run_model(model, entry, args.split, args.data, getattr(args, "limit", None), device)
    k = len(run.classes)
    report["classes"] = run.classes
    report["confusion"] = confusion(run.labels, run.probs.argmax(1), k).tolist()
    curves = {}
    for positive in range(1 if k == 2 else 0, k):
        r = roc(run.probs, run.labels, positive)
        curves[run.classes[positive]] = {"fpr": np.asarray(r["fpr"]).tolist(), "tpr": np.asarray(r["tpr"]).tolist()}
    report["roc"] = curves
