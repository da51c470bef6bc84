"""Exports: DICOM SEG on the real CT series reads back with highdicom; NIfTI keeps voxel positions;
reference masks (DICOM SEG, NIfTI) land on the right voxels."""

from __future__ import annotations

import io

import numpy as np
import pytest

from medviz.segmentation.export import csv_bytes, dicom_seg_bytes, nifti_bytes, png_bytes
from medviz.segmentation.reference import read_reference_mask
from medviz.types import Volume


@pytest.fixture(scope="module")
def ct_volume(data_dir) -> Volume:
    from medviz.io import load_path

    return load_path(data_dir / "dicom_series_ct_totalsegmentator").series[0].volume


def _mask(shape: tuple[int, int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[3:7, 100:180, 150:260] = 1  # asymmetric on purpose: catches flips and transposes
    m[5, 300:310, 40:45] = 1
    return m


def _lps_of_voxels(affine: np.ndarray, idx_xyz: np.ndarray) -> np.ndarray:
    return np.c_[idx_xyz, np.ones(len(idx_xyz))] @ np.asarray(affine).T


@pytest.mark.data
def test_dicom_seg_round_trip_on_real_ct(ct_volume: Volume) -> None:
    import highdicom as hd

    mask = _mask(ct_volume.shape)
    seg = hd.seg.segread(io.BytesIO(dicom_seg_bytes(ct_volume, mask, {1: "test lesion"})))
    assert seg.SegmentationType == "BINARY"
    assert seg.SegmentSequence[0].SegmentLabel == "test lesion"
    src_uids = {ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID for ds in ct_volume.dicom_headers}
    assert {u for _, _, u in seg.get_source_image_uids()} <= src_uids
    vol = seg.get_volume()
    arr = np.asarray(vol.array)[..., 0] if np.asarray(vol.array).ndim == 4 else np.asarray(vol.array)
    # Every SEG voxel, placed with the SEG's own geometry, lands on a mask voxel of the source volume.
    kij = np.argwhere(arr > 0)
    lps = np.c_[kij, np.ones(len(kij))] @ np.asarray(vol.affine).T
    xyz = np.rint(lps @ np.linalg.inv(ct_volume.affine).T)[:, :3].astype(int)
    back = np.zeros_like(mask)
    back[xyz[:, 2], xyz[:, 1], xyz[:, 0]] = 1
    np.testing.assert_array_equal(back, mask)
    # Frame positions are the source slices' ImagePositionPatient.
    src_ipp = {tuple(np.round(np.asarray(ds.ImagePositionPatient, float), 3)) for ds in ct_volume.dicom_headers}
    for f in seg.PerFrameFunctionalGroupsSequence:
        ipp = tuple(np.round(np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float), 3))
        assert ipp in src_ipp


@pytest.mark.data
def test_nifti_export_keeps_voxel_positions(ct_volume: Volume) -> None:
    import gzip

    import nibabel as nib

    from medviz.io.nifti import read_nifti

    mask = _mask(ct_volume.shape)
    data = nifti_bytes(ct_volume, mask)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    arr = np.asarray(img.dataobj)
    assert arr.shape == mask.shape[::-1]
    ijk = np.argwhere(arr > 0)  # NIfTI (i, j, k) -> RAS
    ras = _lps_of_voxels(img.affine, ijk)[:, :3]
    zyx = np.argwhere(mask > 0)
    lps = _lps_of_voxels(ct_volume.affine, zyx[:, ::-1])[:, :3]
    np.testing.assert_allclose(np.sort(ras * [-1, -1, 1], axis=0), np.sort(lps, axis=0), atol=1e-3)
    # and our own reader brings it back onto the same grid
    back = read_nifti(data, "mask.nii.gz")
    np.testing.assert_array_equal(back.array.astype(np.uint8), mask)
    ref, _ = read_reference_mask("mask.nii.gz", data, ct_volume)
    np.testing.assert_array_equal(ref, mask)


@pytest.mark.data
def test_reference_dicom_seg_liver(data_dir) -> None:
    from medviz.io import load_path

    folder = data_dir / "dicom_ct_3slice_with_liver_seg"
    volume = load_path(folder).series[0].volume
    labels, notes = read_reference_mask("liver_seg.dcm", (folder / "liver_seg.dcm").read_bytes(), volume)
    assert labels.shape == volume.shape and set(np.unique(labels)) == {0, 1}
    # The liver lies in the patient's right (low L, i.e. the image left) and is a large structure.
    zyx = np.argwhere(labels > 0)
    x_mm = _lps_of_voxels(volume.affine, zyx[:, ::-1])[:, 0]
    assert np.median(x_mm) < 0
    assert 0.05 < labels.mean() < 0.4
    # Soft-tissue HU inside the liver mask.
    assert 0 < np.median(volume.array[labels > 0]) < 200


def test_png_and_csv_bytes() -> None:
    from PIL import Image

    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[1, 2] = (255, 0, 0)
    back = np.asarray(Image.open(io.BytesIO(png_bytes(rgb))))
    np.testing.assert_array_equal(back, rgb)
    text = csv_bytes([{"label": 1, "volume_ml": 2.5}], columns=["label", "volume_ml"]).decode()
    assert text.splitlines() == ["label,volume_ml", "1,2.5"]


def test_measurement_csv_has_its_header_also_without_rows() -> None:
    """An empty mask has no measurement rows; its CSV is the header row, never a 0-byte file."""
    from medviz.segmentation.export import MEASUREMENT_COLUMNS, ExportError
    from medviz.segmentation.measure import label_measurements

    empty = label_measurements(np.zeros((2, 4, 4), np.uint8), (1.0, 1.0, 1.0))
    assert empty == []
    assert csv_bytes(empty).decode().splitlines() == [",".join(MEASUREMENT_COLUMNS)]

    mask = np.zeros((2, 4, 4), np.uint8)
    mask[1, :2, :2] = 1
    rows = label_measurements(mask, (2.0, 1.0, 1.0))
    assert tuple(rows[0]) == MEASUREMENT_COLUMNS  # the header names exactly the columns the rows carry
    lines = csv_bytes(rows).decode().splitlines()
    assert lines[0] == ",".join(MEASUREMENT_COLUMNS) and lines[1].startswith("1,label 1,4,0.008,2,")
    with pytest.raises(ExportError, match="do not match the CSV columns"):
        csv_bytes([{"label": 1, "colour": "red"}])


@pytest.mark.parametrize("shear", [0.0, 0.3])
def test_resample_labels_matches_brute_force(rng: np.random.Generator, shear: float) -> None:
    from medviz.imaging.resample import resample_labels

    src = rng.integers(0, 3, (6, 7, 5)).astype(np.uint8)  # indexed (a, b, c)
    target = np.array([[0, shear, -2.0, 10], [0, 1.5, 0, -3], [3.0, 0, 0, 1], [0, 0, 0, 1]])  # permuted + flipped
    src_aff = np.array([[-2.0, 0, 0, 10], [0, 1.5, 0, -3], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    v = Volume(array=np.zeros((5, 7, 6), np.float32), spacing=(1, 1, 1), affine=target)
    expected = np.zeros(v.shape, np.uint8)
    m = np.linalg.inv(src_aff) @ target
    for z, y, x in np.ndindex(*v.shape):
        a, b, c = np.rint(m[:3] @ [x, y, z, 1]).astype(int)
        if 0 <= a < 6 and 0 <= b < 7 and 0 <= c < 5:
            expected[z, y, x] = src[a, b, c]
    assert expected.any()
    np.testing.assert_array_equal(resample_labels(src, src_aff, v), expected)


def test_measurement_csv_numbers_slices_from_one_and_says_so() -> None:
    """The CSV a person opens numbers slices as the slider does (first slice = 1) and its header says so."""
    from medviz.segmentation.measure import label_measurements

    mask = np.zeros((3, 4, 4), np.uint8)
    mask[0, :2, :2] = 1  # only on the first slice
    header, row = csv_bytes(label_measurements(mask, (1.0, 1.0, 1.0))).decode().splitlines()
    column = header.split(",").index("slice (1-based)")
    assert row.split(",")[column] == "1"
