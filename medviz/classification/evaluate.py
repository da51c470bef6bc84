"""Evaluate a registered classifier on a MedMNIST split (or the Kermany chest X-ray layout,
:mod:`medviz.classification.kermany_eval`); also writes classifier model cards.

``python -m medviz.evaluate --model breast_resnet --json [--data DIR|FILE.npz] [--split test] [--limit N]``

With ``--ood`` the out-of-distribution detector is measured instead (:mod:`medviz.classification.ood_eval`):
the model's test split against every other image family available offline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification import kermany
from medviz.classification.calibration import expected_calibration_error, nll, reliability, softmax
from medviz.classification.data import DataError, load_npz_split, look_up_dataset, resolve_npz
from medviz.classification.infer import batch_logits
from medviz.classification.kermany_card import format_cxr_table
from medviz.classification.kermany_eval import evaluate_cxr
from medviz.classification.metrics import (
    bootstrap_ci,
    classification_metrics,
    confident_errors,
    confusion,
    format_ci,
    operating_point,
    roc,
    thresholded_predictions,
)
from medviz.classification.ood_eval import evaluate_ood, format_ood_table
from medviz.classification.preprocess import preprocess_batch
from medviz.config import select_device
from medviz.models.registry import ModelEntry
from medviz.models.specs import ClassifierSpec
from medviz.models.weights import load_model
from medviz.options import EvalOptions, option


@dataclass(frozen=True)
class EvalRun:
    """Everything the evaluation view needs about one model on one split.

    Attributes:
        images: raw images as stored, ``(N, H, W)`` or ``(N, H, W, 3)`` uint8.
        labels: ``(N,)`` int labels.
        logits: ``(N, K)`` float64.
        probs: ``(N, K)`` uncalibrated softmax.
        probs_calibrated: ``(N, K)`` softmax of ``logits / temperature``.
        temperature: from the manifest (fitted on val at export).
        classes: class names.
    """

    images: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    probs_calibrated: np.ndarray
    temperature: float
    classes: list[str]


@dataclass(frozen=True)
class ClassificationEvalOptions(EvalOptions):
    """``python -m medviz.evaluate --model NAME`` options for a classifier."""

    limit: int | None = option(None, label="Images to evaluate (empty: all)", min=1,
                               help="evaluate only the first N images of the split")
    n_boot: int = option(1000, label="Bootstrap resamples", min=0, help="bootstrap resamples for the 95% intervals")
    ood: bool = option(False, label="Out-of-distribution detection",
                       help="measure the OOD detector: the test split against every other image family offline "
                            "(AUROC, FPR at 95% TPR, abstention per family)")

    def quick(self) -> ClassificationEvalOptions:
        return replace(self, n_boot=200)


OPTIONS = ClassificationEvalOptions


def run_model(model: Any, spec: ClassifierSpec, split: str = "test", data: Path | None = None,
              limit: int | None = None, device: str = "cpu") -> EvalRun:
    """Predict one split of the model's data set with ``model`` (not modified).

    Args:
        data: ``.npz`` file or a folder holding it (default: the data directory).
        limit: keep only the first ``limit`` images.
    """
    if spec.from_folder:
        raise DataError(f"{spec.name!r} was trained on a folder set; evaluate it with its own split folders")
    if spec.dataset_key == kermany.KEY:  # radiographs of mixed sizes: the model input stands in for the images
        part = kermany.load_split(split, spec.input.size, data, limit=limit)
        x, labels = part.x, part.y
        images = np.round(x[:, 0] * 255).astype(np.uint8)
    else:
        images, labels = load_npz_split(resolve_npz(look_up_dataset(spec.dataset_key), data), split)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        x = preprocess_batch(images, spec.input.channels, spec.input.size)
    logits = batch_logits(model, x, device)
    t = spec.temperature
    return EvalRun(images, labels, logits, softmax(logits), softmax(logits, t), t, list(spec.classes))


def summarise(run: EvalRun, n_boot: int = 1000) -> dict[str, Any]:
    """AUC/ACC (calibration does not change them), 95 % bootstrap CIs, NLL and ECE before/after."""
    m = classification_metrics(run.probs_calibrated, run.labels)
    ci = bootstrap_ci(run.probs_calibrated, run.labels, n_boot=n_boot)
    return {**m, "auc_ci95": ci["auc"], "acc_ci95": ci["acc"],
            "ece": expected_calibration_error(run.probs, run.labels),
            "ece_calibrated": expected_calibration_error(run.probs_calibrated, run.labels),
            "nll": nll(run.logits, run.labels), "nll_calibrated": nll(run.logits, run.labels, run.temperature),
            "temperature": run.temperature,
            "class_counts": np.bincount(run.labels, minlength=len(run.classes)).tolist()}


def evaluate(entry: ModelEntry, options: ClassificationEvalOptions) -> dict[str, Any]:
    """The ``python -m medviz.evaluate`` result object for a classifier."""
    device = select_device(options.device)
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    spec = entry.spec
    if options.ood:
        return evaluate_ood(model, entry, options.data)
    if spec.dataset_key == kermany.KEY:
        return evaluate_cxr(model, spec, entry.weights_dir, options.split, options.data, options.limit,
                            options.n_boot, device)
    run = run_model(model, spec, options.split, options.data, options.limit, device)
    s = summarise(run, options.n_boot)
    refs = spec.references
    base = next((r for r in refs if r["method"].startswith("ResNet-18 (28)")), None)
    beats = None if base is None or options.split != "test" or options.limit else bool(s["auc"] > base["auc"] and s["acc"] > base["acc"])
    return {"model": entry.name, "task": entry.task, "dataset": spec.dataset, "split": options.split,
            "n": int(len(run.labels)), **s, "beats_resnet18_28": beats, "references": refs,
            "sha256": spec.sha256}


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table of :func:`evaluate`'s result with the published rows beneath."""
    if result.get("ood"):
        return format_ood_table(result)
    if "comparison" in result:
        return format_cxr_table(result)
    lines = [f"{result['model']} ({result['dataset']}), split {result['split']}, n = {result['n']}",
             f"{'method':<36} {'AUC':>6} {'95% CI':>16} {'ACC':>6} {'95% CI':>16}",
             f"{'this model':<36} {result['auc']:>6.3f} {format_ci(result['auc_ci95']):>16} "
             f"{result['acc']:>6.3f} {format_ci(result['acc_ci95']):>16}"]
    for r in result.get("references", []):
        lines.append(f"{r['method']:<36} {r['auc']:>6.3f} {'':>16} {r['acc']:>6.3f}")
    lines.append(f"ECE {result['ece']:.3f} -> {result['ece_calibrated']:.3f} after temperature "
                 f"T = {result['temperature']:.3f}; NLL {result['nll']:.3f} -> {result['nll_calibrated']:.3f}")
    return "\n".join(lines)




def report_details(entry: ModelEntry, options: ClassificationEvalOptions, result: dict[str, Any], device: str) -> dict[str, Any]:
    """Extra pieces of a training run's report (:func:`medviz.evaluate.evaluation_report`): ``classes``,
    ``confusion`` (K, K) counts at arg-max and ``roc`` (``{class: {"fpr": [...], "tpr": [...]}}``)."""
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    run = run_model(model, entry.spec, options.split, options.data, options.limit, device)
    k = len(run.classes)
    curves = {}
    for positive in range(1 if k == 2 else 0, k):
        r = roc(run.probs, run.labels, positive)
        curves[run.classes[positive]] = {"fpr": np.asarray(r["fpr"]).tolist(), "tpr": np.asarray(r["tpr"]).tolist()}
    return {"classes": run.classes, "confusion": confusion(run.labels, run.probs.argmax(1), k).tolist(), "roc": curves}


@dataclass(frozen=True)
class OperatingView:
    """Everything the Model evaluation page shows for one positive class and threshold of an
    :class:`EvalRun` (calibrated probabilities throughout).

    Attributes:
        point: sensitivity, specificity and threshold at the operating point.
        ece_raw, ece_calibrated: top-label expected calibration error before / after temperature scaling.
        auc, acc: the model's test AUC and arg-max accuracy.
        roc: the ROC curve of the positive class (``fpr``, ``tpr``, ``auc``).
        confusion: ``(K, K)`` counts, rows true; binary: predictions at the threshold, else arg-max.
        reliability_raw, reliability_calibrated: reliability tables (see ``calibration.reliability``).
        errors: the most confident errors, most confident first.
    """

    point: dict[str, float]
    ece_raw: float
    ece_calibrated: float
    auc: float
    acc: float
    roc: dict[str, Any]
    confusion: np.ndarray
    reliability_raw: dict[str, np.ndarray]
    reliability_calibrated: dict[str, np.ndarray]
    errors: list[dict[str, Any]]


def operating_view(run: EvalRun, positive: int, threshold: float, n_errors: int = 12) -> OperatingView:
    """The page's numbers for positive class ``positive`` at calibrated-probability ``threshold``."""
    p, y = run.probs_calibrated, run.labels
    ours = classification_metrics(p, y)
    return OperatingView(
        point=operating_point(p, y, positive, threshold),
        ece_raw=expected_calibration_error(run.probs, y), ece_calibrated=expected_calibration_error(p, y),
        auc=ours["auc"], acc=ours["acc"], roc=roc(p, y, positive),
        confusion=confusion(y, thresholded_predictions(p, positive, threshold), len(run.classes)),
        reliability_raw=reliability(run.probs, y), reliability_calibrated=reliability(p, y),
        errors=confident_errors(p, y, n_errors))
