"""Baselines and metrics of the sequence task, on tiny synthetic sets computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.sequence import baselines as B
from medviz.sequence.metrics import auprc, extent_error, log_loss, paired_bootstrap, slice_metrics


def test_position_prior_counts_by_hand():
    # two training stacks of 5 slices (positions 0, .25, .5, .75, 1) with 2 bins: [0, .5) and [.5, 1]
    labels = [np.array([0, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 0])]
    prior = B.fit_position_prior(labels, bins=2)
    # bin 0: slices 0, 1 of each stack -> 1 tumour of 4; bin 1: slices 2, 3, 4 -> 3 of 6 (Laplace +1 / +2)
    np.testing.assert_allclose(prior, [(1 + 1) / (4 + 2), (3 + 1) / (6 + 2)])
    np.testing.assert_allclose(B.position_prior(prior, 3), [prior[0], prior[1], prior[1]])


def test_rolling_mean_by_hand():
    p = np.array([0.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(B.rolling_mean(p, 1), p)
    np.testing.assert_allclose(B.rolling_mean(p, 3), [0.5, 1 / 3, 1 / 3, 1 / 3, 0.5])
    with pytest.raises(ValueError):
        B.rolling_mean(p, 4)


def test_tune_window_prefers_smoothing_when_it_helps():
    rng = np.random.default_rng(0)
    labels, probs = [], []
    for _ in range(6):
        y = np.zeros(40, int)
        s = rng.integers(5, 20)
        y[s:s + 12] = 1
        labels.append(y)
        probs.append(np.clip(y * 0.6 + rng.normal(0, 0.35, 40), 0, 1))  # noisy per-slice evidence
    assert B.tune_window(labels, probs) > 1
    assert B.tune_window(labels, [y.astype(float) for y in labels]) == 1  # perfect input: no smoothing


def test_extent_error_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    assert extent_error([y], [np.array([0, 0.6, 0.7, 0.9, 0.2, 0])]) == (1 + 1) / 2
    assert extent_error([y], [y.astype(float)]) == 0
    assert extent_error([y], [np.array([0.1, 0.2, 0.3, 0.4, 0.1, 0])]) == (1 + 1) / 2  # none >= .5: argmax (3)
    assert np.isnan(extent_error([np.zeros(4, int)], [np.zeros(4)]))  # no tumour: left out


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.metrics import log_loss as sk_log_loss

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0.01, 0.99)
    m = slice_metrics([y[:120], y[120:]], [p[:120], p[120:]])
    assert m["auprc"] == pytest.approx(average_precision_score(y, p))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(sk_log_loss(y, p))
    assert log_loss(np.array([1]), np.array([1.0])) == pytest.approx(-np.log(1 - 1e-6))


def test_paired_bootstrap_of_a_method_with_itself_is_zero_and_detects_a_better_one():
    rng = np.random.default_rng(2)
    labels = [rng.integers(0, 2, 30) for _ in range(8)]
    noisy = [np.clip(y * 0.2 + rng.random(30) * 0.8, 0, 1) for y in labels]
    same = paired_bootstrap(labels, noisy, noisy, auprc, n_boot=200)
    assert same == {"difference": 0.0, "ci95_low": 0.0, "ci95_high": 0.0}
    better = paired_bootstrap(labels, [y * 0.9 + 0.05 for y in labels], noisy, auprc, n_boot=200)
    assert better["difference"] > 0 and better["ci95_low"] > 0
