"""Tests for medviz.imaging.slicing: a bright cube at a known LPS position lands where it should."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.constants import Plane
from medviz.imaging.slicing import available_planes, extract_plane, num_slices
from medviz.types import Volume

SHAPE = (10, 20, 30)  # (Z, Y, X)
SPACING = (3.0, 2.0, 0.5)  # (sz, sy, sx) mm
ORIGIN = np.array([-100.0, 50.0, 700.0])  # LPS of voxel (0, 0, 0)
CUBE = (7, 4, 25)  # (z, y, x): superior, anterior, patient-left part of the volume


def lps_volume(orientation: str = "LPS", flip_y: bool = False) -> Volume:
    """A volume with one bright voxel at CUBE; ``flip_y`` stores y towards anterior (code A)."""
    sz, sy, sx = SPACING
    affine = np.diag([sx, -sy if flip_y else sy, sz, 1.0])
    affine[:3, 3] = ORIGIN
    array = np.zeros(SHAPE, np.float32)
    array[CUBE] = 1000.0
    return Volume(array=array, spacing=SPACING, affine=affine, modality="CT", units="HU", orientation=orientation)


def cube_lps(volume: Volume) -> np.ndarray:
    z, y, x = CUBE
    return (volume.affine @ np.array([x, y, z, 1.0]))[:3]


def bright_pixel(image: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(image)), image.shape)
    return int(r), int(c)


@pytest.mark.parametrize(
    ("plane", "index", "shape", "pixel", "labels", "pixel_mm"),
    [
        (Plane.AXIAL, 7, (20, 30), (4, 25), ("A", "P", "R", "L"), (2.0, 0.5)),
        (Plane.CORONAL, 4, (10, 30), (2, 25), ("S", "I", "R", "L"), (3.0, 0.5)),
        (Plane.SAGITTAL, 25, (10, 20), (2, 4), ("S", "I", "A", "P"), (3.0, 2.0)),
    ],
)
def test_cube_appears_in_each_plane(plane, index, shape, pixel, labels, pixel_mm):
    vol = lps_volume()
    ps = extract_plane(vol, plane, index)
    assert ps.shape == shape
    assert bright_pixel(ps.image) == pixel
    assert (ps.labels.top, ps.labels.bottom, ps.labels.left, ps.labels.right) == labels
    assert (ps.row_mm, ps.col_mm) == pixel_mm
    np.testing.assert_allclose(ps.voxel_index(*pixel), CUBE)
    np.testing.assert_allclose(ps.to_lps(*pixel), cube_lps(vol))


def test_image_is_a_view_and_planes_are_consistent():
    vol = lps_volume()
    ps = extract_plane(vol, Plane.CORONAL, 4)
    assert np.shares_memory(ps.image, vol.array)
    # Superior at the top: row 0 of a coronal slice is the last z index.
    np.testing.assert_array_equal(ps.image[0], vol.array[-1, 4, :])


def test_axis_coords_are_lps_mm():
    vol = lps_volume()
    rows, cols, fixed = extract_plane(vol, Plane.AXIAL, 7).axis_coords()
    assert (rows.name, rows.start, rows.step) == ("P", 50.0, 2.0)
    assert (cols.name, cols.start, cols.step) == ("L", -100.0, 0.5)
    assert (fixed.name, fixed.start) == ("S", 700.0 + 7 * 3.0)
    rows, cols, fixed = extract_plane(vol, Plane.SAGITTAL, 25).axis_coords()
    assert (rows.name, rows.start, rows.step) == ("S", 700.0 + 9 * 3.0, -3.0)  # superior first
    assert (cols.name, fixed.name, fixed.start) == ("P", "L", -100.0 + 25 * 0.5)


def test_anterior_stored_first_is_flipped_to_radiological_display():
    vol = lps_volume(orientation="LAS", flip_y=True)  # y increases towards anterior
    ps = extract_plane(vol, Plane.AXIAL, 7)
    assert (ps.labels.top, ps.labels.bottom) == ("A", "P")
    assert bright_pixel(ps.image) == (SHAPE[1] - 1 - CUBE[1], CUBE[2])
    np.testing.assert_allclose(ps.to_lps(*bright_pixel(ps.image)), cube_lps(vol))
    # Anterior really is at the top: the top row has the smallest P coordinate.
    assert ps.to_lps(0, 0)[1] < ps.to_lps(ps.shape[0] - 1, 0)[1]


def test_oblique_affine_has_no_axis_coords_but_exact_lps():
    vol = lps_volume()
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = vol.affine.copy()
    affine[:3, :3] = rot @ affine[:3, :3]
    oblique = Volume(array=vol.array, spacing=vol.spacing, affine=affine, orientation="LPS")
    ps = extract_plane(oblique, Plane.AXIAL, 7)
    assert ps.axis_coords() is None
    np.testing.assert_allclose(ps.to_lps(*bright_pixel(ps.image)), cube_lps(oblique))


def test_planes_disabled_for_single_slice_and_unknown_geometry():
    single = Volume(array=np.zeros((1, 8, 8), np.float32), spacing=(1, 1, 1), affine=np.eye(4))
    reasons = available_planes(single)
    assert reasons[Plane.AXIAL] is None and "single-slice" in reasons[Plane.CORONAL]
    with pytest.raises(ValueError, match="coronal plane not available"):
        extract_plane(single, Plane.CORONAL, 0)
    stack = Volume(array=np.zeros((5, 8, 8), np.float32), spacing=(1, 1, 1), affine=np.eye(4))
    assert "geometry" in available_planes(stack)[Plane.SAGITTAL]
    ps = extract_plane(stack, "axial", 2)
    assert ps.labels.top == "" and ps.axis_coords() is None and not ps.has_geometry


def test_num_slices_and_index_range():
    vol = lps_volume()
    assert [num_slices(vol, p) for p in Plane] == [10, 20, 30]
    with pytest.raises(IndexError):
        extract_plane(vol, Plane.AXIAL, 10)


def test_rgb_volume_keeps_channels():
    rgb = Volume(array=np.zeros((1, 6, 8, 3), np.uint8), spacing=(1, 1, 1), affine=np.eye(4), units="RGB")
    assert extract_plane(rgb, Plane.AXIAL, 0).image.shape == (6, 8, 3)
