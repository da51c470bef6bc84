"""Baselines the sequence model is measured against, on the same slices.

* ``position_prior``: the frequency of tumour slices at each normalised position ``t / (L - 1)`` of the
  training stacks (10 bins, Laplace-smoothed); no pixels.
* ``per_slice``: :class:`medviz.models.recurrent.PerSliceHead` on the same slice features.
* ``per_slice_smoothed``: ``per_slice`` followed by a centred rolling mean over slices.
* ``segmenter_smoothed``: the shipped segmenter's maximum foreground probability per slice, with the same
  kind of rolling mean.

Rolling-mean windows are tuned on the validation split (:func:`tune_window`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medviz.sequence.metrics import auprc

POSITION_BINS = 10
WINDOWS = (1, 3, 5, 7, 9)


def positions(length: int) -> np.ndarray:
    """``(length,)`` normalised slice positions in [0, 1]."""
    return np.arange(length) / max(length - 1, 1)


def fit_position_prior(labels: Sequence[np.ndarray], bins: int = POSITION_BINS) -> np.ndarray:
    """``(bins,)`` Laplace-smoothed tumour frequency per position bin over the training stacks."""
    pos = np.zeros(bins)
    tot = np.zeros(bins)
    for y in labels:
        b = np.minimum((positions(len(y)) * bins).astype(int), bins - 1)
        np.add.at(pos, b, np.asarray(y) > 0)
        np.add.at(tot, b, 1)
    return (pos + 1) / (tot + 2)


def position_prior(prior: np.ndarray, length: int) -> np.ndarray:
    """``(length,)`` prior probability of each slice of a stack of ``length`` slices."""
    prior = np.asarray(prior, dtype=np.float64)
    return prior[np.minimum((positions(length) * len(prior)).astype(int), len(prior) - 1)]


def rolling_mean(p: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling mean over ``window`` slices (odd); at the ends the mean of the slices available."""
    p = np.asarray(p, dtype=np.float64)
    if window <= 1:
        return p
    if window % 2 == 0:
        raise ValueError(f"the rolling-mean window must be odd, not {window}")
    k = np.ones(window)
    return np.convolve(p, k, mode="same") / np.convolve(np.ones_like(p), k, mode="same")


def tune_window(labels: Sequence[np.ndarray], probs: Sequence[np.ndarray], windows: Sequence[int] = WINDOWS) -> int:
    """The window of :data:`WINDOWS` with the highest pooled AUPRC on ``labels`` (use validation only);
    ties go to the smaller window."""
    y = np.concatenate(labels)
    scores = [auprc(y, np.concatenate([rolling_mean(p, w) for p in probs])) for w in windows]
    return int(windows[int(np.nanargmax(scores))])
