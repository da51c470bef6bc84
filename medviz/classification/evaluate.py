"""Evaluate a registered classifier on a MedMNIST split; also writes classifier model cards.

``python -m medviz.evaluate --model breast_resnet --json [--data DIR|FILE.npz] [--split test] [--limit N]``
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification.calibration import expected_calibration_error, nll, softmax
from medviz.classification.data import DataError, load_npz_split, look_up_dataset, resolve_npz
from medviz.classification.infer import batch_logits
from medviz.classification.metrics import bootstrap_ci, classification_metrics, confusion, format_ci, roc
from medviz.classification.preprocess import preprocess_batch
from medviz.config import select_device
from medviz.models.registry import ModelEntry
from medviz.models.weights import load_model


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images of the split")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")


def run_model(model: Any, entry: ModelEntry, split: str = "test", data: Path | None = None,
              limit: int | None = None, device: str = "cpu") -> EvalRun:
    """Predict one split of the model's data set with ``model`` (not modified).

    Args:
        data: ``.npz`` file or a folder holding it (default: the data directory).
        limit: keep only the first ``limit`` images.
    """
    key = entry.get("dataset_key")
    if not key or key == "folder":
        raise DataError(f"{entry.name!r} was trained on a folder set; evaluate it with its own split folders")
    images, labels = load_npz_split(resolve_npz(look_up_dataset(key), data), split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    spec = entry.raw["input"]
    x = preprocess_batch(images, spec["channels"], spec["size"])
    logits = batch_logits(model, x, device)
    t = float(entry.get("temperature", 1.0))
    return EvalRun(images, labels, logits, softmax(logits), softmax(logits, t), t, list(entry.raw["classes"]))


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


def evaluate(entry: ModelEntry, args: argparse.Namespace) -> dict[str, Any]:
    """The ``python -m medviz.evaluate`` result object for a classifier."""
    device = select_device(getattr(args, "device", "auto"))
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    run = run_model(model, entry, args.split, args.data, getattr(args, "limit", None), device)
    s = summarise(run, getattr(args, "n_boot", 1000))
    refs = entry.get("references", [])
    base = next((r for r in refs if r["method"].startswith("ResNet-18 (28)")), None)
    beats = None if base is None or args.split != "test" or args.limit else bool(s["auc"] > base["auc"] and s["acc"] > base["acc"])
    return {"model": entry.name, "task": entry.task, "dataset": entry.get("dataset"), "split": args.split,
            "n": int(len(run.labels)), **s, "beats_resnet18_28": beats, "references": refs,
            "sha256": entry.raw["sha256"]}


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table of :func:`evaluate`'s result with the published rows beneath."""
    lines = [f"{result['model']} ({result['dataset']}), split {result['split']}, n = {result['n']}",
             f"{'method':<36} {'AUC':>6} {'95% CI':>16} {'ACC':>6} {'95% CI':>16}",
             f"{'this model':<36} {result['auc']:>6.3f} {format_ci(result['auc_ci95']):>16} "
             f"{result['acc']:>6.3f} {format_ci(result['acc_ci95']):>16}"]
    for r in result.get("references", []):
        lines.append(f"{r['method']:<36} {r['auc']:>6.3f} {'':>16} {r['acc']:>6.3f}")
    lines.append(f"ECE {result['ece']:.3f} -> {result['ece_calibrated']:.3f} after temperature "
                 f"T = {result['temperature']:.3f}; NLL {result['nll']:.3f} -> {result['nll_calibrated']:.3f}")
    return "\n".join(lines)




def report_details(entry: ModelEntry, args: argparse.Namespace, result: dict[str, Any], device: str) -> dict[str, Any]:
    """Extra pieces of a training run's report (:func:`medviz.evaluate.evaluation_report`): ``classes``,
    ``confusion`` (K, K) counts at arg-max and ``roc`` (``{class: {"fpr": [...], "tpr": [...]}}``)."""
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    run = run_model(model, entry, args.split, args.data, getattr(args, "limit", None), device)
    k = len(run.classes)
    curves = {}
    for positive in range(1 if k == 2 else 0, k):
        r = roc(run.probs, run.labels, positive)
        curves[run.classes[positive]] = {"fpr": np.asarray(r["fpr"]).tolist(), "tpr": np.asarray(r["tpr"]).tolist()}
    return {"classes": run.classes, "confusion": confusion(run.labels, run.probs.argmax(1), k).tolist(), "roc": curves}
