"""Confidence calibration: temperature scaling (Guo et al., ICML 2017) and expected calibration error.

Temperature scaling divides the logits by one scalar ``T > 0`` fitted on the validation split by
minimising the negative log-likelihood; it never changes the arg-max class, only how confident
the probabilities are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviz.types import MedvizError


class CalibrationError(MedvizError):
    """Calibration inputs are unusable (empty, mismatched shapes, non-finite logits)."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``.

    Args:
        logits: ``(N, K)`` or ``(K,)``.
        temperature: positive scalar.

    Returns:
        float64 probabilities of the same shape; each row sums to 1.
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)`` (nats)."""
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """Fit the temperature minimising validation NLL with ``torch.optim.LBFGS`` on ``log T``.

    Args:
        logits: ``(N, K)`` validation logits.
        labels: ``(N,)`` integer labels in ``0..K-1``.
        max_iter: LBFGS iterations.

    Returns:
        ``T`` in [0.05, 20] (1.0 if the fit does not lower the NLL).
    """
    import torch

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise CalibrationError(f"need (N, K) logits and N labels, got {logits.shape} and {labels.shape}")
    if not np.isfinite(logits).all():
        raise CalibrationError("logits contain NaN or Inf")
    z = torch.from_numpy(logits)
    y = torch.from_numpy(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(np.clip(np.exp(log_t.item()), 0.05, 20.0))
    return t if nll(logits, labels, t) <= nll(logits, labels, 1.0) else 1.0


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Top-label reliability table in equal-width confidence bins.

    Returns:
        ``{"edges": (n_bins+1,), "confidence": (n_bins,), "accuracy": (n_bins,), "count": (n_bins,)}``;
        empty bins hold NaN confidence/accuracy and count 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, n_bins) / count
        acc = np.bincount(which, correct, n_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": acc, "count": count}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: sum over bins of ``count/N * |accuracy - confidence|`` (0 = perfect)."""
    r = reliability(probs, labels, n_bins)
    keep = r["count"] > 0
    return float(np.sum(r["count"][keep] / r["count"].sum() * np.abs(r["accuracy"][keep] - r["confidence"][keep])))


@dataclass(frozen=True)
class ShownProbability:
    """Which probability a page or command shows for a classifier, said honestly from its test record.

    Attributes:
        label: ``"calibrated"`` only when temperature scaling lowered the test ECE; else
            ``"temperature-scaled"`` (it did not, or the test split was not measured) or ``"softmax"`` (T = 1).
        temperature: the temperature applied (fitted on val).
        test_ece: test ECE of the probability shown (None: not measured).
        test_ece_softmax: test ECE of the plain softmax (None: not measured).
    """

    label: str
    temperature: float
    test_ece: float | None
    test_ece_softmax: float | None

    @property
    def calibrated(self) -> bool:
        return self.label == "calibrated"

    def sentence(self) -> str:
        """One sentence: what the probability is and how well calibrated it was on the test split."""
        if self.label == "softmax":
            ece = "" if self.test_ece is None else f"; test ECE {self.test_ece:.3f}"
            return f"Plain softmax probabilities (no temperature was fitted{ece})."
        what = f"Softmax of the logits / T (T = {self.temperature:.2f}, fitted on val)"
        if self.test_ece is None or self.test_ece_softmax is None:
            return f"{what}; the test-split calibration was not measured."
        if self.calibrated:
            return (f"{what}: calibrated, test ECE {self.test_ece:.3f} (plain softmax "
                    f"{self.test_ece_softmax:.3f}).")
        return (f"{what}: not calibrated on the test split: temperature scaling made the test ECE worse, "
                f"{self.test_ece_softmax:.3f} -> {self.test_ece:.3f}.")


def shown_probability(temperature: float, test_metrics: dict) -> ShownProbability:
    """The :class:`ShownProbability` of a classifier from its temperature and recorded test metrics
    (``ece``: plain softmax, ``ece_calibrated``: after temperature scaling)."""
    raw, scaled = test_metrics.get("ece"), test_metrics.get("ece_calibrated")
    if float(temperature) == 1.0:
        return ShownProbability("softmax", 1.0, raw, raw)
    if raw is None or scaled is None:
        return ShownProbability("temperature-scaled", float(temperature), scaled, raw)
    label = "calibrated" if float(scaled) < float(raw) else "temperature-scaled"
    return ShownProbability(label, float(temperature), float(scaled), float(raw))
