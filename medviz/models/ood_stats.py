"""The statistics of an out-of-distribution detector, shared by the model tasks (:mod:`medviz.classification.ood`,
:mod:`medviz.sequence.ood`): class-conditional Gaussians with one Ledoit-Wolf-shrunk covariance, the
Mahalanobis distance to the nearest class mean (Lee et al., NeurIPS 2018), the val threshold with a
Clopper-Pearson bound on the abstention rate, AUROC, and the choice of a score on validation data.
Scores are higher for less familiar inputs; the arrays are numpy, float64 unless said.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.types import MedvizError

#: At most this fraction of in-distribution images may abstain ...
MAX_VAL_ABSTENTION = 0.05
#: ... with this one-sided confidence, judged from the val images (Clopper-Pearson).
CONFIDENCE = 0.95
#: The quantile of each validation OOD family that bounds the threshold from above (:func:`gap_threshold`).
OOD_VAL_QUANTILE = 0.01


class OODError(MedvizError):
    """The OOD statistics are missing, damaged or do not fit the model."""


def ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred rows ``(N, D)``: ``(1 - a) S + a mu I``, ``mu = tr(S) / D``.

    Returns:
        ``(covariance (D, D), shrinkage a in [0, 1])``.
    """
    x = np.asarray(centred, dtype=np.float64)
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta = s.copy()
    delta[np.diag_indices(d)] -= mu
    d2 = float(np.sum(delta ** 2)) / d
    x2 = x ** 2
    b2 = float(np.sum((x2.T @ x2) / n - s ** 2)) / (d * n)
    a = 1.0 if d2 == 0 else min(b2, d2) / d2
    cov = (1 - a) * s
    cov[np.diag_indices(d)] += a * mu
    return cov, a


def fit_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Class means and the shared (within-class, Ledoit-Wolf shrunk) precision matrix of ``(N, D)`` features.

    Returns:
        ``(means (K, D), precision (D, D), shrinkage)``.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    missing = [k for k in range(n_classes) if not np.any(y == k)]
    if missing:
        raise OODError(f"no training image of class {missing[0]}")
    means = np.stack([f[y == k].mean(axis=0) for k in range(n_classes)])
    cov, a = ledoit_wolf(f - means[y])
    return means, np.linalg.pinv(cov, hermitian=True), a


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Distance to the nearest class mean, averaged over members: features ``(M, N, D)``, means
    ``(M, K, D)``, precision ``(M, D, D)`` -> ``(N,)``."""
    out = []
    for f, mu, p in zip(features, means, precision):
        diff = f[:, None, :] - mu[None]  # (N, K, D)
        d2 = np.einsum("nkd,de,nke->nk", diff, p, diff)
        out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
    return np.mean(out, axis=0)


def threshold_for(val_scores: np.ndarray, max_rate: float = MAX_VAL_ABSTENTION) -> float:
    """The smallest val score with at most ``max_rate`` of ``val_scores`` strictly above it."""
    v = np.sort(np.asarray(val_scores, dtype=np.float64))
    if v.size == 0:
        raise OODError("no val scores to set the threshold on")
    k = int(np.ceil((1.0 - max_rate) * v.size)) - 1  # index of the lowest allowed threshold
    return float(v[min(max(k, 0), v.size - 1)])


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper confidence bound of a rate observed as ``k`` of ``n``."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def val_threshold(val_scores: np.ndarray, max_rate: float = MAX_VAL_ABSTENTION,
                  confidence: float = CONFIDENCE) -> float:
    """The smallest val score with at most ``k`` val scores strictly above it, ``k`` the largest count whose
    :func:`upper_bound` is at most ``max_rate``; the largest val score when even ``k = 0`` is not (fewer than
    59 val images at 5 % and 95 %)."""
    v = np.sort(np.asarray(val_scores, dtype=np.float64))
    if v.size == 0:
        raise OODError("no val scores to set the threshold on")
    k = 0
    while k + 1 < v.size and upper_bound(k + 1, v.size, confidence) <= max_rate:
        k += 1
    return float(v[v.size - 1 - k])


def abstention_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of ``scores`` strictly above ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean(s > threshold)) if s.size else float("nan")


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an OOD score is above an in-distribution score), ties counting one half (Mann-Whitney)."""
    from scipy.stats import rankdata

    a, b = np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)
    if not a.size or not b.size:
        return float("nan")
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[a.size:].sum() - b.size * (b.size + 1) / 2) / (a.size * b.size))


def choose_score(id_val: dict[str, np.ndarray], ood_val: dict[str, dict[str, np.ndarray]],
                 order: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """The candidate with the highest worst-family abstention at its :func:`val_threshold` over the validation
    OOD families, ties broken by the higher mean val AUROC, then by ``order``: ``id_val`` score name -> val
    scores of the model's own images; ``ood_val`` family -> score name -> scores.

    Returns:
        ``(chosen score, per-candidate record: threshold, val_abstention, worst_abstention, mean_auroc,
        families)``.
    """
    record: dict[str, Any] = {}
    names = [n for n in order if n in id_val]
    for name in names:
        t = val_threshold(id_val[name])
        fams = {fam: {"n": int(len(s[name])), "auroc": auroc(id_val[name], s[name]),
                      "abstention": abstention_rate(s[name], t)} for fam, s in ood_val.items()}
        record[name] = {"threshold": t, "val_abstention": abstention_rate(id_val[name], t),
                        "worst_abstention": min(f["abstention"] for f in fams.values()),
                        "mean_auroc": float(np.mean([f["auroc"] for f in fams.values()])), "families": fams}
    best = max(names, key=lambda n: (record[n]["worst_abstention"], record[n]["mean_auroc"], -names.index(n)))
    return best, record


def gap_threshold(id_val: np.ndarray, ood_val: dict[str, np.ndarray],
                  quantile: float = OOD_VAL_QUANTILE) -> tuple[float, float, float | None]:
    """The threshold rule of the detectors (:data:`medviz.classification.ood.THRESHOLD_RULE`): the midpoint between :func:`val_threshold` of the model's own val scores and
    the lowest ``quantile`` of the validation OOD families' scores (``family -> (N,)``), when that is higher.

    Returns:
        ``(threshold, val threshold, lowest family quantile or None without families)``.
    """
    t = val_threshold(id_val)
    qs = [float(np.quantile(np.asarray(v, dtype=np.float64), quantile)) for v in ood_val.values() if len(v)]
    if not qs:
        return t, t, None
    q = min(qs)
    return (0.5 * (t + q) if q > t else t), t, q
