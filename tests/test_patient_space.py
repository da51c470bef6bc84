"""Measurements from the in-browser viewer, which reports LPS mm: distances and ROI statistics equal the
analytic values on a synthetic volume (issue #13 point 6)."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.imaging.patient_space import box_stats, distance_lps, plane_box, value_at, voxel_at
from medviz.types import Volume


@pytest.fixture
def ramp() -> Volume:
    """(Z, Y, X) = (10, 20, 30), spacing (3, 0.5, 0.8) mm, origin (5, -7, 11) LPS; value = 100 z + 10 y + x."""
    z, y, x = np.mgrid[:10, :20, :30]
    affine = np.diag([0.8, 0.5, 3.0, 1.0])
    affine[:3, 3] = (5.0, -7.0, 11.0)
    return Volume(array=(100 * z + 10 * y + x).astype(np.float32), spacing=(3.0, 0.5, 0.8), affine=affine,
                  units="HU", orientation="LPS")


def lps(v: Volume, x: float, y: float, z: float) -> list[float]:
    return list((v.affine @ [x, y, z, 1])[:3])


def test_voxel_at_inverts_the_affine(ramp):
    assert voxel_at(ramp, lps(ramp, 7, 3, 2)) == (7, 3, 2)
    assert voxel_at(ramp, lps(ramp, 7.4, 3.4, 2.4)) == (7, 3, 2)
    assert voxel_at(ramp, lps(ramp, 30, 0, 0)) is None
    assert value_at(ramp, (7, 3, 2)) == 237.0


def test_distance_is_the_analytic_one(ramp):
    a, b = lps(ramp, 0, 0, 4), lps(ramp, 3, 4, 4)  # 3 columns of 0.8 mm and 4 rows of 0.5 mm
    assert distance_lps(a, b) == pytest.approx(np.hypot(2.4, 2.0))


def test_an_axial_roi_gives_the_analytic_mean_sd_and_area(ramp):
    box = plane_box(ramp, lps(ramp, 2, 4, 6), lps(ramp, 11, 9, 6))  # x 2..11, y 4..9 on slice z = 6
    assert box is not None and box.fixed_axis == 0 and box.index == 6 and box.spans == ((4, 9), (2, 11))
    stats = box_stats(ramp, box)
    y, x = np.mgrid[4:10, 2:12]
    expected = 600 + 10 * y + x
    assert stats.mean == pytest.approx(expected.mean()) and stats.std == pytest.approx(expected.std())
    assert stats.area_mm2 == pytest.approx(60 * 0.5 * 0.8) and stats.n_pixels == 60


def test_a_coronal_roi_and_its_inscribed_ellipse(ramp):
    box = plane_box(ramp, lps(ramp, 0, 5, 0), lps(ramp, 29, 5, 9))
    assert box.fixed_axis == 1 and box.index == 5 and box.spans == ((0, 9), (0, 29))
    full = box_stats(ramp, box)
    assert full.mean == pytest.approx(100 * 4.5 + 50 + 14.5) and full.area_mm2 == pytest.approx(300 * 3.0 * 0.8)
    ellipse = box_stats(ramp, box, ellipse=True)
    assert ellipse.n_pixels < full.n_pixels and ellipse.mean == pytest.approx(full.mean)  # symmetric ramp
    assert ellipse.area_mm2 == pytest.approx(np.pi * 5 * 15 * 3.0 * 0.8, rel=0.05)


def test_a_box_outside_the_volume_is_none(ramp):
    assert plane_box(ramp, lps(ramp, 40, 40, 3), lps(ramp, 50, 45, 3)) is None
