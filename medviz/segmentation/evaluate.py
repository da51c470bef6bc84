"""Evaluate a segmentation model on a segmentation folder (``python -m medviz.evaluate --model NAME``).

The folder is LGG-style (``pairs.csv``) or NIfTI image/label pairs (:mod:`medviz.segmentation.data`);
by default the folder the model was trained on (manifest ``data``), else the shared LGG folder.

Metric: mean over patients of the Dice of each patient's whole stack of slices (the quality bar),
with a 95 % percentile bootstrap CI over patients; plus the per-slice false-positive rate on slices
whose reference mask is empty. Post-processing (threshold, minimum 3D component size) and
test-time augmentation come from the manifest entry, where training chose them on the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import select_device
from medviz.constants import Task
from medviz.imaging.intensity import normalise_stack
from medviz.models.specs import SegmenterSpec
from medviz.models.weights import load_model
from medviz.options import EvalOptions, option
from medviz.segmentation.data import default_data_dir, evaluation_cases, load_case
from medviz.segmentation.infer import TTA_FLIPS, postprocess, predict_tta
from medviz.segmentation.measure import dice_score

PUBLISHED = {
    "source": "Buda, Saha, Mazurowski, Comput Biol Med 109:218-225 (2019), arXiv 1906.03720",
    "dice_mean": 0.82,
    "note": "mean Dice over 110 TCGA-LGG patients (cross-validation); not the same patients or split",
}
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MIN_SIZES = (0, 20, 50, 100, 200, 400, 800)


@dataclass(frozen=True)
class SegmentationEvalOptions(EvalOptions):
    """``python -m medviz.evaluate --model NAME`` options for a segmenter (None: the manifest's choice)."""

    threshold: float | None = option(None, label="Probability threshold (empty: the model's)", min=0.0, max=1.0,
                                     help="override the manifest threshold")
    min_size: int | None = option(None, label="Minimum component size (empty: the model's)", min=0,
                                  help="override the manifest minimum component size")
    tta: str | None = option(None, label="Test-time augmentation (empty: the model's)", choices=tuple(TTA_FLIPS),
                             help="override the manifest test-time augmentation")
    batch_size: int = option(16, label="Batch size (slices)", min=1)
    bootstrap: int = option(2000, label="Bootstrap resamples", min=0, help="bootstrap resamples for the 95% CI")

    def quick(self) -> SegmentationEvalOptions:
        return replace(self, bootstrap=200)


OPTIONS = SegmentationEvalOptions


def predict_cases(model: Any, root: Path, case_ids: list[str], batch_size: int = 16,
                  progress: Any = None, label_value: int | None = None,
                  tta: str = "none") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{case: (prob (Z, H, W) float32, truth (Z, H, W) uint8)}`` with slice-wise batched inference.

    ``label_value``: NIfTI folders only, foreground is ``label == label_value`` (None: ``label > 0``).
    ``tta``: test-time augmentation (:data:`medviz.segmentation.infer.TTA_FLIPS`)."""
    out = {}
    for i, case in enumerate(case_ids):
        image, mask = load_case(root, case, label_value)
        prob, _, _ = predict_tta(model, normalise_stack(image), tta, "stack", batch_size)
        out[case] = (prob, mask)
        if progress:
            progress(i + 1, len(case_ids))
    return out


def bootstrap_ci(values: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap CI of the mean (resampling patients)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or n <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def score(preds: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float, min_size: int,
          n_boot: int = 2000) -> dict[str, Any]:
    """Per-patient Dice, CI, and the false-positive rate on empty slices for given post-processing."""
    per_patient, empty, fp = {}, 0, 0
    for case, (prob, truth) in preds.items():
        mask = postprocess(prob, threshold, min_size)
        per_patient[case] = dice_score(mask, truth)
        neg = ~truth.reshape(truth.shape[0], -1).any(axis=1)
        empty += int(neg.sum())
        fp += int((mask.reshape(mask.shape[0], -1).any(axis=1) & neg).sum())
    values = list(per_patient.values())
    lo, hi = bootstrap_ci(values, n_boot)
    return {
        "n_patients": len(values),
        "n_slices": int(sum(p.shape[0] for p, _ in preds.values())),
        "dice_mean_per_patient": float(np.mean(values)) if values else float("nan"),
        "dice_median_per_patient": float(np.median(values)) if values else float("nan"),
        "dice_ci95": [lo, hi],
        "per_patient": per_patient,
        "empty_slices": empty,
        "fp_slices": fp,
        "fp_rate_empty_slices": fp / empty if empty else float("nan"),
        "threshold": threshold,
        "min_size": min_size,
    }


def tune(preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, int, float]:
    """Threshold and min component size maximising mean per-patient Dice on ``preds`` (use val only).

    Ties go to the setting closest to (0.5, 0) in grid order."""
    best = (-1.0, 0.5, 0)
    for t in THRESHOLDS:
        for m in MIN_SIZES:
            d = score(preds, t, m, n_boot=0)["dice_mean_per_patient"]
            if d > best[0] + 1e-9:
                best = (d, t, m)
    return best[1], best[2], best[0]


def data_folder(spec: SegmenterSpec, data: Any = None) -> Path:
    """``--data`` when given, else the folder the model was trained on (``spec.data``, when it
    still exists), else the shared LGG folder."""
    if data:
        return Path(data)
    trained_on = spec.data
    if trained_on and Path(trained_on).is_dir():
        return Path(trained_on)
    return default_data_dir()


def evaluate(entry: Any, options: SegmentationEvalOptions) -> dict[str, Any]:
    spec = entry.spec
    root = data_folder(spec, options.data)
    model, entry = load_model(entry.name, device=select_device(options.device),
                              weights_dir=entry.weights_dir)
    threshold = options.threshold if options.threshold is not None else spec.threshold
    min_size = options.min_size if options.min_size is not None else spec.min_size
    tta = options.tta or spec.tta
    case_ids, split = evaluation_cases(root, options.split)
    preds = predict_cases(model, root, case_ids, options.batch_size, label_value=spec.label_value, tta=tta)
    result = {"model": entry.name, "task": Task.SEGMENTATION, "data": str(root), "split": split, "tta": tta}
    result.update(score(preds, threshold, min_size, options.bootstrap))
    result["published_reference"] = PUBLISHED
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [(f"{result['model']} on {result['data']} ({result['split']}): {result['n_patients']} patients, "
              f"{result['n_slices']} slices, threshold {result['threshold']}, min size {result['min_size']}, "
              f"test-time augmentation {result.get('tta', 'none')}"),
             f"{'case':<28} Dice"]
    lines += [f"{c:<28} {d:.4f}" for c, d in result["per_patient"].items()]
    lo, hi = result["dice_ci95"]
    lines.append(f"{'mean per-patient Dice':<28} {result['dice_mean_per_patient']:.4f} (95% CI {lo:.4f}-{hi:.4f})")
    lines.append(f"{'FP rate on empty slices':<28} {result['fp_rate_empty_slices']:.4f} "
                 f"({result['fp_slices']}/{result['empty_slices']})")
    lines.append(f"published: {result['published_reference']['dice_mean']} ({result['published_reference']['source']})")
    return "\n".join(lines)


def report_details(entry: Any, options: SegmentationEvalOptions, result: dict[str, Any], device: str) -> dict[str, Any]:
    """Extra pieces of a training run's report: ``per_case`` ``[(case, Dice), ...]``, worst first."""
    per_patient = result.get("per_patient")
    return {"per_case": sorted(per_patient.items(), key=lambda kv: kv[1])} if isinstance(per_patient, dict) else {}
