"""Overlay alignment on real data: the overlay sits on the mask in every plane."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.imaging.overlay import fuse_overlay, overlay_slice
from medviz.segmentation.viz import fused_figure, surface_figure
from medviz.types import Volume, affine_from_spacing

RED = {1: (255, 0, 0)}


def _changed(base: np.ndarray, fused: np.ndarray) -> np.ndarray:
    return np.any(base != fused, axis=-1)


@pytest.mark.data
def test_lgg_tumour_centroid_in_overlay_equals_mask_centroid(data_dir) -> None:
    from medviz.datasets.lgg import cases, load_case
    from medviz.imaging.overlay import windowed_rgb

    root = data_dir / "lgg_flair_mri_seg"
    image, mask = load_case(root, cases(root, "test")[0])
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    volume = Volume(array=image, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)),
                    modality="MR", units="RGB", spacing_known=False)
    ps, fused = overlay_slice(volume, mask, "axial", k, None, RED, opacity=1.0, mode="fill")
    np.testing.assert_array_equal(windowed_rgb(ps, None), image[k])  # PNG stack drawn as stored
    painted = np.all(fused == (255, 0, 0), axis=-1)
    np.testing.assert_array_equal(painted, mask[k] > 0)
    np.testing.assert_allclose(np.argwhere(painted).mean(0), np.argwhere(mask[k] > 0).mean(0))
    # contour mode paints only the border, inside the mask
    _, outline = overlay_slice(volume, mask, "axial", k, None, RED, mode="contour")
    edge = _changed(image[k], outline)
    assert edge.any() and not (edge & (mask[k] == 0)).any() and edge.sum() < (mask[k] > 0).sum()
    ps, rgb = overlay_slice(volume, mask, "axial", k, None, RED)
    fig = fused_figure(ps, rgb, volume.spacing_known)
    assert fig.data[0].type == "image"


@pytest.mark.data
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_overlay_alignment_in_three_planes_on_real_ct(data_dir, plane: str) -> None:
    from medviz.imaging.slicing import num_slices
    from medviz.io import load_path

    volume = load_path(data_dir / "dicom_ct_3slice_with_liver_seg").series[0].volume
    mask = np.zeros(volume.shape, np.uint8)
    z, y, x = 1, 200, 150
    mask[z, y - 3:y + 4, x - 5:x + 6] = 1  # a small block around one voxel
    index = {"axial": z, "coronal": y, "sagittal": x}[plane]
    assert index < num_slices(volume, plane)
    ps, fused = overlay_slice(volume, mask, plane, index, None, RED, opacity=1.0)
    painted = np.argwhere(np.all(fused == (255, 0, 0), axis=-1))
    assert len(painted)
    # every painted display pixel maps back (through the Viewer's PlaneSlice) to a mask voxel
    vox = np.rint(ps.voxel_index(painted[:, 0], painted[:, 1])).astype(int)
    assert mask[vox[:, 0], vox[:, 1], vox[:, 2]].all()
    assert (vox[:, {"axial": 0, "coronal": 1, "sagittal": 2}[plane]] == index).all()


def test_fuse_overlay_does_not_modify_base() -> None:
    base = np.full((4, 4, 3), 100, np.uint8)
    lab = np.zeros((4, 4), np.uint8)
    lab[1, 1] = 1
    out = fuse_overlay(base, lab, RED, opacity=0.5)
    assert (base == 100).all()
    assert tuple(out[1, 1]) == (178, 50, 50) and tuple(out[0, 0]) == (100, 100, 100)
    with pytest.raises(ValueError):
        fuse_overlay(base, lab, RED, mode="outline")


def test_surface_uses_spacing() -> None:
    m = np.zeros((6, 10, 10), np.uint8)
    m[1:5, 2:8, 3:7] = 1
    fig = surface_figure(m, (3.0, 1.0, 0.5))
    mesh = fig.data[0]
    assert mesh.type == "mesh3d"
    # the 0.5 iso-surface of a block of n voxels spans n voxels: z 4 x 3 mm, y 6 x 1 mm, x 4 x 0.5 mm
    assert max(mesh.z) - min(mesh.z) == pytest.approx(12.0, abs=0.01)
    assert max(mesh.y) - min(mesh.y) == pytest.approx(6.0, abs=0.01)
    assert max(mesh.x) - min(mesh.x) == pytest.approx(2.0, abs=0.01)
    assert min(mesh.z) == pytest.approx(0.5 * 3.0, abs=0.01)  # first mask slice 1 minus half a voxel, in mm
