"""Evaluation of a chest X-ray classifier on the Kermany layout (:mod:`medviz.classification.kermany`).

The evaluate contract of the other classifiers (``auc``, ``acc`` = arg-max, 95 % bootstrap intervals)
plus ``sensitivity`` / ``specificity`` at the operating ``threshold`` chosen on val
(:func:`youden_threshold`), the same numbers without and with only the test images whose
``personN`` number also occurs in train (``subsets``), and ``comparison``: the shipped 28-px
``pneumonia_resnet`` on the same images, downsampled by the same
:func:`~medviz.classification.preprocess.preprocess_image` at 28 px as its card states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification import kermany
from medviz.classification.calibration import expected_calibration_error, nll, softmax
from medviz.classification.infer import batch_logits
from medviz.classification.metrics import auc_score, default_positive
from medviz.models.registry import RegistryError
from medviz.models.specs import ClassifierSpec
from medviz.models.weights import load_model

#: The shipped 28-px model the 224-px one is compared with.
BASELINE = "pneumonia_resnet"
#: Kermany et al., Cell 2018, test split: the bar (accuracy and AUC) and the aim (MedMNIST+ / v2 best).
BAR = {"acc": 0.928, "auc": 0.968}
AIM = {"acc": 0.946, "auc": 0.989}
REFERENCES: tuple[dict[str, Any], ...] = (
    {"method": "Kermany et al. 2018 (Inception v3, ImageNet, full train set)", "auc": 0.968, "acc": 0.928,
     "sensitivity": 0.932, "specificity": 0.901, "source": "Cell 172(5):1122-1131; ../shared/docs/BENCHMARKS.md 5.1"},
    {"method": "MedMNIST v2 ResNet-18 (28)", "auc": 0.944, "acc": 0.854, "source": "BENCHMARKS.md 1.1"},
    {"method": "MedMNIST v2 ResNet-18 (224, upsampled 28)", "auc": 0.956, "acc": 0.864, "source": "BENCHMARKS.md 1.1"},
    {"method": "MedMNIST v2 best (Google AutoML Vision, 28)", "auc": 0.991, "acc": 0.946, "source": "BENCHMARKS.md 1.1"},
    {"method": "MedMNIST+ best at 224 (DINO ViT-B/16 LP, pretrained)", "auc": 0.9892, "acc": 0.9156,
     "source": "BENCHMARKS.md 1.2"},
)


def youden_threshold(p_pos: np.ndarray, y: np.ndarray) -> float:
    """The operating threshold on val: the probability cut maximising Youden's J (sensitivity +
    specificity - 1), ties broken by the cut closest to 0.5; cases with ``p >= t`` are positive.
    Candidates are the midpoints between consecutive distinct probabilities (and their ends)."""
    p, y = np.asarray(p_pos, dtype=np.float64), np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return 0.5
    u = np.unique(p)
    cands = np.concatenate([[u[0] - 1e-9], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-9]]) if len(u) > 1 else u
    call = p[None, :] >= cands[:, None]
    j = (call & y).sum(1) / y.sum() + (~call & ~y).sum(1) / (~y).sum() - 1
    best = np.flatnonzero(np.isclose(j, j.max(), rtol=0, atol=1e-12))
    return float(np.clip(cands[best[np.argmin(np.abs(cands[best] - 0.5))]], 0.0, 1.0))


def _point(p_pos: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    pos, call = y == 1, p_pos >= threshold
    nan = float("nan")
    return {"auc": auc_score(np.stack([1 - p_pos, p_pos], 1), y),
            "acc": float(np.mean((p_pos > 0.5) == pos)),  # arg-max of two classes (a tie goes to class 0)
            "sensitivity": float(np.mean(call[pos])) if pos.any() else nan,
            "specificity": float(np.mean(~call[~pos])) if (~pos).any() else nan,
            "acc_at_threshold": float(np.mean(call == pos))}


def binary_report(p_pos: np.ndarray, y: np.ndarray, threshold: float, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUC, arg-max accuracy, sensitivity / specificity / accuracy at ``threshold``, each with a 95 %
    percentile bootstrap interval (``<metric>_ci95``; ``n_boot`` resamples of the cases, seeded)."""
    p_pos, y = np.asarray(p_pos, dtype=np.float64), np.asarray(y).astype(np.int64)
    out: dict[str, Any] = {"n": int(len(y)), "n_pneumonia": int(y.sum()), "threshold": float(threshold),
                           **_point(p_pos, y, threshold)}
    rng = np.random.default_rng(seed)
    draws = [_point(p_pos[i], y[i], threshold) for i in (rng.integers(0, len(y), len(y)) for _ in range(n_boot))]
    for k in ("auc", "acc", "sensitivity", "specificity", "acc_at_threshold"):
        v = np.array([d[k] for d in draws], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[f"{k}_ci95"] = [float(x) for x in np.percentile(v, [2.5, 97.5])] if v.size else [None, None]
    # undefined values (AUC / specificity of a one-class subset) as None, so the manifest stays plain JSON
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def subsets_report(p_pos: np.ndarray, y: np.ndarray, flags: np.ndarray, threshold: float,
                   n_boot: int = 1000) -> dict[str, Any]:
    """:func:`binary_report` on all images, without and with only the ``flags`` images."""
    flags = np.asarray(flags, dtype=bool)
    out = {"all": binary_report(p_pos, y, threshold, n_boot)}
    for key, keep in (("without_person_flag", ~flags), ("person_flag_only", flags)):
        if keep.any():
            out[key] = binary_report(p_pos[keep], y[keep], threshold, n_boot)
    return out


def cxr_probs(model: Any, spec: ClassifierSpec, split: str, data: Path | str | None = None,
              limit: int | None = None, device: str = "cpu") -> tuple[np.ndarray, kermany.CxrSplit]:
    """Calibrated class probabilities ``(N, 2)`` of ``model`` on one split of the layout, and the split."""
    part = kermany.load_split(split, spec.input.size, data, limit=limit)
    return softmax(batch_logits(model, part.x, device), spec.temperature), part


def baseline_report(weights_dir: Path | None, split: str, data: Path | str | None, limit: int | None, device: str,
                    n_boot: int) -> dict[str, Any]:
    """The shipped 28-px :data:`BASELINE` on the same images (its threshold: 0.5, i.e. arg-max)."""
    try:
        model, base = load_model(BASELINE, device=device, weights_dir=weights_dir)
    except (RegistryError, OSError) as e:
        return {"error": f"{BASELINE} not available: {e}"}
    probs, part = cxr_probs(model, base.spec, split, data, limit, device)
    rep = subsets_report(probs[:, 1], part.y, part.person_flag, 0.5, n_boot)
    return {**rep["all"], "input": f"{base.spec.input.size} px", "subsets": {k: v for k, v in rep.items() if k != "all"},
            "note": "threshold 0.5 (arg-max): the 28-px model has no operating threshold of its own"}


def evaluate_cxr(model: Any, spec: ClassifierSpec, weights_dir: Path | None = None, split: str = "test",
                 data: Path | str | None = None, limit: int | None = None, n_boot: int = 1000, device: str = "cpu",
                 compare: bool = True) -> dict[str, Any]:
    """The ``python -m medviz.evaluate --model NAME --json`` object of a Kermany-layout classifier.

    Args:
        model: the classifier (not modified); ``spec``: its parsed manifest entry.
        weights_dir: where :data:`BASELINE` is registered (None: the default weights folder).
        split: one of :data:`medviz.classification.kermany.SPLITS`; the bar is judged on the full test split only.
        data: another folder in the same layout (default: the shared data set).
    """
    if default_positive(list(spec.classes)) != 1 or spec.n_classes != 2:
        raise RegistryError(f"{spec.name}: expected the classes (normal, pneumonia), not {spec.classes}")
    threshold = spec.operating_threshold if spec.operating_threshold is not None else 0.5
    probs, part = cxr_probs(model, spec, split, data, limit, device)
    logits = np.log(np.clip(probs, 1e-12, 1))  # calibrated log-probabilities, for NLL of the shipped model
    rep = subsets_report(probs[:, 1], part.y, part.person_flag, threshold, n_boot)
    raw = softmax(logits * spec.temperature)
    full = split == "test" and limit is None
    out: dict[str, Any] = {
        "model": spec.name, "task": spec.TASK, "dataset": spec.dataset, "split": split,
        **rep["all"], "subsets": {k: v for k, v in rep.items() if k != "all"},
        "ece": expected_calibration_error(raw, part.y), "ece_calibrated": expected_calibration_error(probs, part.y),
        "nll_calibrated": nll(logits, part.y), "temperature": spec.temperature,
        "class_counts": np.bincount(part.y, minlength=2).tolist(),
        "bar": {**BAR, "met": bool(rep["all"]["acc"] >= BAR["acc"] and rep["all"]["auc"] >= BAR["auc"])} if full else None,
        "aim": {**AIM, "met": bool(rep["all"]["acc"] >= AIM["acc"] and rep["all"]["auc"] >= AIM["auc"])} if full else None,
        "references": list(REFERENCES), "sha256": spec.sha256,
    }
    if compare:
        out["comparison"] = {BASELINE: baseline_report(weights_dir, split, data, limit, device, n_boot)}
    return out
