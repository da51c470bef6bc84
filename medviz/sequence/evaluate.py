"""Evaluate a sequence model: ``python -m medviz.evaluate --model NAME --json [--data DIR] [--split test]``.

Every method is scored on the same slices of the same patients: the GRU (the model) and the baselines of
:mod:`medviz.sequence.baselines` (``position_prior``, ``per_slice``, ``per_slice_smoothed``,
``segmenter_smoothed``), with the smoothing windows and the position prior the model's export chose on
the validation and training splits. For each baseline the paired patient-bootstrap difference of the GRU
minus the baseline is reported for AUPRC and log loss (95 % interval). With ``--data DIR`` (LGG layout, no
``splits.json``) every case in the folder is evaluated. With ``--ood`` the stack OOD detector is measured
instead (:func:`medviz.sequence.ood.evaluate_ood`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import select_device
from medviz.constants import Task
from medviz.options import EvalOptions, option
from medviz.sequence import baselines
from medviz.sequence.data import default_data_dir, load_stack, split_cases
from medviz.sequence.infer import load_models, predict_stack
from medviz.sequence.metrics import auprc, log_loss, paired_bootstrap, slice_metrics
from medviz.sequence.ood import evaluate_ood, format_ood_table

METHODS = ("position_prior", "per_slice", "per_slice_smoothed", "segmenter_smoothed")


@dataclass(frozen=True)
class SequenceEvalOptions(EvalOptions):
    """``python -m medviz.evaluate --model NAME`` options for a sequence model."""

    bootstrap: int = option(2000, label="Bootstrap resamples", min=0,
                            help="patient-bootstrap resamples for the 95%% intervals of the paired differences")

    ood: bool = option(False, label="Out-of-distribution detection",
                       help="measure the stack OOD detector instead (medviz.sequence.ood; the one test look)")

    def quick(self) -> SequenceEvalOptions:
        return replace(self, bootstrap=200)


OPTIONS = SequenceEvalOptions


def predict_cases(model: Any, segmenter: Any, spec: Any, root: Path, case_ids: list[str]) -> dict[str, Any]:
    """``{"labels": [(Z,)...], "gru": [...], <each baseline>: [...]}`` per case, in ``case_ids`` order."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("labels", "gru", *METHODS)}
    for case in case_ids:
        stack = load_stack(root, case)
        pred = predict_stack(model, segmenter, stack.x, lr_flip=spec.lr_flip)
        out["labels"].append(stack.labels)
        out["gru"].append(pred.gru)
        out["position_prior"].append(baselines.position_prior(np.asarray(spec.position_prior), len(stack.labels)))
        out["per_slice"].append(pred.per_slice)
        out["per_slice_smoothed"].append(baselines.rolling_mean(pred.per_slice, spec.per_slice_window))
        out["segmenter_smoothed"].append(baselines.rolling_mean(pred.segmenter, spec.segmenter_window))
    return out


def score(preds: dict[str, Any], n_boot: int = 2000) -> dict[str, Any]:
    """The evaluate contract from :func:`predict_cases`' output (see the module docstring)."""
    labels = preds["labels"]
    result: dict[str, Any] = {"n_patients": len(labels), "n_slices": int(sum(len(y) for y in labels)),
                              **slice_metrics(labels, preds["gru"]), "baselines": {}}
    for name in METHODS:
        base = slice_metrics(labels, preds[name])
        base["gru_minus_baseline"] = {
            "auprc": paired_bootstrap(labels, preds["gru"], preds[name], auprc, n_boot),
            "log_loss": paired_bootstrap(labels, preds["gru"], preds[name], log_loss, n_boot),
        }
        result["baselines"][name] = base
    return result


def data_folder(data: Path | None) -> Path:
    return Path(data) if data else default_data_dir()


def evaluate(entry: Any, options: SequenceEvalOptions) -> dict[str, Any]:
    spec = entry.spec
    device = select_device(options.device)
    if options.ood:
        return evaluate_ood(entry, options.data, device)
    model, segmenter, _ = load_models(entry.name, device=device, weights_dir=entry.weights_dir)
    root = data_folder(options.data)
    case_ids, split = split_cases(root, options.split)
    result = {"model": entry.name, "task": Task.SEQUENCE, "data": str(root), "split": split}
    result.update(score(predict_cases(model, segmenter, spec, root, case_ids), options.bootstrap))
    return result


def format_table(result: dict[str, Any]) -> str:
    if result.get("ood"):
        return format_ood_table(result)
    lines = [f"{result['model']} on {result['data']} ({result['split']}): {result['n_patients']} patients, "
             f"{result['n_slices']} slices",
             f"{'method':<22} {'AUPRC':>7} {'AUROC':>7} {'log loss':>9} {'extent':>7}   GRU - method: AUPRC [95% CI]"]
    rows = [("GRU (this model)", result, None)] + [(n, b, b["gru_minus_baseline"]["auprc"])
                                                   for n, b in result["baselines"].items()]
    for name, r, d in rows:
        diff = "" if d is None else f"   {d['difference']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"
        lines.append(f"{name:<22} {r['auprc']:>7.4f} {r['auroc']:>7.4f} {r['log_loss']:>9.4f} "
                     f"{r['extent_error']:>7.2f}{diff}")
    return "\n".join(lines)
