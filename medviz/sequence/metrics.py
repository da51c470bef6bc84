"""Slice-level metrics of a per-slice tumour probability, pooled over the slices of all patients, and the
paired patient bootstrap of a difference between two methods.

``extent_error``: per patient with tumour, the mean of |predicted - true| first and last tumour slice, in
slices; the predicted run is the first to the last slice with probability >= 0.5 (the most probable slice
alone when none reaches 0.5). Patients without tumour are left out of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

EPS = 1e-6


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve), scikit-learn's definition."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    return float(average_precision_score(y, p)) if 0 < y.sum() < y.size else float("nan")


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy in nats, probabilities clipped to ``[1e-6, 1 - 1e-6]``."""
    y, p = np.asarray(y, dtype=np.float64), np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def extent_error(labels: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> float:
    """Mean over patients with tumour of (|first_pred - first_true| + |last_pred - last_true|) / 2 slices."""
    errors = []
    for y, p in zip(labels, probs):
        true = np.flatnonzero(np.asarray(y) > 0)
        if true.size == 0:
            continue
        pred = np.flatnonzero(np.asarray(p) >= 0.5)
        if pred.size == 0:
            pred = np.array([int(np.argmax(p))])
        errors.append((abs(int(pred[0]) - int(true[0])) + abs(int(pred[-1]) - int(true[-1]))) / 2)
    return float(np.mean(errors)) if errors else float("nan")


def slice_metrics(labels: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> dict[str, float]:
    """``{"auprc", "auroc", "log_loss", "extent_error"}`` over all slices of all patients."""
    y, p = np.concatenate(labels), np.concatenate(probs)
    return {"auprc": auprc(y, p), "auroc": auroc(y, p), "log_loss": log_loss(y, p),
            "extent_error": extent_error(labels, probs)}


def paired_bootstrap(labels: Sequence[np.ndarray], probs_a: Sequence[np.ndarray], probs_b: Sequence[np.ndarray],
                     metric: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 2000,
                     seed: int = 0) -> dict[str, float]:
    """The difference ``metric(a) - metric(b)`` on the same slices, with a 95 % percentile interval from
    resampling patients (both methods on the same resampled patients: a paired bootstrap).

    Returns:
        ``{"difference", "ci95_low", "ci95_high"}``.
    """
    n = len(labels)
    whole = metric(np.concatenate(labels), np.concatenate(probs_a)) - metric(np.concatenate(labels),
                                                                              np.concatenate(probs_b))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, size=n)
        y = np.concatenate([labels[i] for i in pick])
        d = metric(y, np.concatenate([probs_a[i] for i in pick])) - metric(y, np.concatenate([probs_b[i] for i in pick]))
        if np.isfinite(d):
            diffs.append(d)
    lo, hi = (np.percentile(diffs, [2.5, 97.5]) if diffs else (float("nan"), float("nan")))
    return {"difference": float(whole), "ci95_low": float(lo), "ci95_high": float(hi)}
