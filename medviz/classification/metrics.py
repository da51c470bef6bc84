"""Classification metrics and the pieces of the evaluation view (pure NumPy / scikit-learn).

Conventions: ``probs`` is ``(N, K)`` with rows summing to 1, ``labels`` is ``(N,)`` ints in
``0..K-1``. AUC is ROC AUC of class 1 for ``K == 2`` and the macro one-vs-rest mean for ``K > 2``
(as MedMNIST reports it); ACC is arg-max accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def auc_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (binary: class 1; multi-class: macro one-vs-rest). NaN if a class is absent."""
    from sklearn.metrics import roc_auc_score

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    k = probs.shape[1]
    if len(np.unique(labels)) < (2 if k == 2 else k):
        return float("nan")
    if k == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=np.arange(k)))


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"auc", "acc"}`` of one prediction set."""
    acc = float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))
    return {"auc": auc_score(probs, labels), "acc": acc}


def bootstrap_ci(probs: np.ndarray, labels: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap confidence intervals of AUC and ACC (resampling cases).

    Args:
        n_boot: resamples; those missing a class are skipped for AUC.
        seed: RNG seed (the intervals are reproducible).
        level: coverage, 0.95 for 95 % intervals.

    Returns:
        ``{"auc": [lo, hi], "acc": [lo, hi]}``.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    aucs, accs = [], []
    correct = probs.argmax(axis=1) == labels
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        accs.append(correct[idx].mean())
        a = auc_score(probs[idx], labels[idx])
        if np.isfinite(a):
            aucs.append(a)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"auc": [float(v) for v in np.percentile(aucs, q)] if aucs else [float("nan")] * 2,
            "acc": [float(v) for v in np.percentile(accs, q)]}


def confusion(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """``(K, K)`` int counts, rows = true class, columns = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, predicted, labels=np.arange(k))


def roc(probs: np.ndarray, labels: np.ndarray, positive: int) -> dict[str, np.ndarray]:
    """ROC curve of ``positive`` vs rest: ``{"fpr", "tpr", "thresholds", "auc"}``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = (np.asarray(labels) == positive).astype(int)
    score = np.asarray(probs)[:, positive]
    fpr, tpr, thr = roc_curve(y, score)
    auc = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auc": auc}


def operating_point(probs: np.ndarray, labels: np.ndarray, positive: int, threshold: float) -> dict[str, float]:
    """Sensitivity and specificity when ``probs[:, positive] >= threshold`` calls a case positive.

    Returns:
        ``{"threshold", "sensitivity", "specificity", "tp", "fp", "tn", "fn"}`` (NaN when undefined).
    """
    y = np.asarray(labels) == positive
    call = np.asarray(probs)[:, positive] >= threshold
    tp, fp = int(np.sum(call & y)), int(np.sum(call & ~y))
    tn, fn = int(np.sum(~call & ~y)), int(np.sum(~call & y))
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"threshold": float(threshold), "sensitivity": sens, "specificity": spec,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def confident_errors(probs: np.ndarray, labels: np.ndarray, k: int = 12) -> list[dict[str, Any]]:
    """The ``k`` wrong predictions with the highest predicted-class probability.

    Returns:
        ``[{"index", "label", "predicted", "confidence"}]``, most confident first.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]
    return [{"index": int(i), "label": int(labels[i]), "predicted": int(pred[i]),
             "confidence": float(probs[i, pred[i]])} for i in order]


def default_positive(classes: list[str]) -> int:
    """The class to treat as 'positive' for ROC/threshold views: a disease-like name
    (malignant, pneumonia, abnormal...) when there is one, else class 1 (binary) or 0."""
    for i, c in enumerate(classes):
        if any(w in c.lower() for w in ("malignant", "pneumonia", "abnormal", "disease", "positive")):
            return i
    return 1 if len(classes) == 2 else 0


def thresholded_predictions(probs: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Binary: ``positive`` when its probability >= ``threshold``, else the other class.
    Multi-class: arg-max (the threshold does not apply)."""
    probs = np.asarray(probs)
    if probs.shape[1] != 2:
        return probs.argmax(axis=1)
    return np.where(probs[:, positive] >= threshold, positive, 1 - positive)


def format_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"
