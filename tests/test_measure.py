"""Tests for medviz.imaging.measure: distances with anisotropic pixels, ROI statistics, histograms."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.imaging.measure import Roi, distance_mm, histogram, roi_stats


def test_distance_345_triangle_with_anisotropic_spacing():
    # 2 rows x 1.5 mm = 3 mm, 8 cols x 0.5 mm = 4 mm -> 5 mm.
    assert distance_mm((10, 10), (12, 18), row_mm=1.5, col_mm=0.5) == pytest.approx(5.0)
    assert distance_mm((12, 18), (10, 10), row_mm=1.5, col_mm=0.5) == pytest.approx(5.0)
    assert distance_mm((3, 3), (3, 3), 1.0, 1.0) == 0.0


def test_roi_stats_match_numpy(rng):
    image = rng.normal(40, 15, size=(64, 48)).astype(np.float32)
    roi = Roi.from_corners((30, 20), (10, 5), image.shape)  # corners in any order
    assert (roi.r0, roi.c0, roi.r1, roi.c1) == (10, 5, 30, 20)
    patch = image[10:31, 5:21].astype(np.float64)
    s = roi_stats(image, roi, row_mm=0.8, col_mm=0.5)
    assert s.n_pixels == 21 * 16 == s.n_finite
    assert s.mean == pytest.approx(patch.mean())
    assert s.std == pytest.approx(patch.std())
    assert (s.min, s.max) == (pytest.approx(patch.min()), pytest.approx(patch.max()))
    assert s.area_mm2 == pytest.approx(21 * 16 * 0.8 * 0.5)


def test_roi_ignores_nan_and_is_clipped():
    image = np.ones((10, 10), np.float32)
    image[0, 0] = np.nan
    roi = Roi.from_corners((-5, -5), (1, 1), image.shape)
    assert (roi.r0, roi.c0, roi.r1, roi.c1) == (0, 0, 1, 1)
    s = roi_stats(image, roi, 1.0, 1.0)
    assert (s.n_pixels, s.n_finite, s.mean, s.std) == (4, 3, 1.0, 0.0)
    with pytest.raises(ValueError, match="outside"):
        Roi.from_corners((20, 20), (30, 30), image.shape)


def test_roi_all_nan_gives_nan_stats():
    s = roi_stats(np.full((4, 4), np.nan, np.float32), Roi(0, 0, 3, 3), 1.0, 1.0)
    assert s.n_finite == 0 and np.isnan(s.mean) and s.area_mm2 == 16.0


def test_roi_on_rgb_uses_luma():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 1] = 100
    s = roi_stats(image, Roi(0, 0, 3, 3), 1.0, 1.0)
    assert s.mean == pytest.approx(58.7, abs=1e-3)


def test_histogram_counts_finite_values_only():
    values = np.array([0.0, 1.0, 2.0, 3.0, np.nan, np.inf], np.float32)
    h = histogram(values, bins=3)
    assert h.counts.sum() == 4
    assert h.edges[0] == 0.0 and h.edges[-1] == 3.0
    np.testing.assert_allclose(h.centers, [0.5, 1.5, 2.5])
    empty = histogram(np.full(5, np.nan), bins=4)
    assert empty.counts.sum() == 0 and len(empty.edges) == 5
    constant = histogram(np.zeros(7), bins=2)
    assert constant.counts.sum() == 7


def test_histogram_of_rgb_frames_uses_luma():
    frames = np.zeros((2, 3, 4, 3), np.uint8)
    frames[..., 0] = 100  # pure red -> luma 29.9
    h = histogram(frames, bins=4)
    assert h.counts.sum() == 2 * 3 * 4
    assert h.edges[0] == pytest.approx(29.4, abs=0.1)
