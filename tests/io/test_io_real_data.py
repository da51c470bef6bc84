"""Loaders on the real public data sets (``data_dir`` fixture; shapes from shared/data/MANIFEST.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from io_builders import zip_bytes

from medviz.io import load_files, load_path
from medviz.io.nifti import read_nifti

pytestmark = pytest.mark.data


def _one(result):
    assert len(result.series) == 1, [s.label for s in result.series]
    assert result.problems == []
    return result.series[0].volume


def _files(folder: Path) -> list[tuple[str, bytes]]:
    return [(f"{folder.name}/{f.name}", f.read_bytes()) for f in sorted(folder.iterdir()) if f.is_file()]


@pytest.fixture(scope="module")
def ct_folder(data_dir) -> Path:
    return data_dir / "dicom_series_ct_totalsegmentator"


@pytest.fixture(scope="module")
def ct_volume(ct_folder):
    return _one(load_path(ct_folder))


def test_ct_series_shape_spacing_and_hu(ct_volume):
    v = ct_volume
    assert v.shape == (20, 512, 512) and v.array.dtype == np.float32
    assert v.modality == "CT" and v.units == "HU"
    assert v.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert v.array.min() == pytest.approx(-1024, abs=30)
    assert np.percentile(v.array, 5) < -900  # air around the patient
    assert v.array.max() > 300  # bone
    assert v.meta["TransferSyntax"].startswith("JPEG 2000")
    assert v.meta["Rows"] == 512 and v.warnings == ()


def test_ct_series_follows_lps_contract(ct_volume):
    """Affine columns point along +L, +P, +S; slices sorted by position (z = -804.5 .. -766.5)."""
    a = ct_volume.affine
    assert ct_volume.orientation == "LPS"
    for col in range(3):
        direction = a[:3, col]
        assert int(np.argmax(np.abs(direction))) == col and direction[col] > 0
    assert a[2, 3] == pytest.approx(-804.5)
    assert (a @ [0, 0, 19, 1])[2] == pytest.approx(-766.5)


def test_ct_series_upload_order_and_zip_do_not_matter(ct_folder, ct_volume):
    files = _files(ct_folder)
    shuffled = [files[i] for i in np.random.default_rng(7).permutation(len(files))]
    up = _one(load_files(shuffled))
    np.testing.assert_array_equal(up.array, ct_volume.array)
    np.testing.assert_allclose(up.affine, ct_volume.affine)
    zipped = load_files([("ct.zip", zip_bytes(shuffled, zipfile.ZIP_STORED))])
    np.testing.assert_array_equal(_one(zipped).array, ct_volume.array)


def test_ct_series_headers_without_pixels_and_meta_non_identifying(ct_volume):
    headers = ct_volume.dicom_headers
    assert len(headers) == 20 and all("PixelData" not in ds for ds in headers)
    z = [float(ds.ImagePositionPatient[2]) for ds in headers]
    assert z == sorted(z)  # final slice order (inferior to superior)
    banned = {"PatientName", "PatientID", "StudyDate", "SeriesInstanceUID", "SOPInstanceUID", "SeriesDescription"}
    assert not banned & set(ct_volume.meta)


def test_mr_prostate_oblique_series(data_dir):
    v = _one(load_path(data_dir / "dicom_series_mr_prostate_adc_qin"))
    assert v.shape == (20, 256, 256) and v.modality == "MR" and v.units == "a.u."
    assert v.spacing == pytest.approx((3.0, 0.7031, 0.7031), abs=1e-3)
    assert v.orientation == "LPS"
    off_diagonal = v.affine[:3, :3] - np.diag(np.diag(v.affine[:3, :3]))
    assert np.abs(off_diagonal).max() > 0.1  # the oblique direction is kept in the affine
    assert v.meta["SeriesNumber"] == 701


def test_ct_three_slices_and_seg_listed(data_dir):
    r = load_path(data_dir / "dicom_ct_3slice_with_liver_seg")
    v = _one(r)
    assert v.shape == (3, 512, 512) and v.units == "HU"
    assert v.meta["TransferSyntax"] == "Implicit VR Little Endian"
    assert any("liver_seg.dcm (SEG)" in n for n in r.notes)


SINGLE_FILES = {  # name: (shape after loading, units); shapes from MANIFEST §7
    "RG1_J2KI.dcm": ((1, 1955, 1841), "a.u."),
    "RG3_J2KR.dcm": ((1, 1760, 1760), "a.u."),
    "693_UNCI.dcm": ((1, 512, 512), "HU"),
    "693_J2KR.dcm": ((1, 512, 512), "HU"),
    "explicit_VR-UN.dcm": ((1, 512, 512), "HU"),
    "eCT_Supplemental.dcm": ((2, 512, 512), "a.u."),  # RescaleType US: not HU
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ((1, 484, 484), "a.u."),
    "MR2_J2KI.dcm": ((1, 1024, 1024), "a.u."),  # one sagittal slice, kept in the file's plane
    "emri_small.dcm": ((10, 64, 64), "a.u."),
    "emri_small_big_endian.dcm": ((10, 64, 64), "a.u."),
    "emri_small_RLE.dcm": ((10, 64, 64), "a.u."),
    "emri_small_jpeg_ls_lossless.dcm": ((10, 64, 64), "a.u."),
    "emri_small_jpeg_2k_lossless.dcm": ((10, 64, 64), "a.u."),
    "US1_J2KR.dcm": ((1, 480, 640, 3), "RGB"),
    "OBXXXX1A_rle_2frame.dcm": ((2, 600, 800, 3), "RGB"),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": ((1, 768, 1024), "a.u."),
    "color-pl.dcm": ((1, 120, 256, 3), "RGB"),
    "JPEG-LL.dcm": ((1, 1024, 256), "a.u."),
    "HTJ2KLossless_08_RGB.dcm": ((1, 480, 640, 3), "RGB"),
}


@pytest.mark.parametrize("name", sorted(SINGLE_FILES))
def test_every_single_dicom_file(data_dir, name):
    shape, units = SINGLE_FILES[name]
    v = _one(load_path(data_dir / "dicom_single_files" / name))
    assert v.array.shape == shape and v.units == units
    assert v.array.dtype == (np.uint8 if units == "RGB" else np.float32)
    if v.array.dtype == np.float32:
        assert np.isfinite(v.array).all() and v.array.max() > v.array.min()


def test_single_files_folder_lists_all(data_dir):
    r = load_path(data_dir / "dicom_single_files")
    assert r.problems == []
    # 19 files; the emri_small variants share one SOP Instance UID and are de-duplicated
    assert len(r.series) >= 14 and any("duplicate" in n for n in r.notes)


def test_lossless_transfer_syntaxes_decode_identically(data_dir):
    folder = data_dir / "dicom_single_files"
    base = _one(load_path(folder / "emri_small.dcm")).array
    for variant in ("big_endian", "RLE", "jpeg_ls_lossless", "jpeg_2k_lossless"):
        np.testing.assert_array_equal(_one(load_path(folder / f"emri_small_{variant}.dcm")).array, base)


def test_monochrome1_is_inverted(data_dir):
    v = _one(load_path(data_dir / "dicom_single_files" / "RG3_J2KR.dcm"))
    assert v.meta["PhotometricInterpretation"] == "MONOCHROME1" and v.meta["MONOCHROME1Inverted"] is True
    assert v.spacing_known is False and v.orientation == "unknown"


def test_enhanced_ct_geometry_from_functional_groups(data_dir):
    v = _one(load_path(data_dir / "dicom_single_files" / "eCT_Supplemental.dcm"))
    assert v.orientation == "LPS" and v.spacing == pytest.approx((10.0, 0.388672, 0.388672), abs=1e-4)
    assert v.affine[0, 0] > 0  # IOP row direction is -x in the file: flipped to +L
    assert v.meta["WindowCenter"] == 49.0
    assert any("not Hounsfield units (RescaleType is US)" in w for w in v.warnings)


def test_jpeg_baseline_cxr_dicom(data_dir):
    v = _one(load_path(data_dir / "cxr_nih_torchxrayvision" / "cxr_pa_jpeg_baseline.dcm"))
    assert v.shape == (1, 1024, 1024) and v.modality == "CR"
    assert v.meta["TransferSyntax"] == "JPEG Baseline (Process 1)"
    assert v.orientation == "unknown" and v.spacing_known and v.spacing[1:] == pytest.approx((0.168, 0.168))


def test_cxr_pngs(data_dir):
    for png in sorted((data_dir / "cxr_nih_torchxrayvision").glob("*.png")):
        v = _one(load_path(png))
        assert v.shape == (1, 512, 512) and v.array.dtype == np.float32 and not v.spacing_known


def test_lgg_rgb_png(data_dir):
    png = sorted((data_dir / "lgg_flair_mri_seg" / "images").glob("*.png"))[0]
    v = _one(load_files([(png.name, png.read_bytes())]))
    assert v.array.shape == (1, 256, 256, 3) and v.array.dtype == np.uint8 and v.units == "RGB"


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("example_ct.nii.gz", (112, 101, 122)),
        ("example_ct_sm.nii.gz", (30, 101, 122)),
        ("example_mr_sm.nii.gz", (20, 91, 117)),
    ],
)
def test_nifti_volumes(data_dir, name, shape):
    import nibabel as nib

    path = data_dir / "ct_abdomen_3d_totalsegmentator" / name
    v = read_nifti(path.read_bytes(), name, modality="CT", units="HU")
    assert v.shape == shape and v.spacing == pytest.approx((3.0, 3.0, 3.0)) and v.orientation == "LPS"
    # The same world point holds the same value in the source (RAS) and the loaded (LPS+) arrays.
    img = nib.load(path)
    src = np.asanyarray(img.dataobj)
    ijk = np.array([40, 50, min(12, src.shape[2] - 1)])
    world_lps = np.diag([-1, -1, 1, 1]) @ img.affine @ np.r_[ijk, 1]
    x, y, z = np.rint(np.linalg.solve(v.affine, world_lps)[:3]).astype(int)
    assert v.array[z, y, x] == src[tuple(ijk)]


def test_nifti_ct_hu_range(data_dir):
    path = data_dir / "ct_abdomen_3d_totalsegmentator" / "example_ct.nii.gz"
    v = read_nifti(path.read_bytes(), path.name, modality="CT", units="HU")
    assert v.units == "HU" and v.array.min() == -1207 and v.array.max() == 3382
    assert _one(load_path(path)).units == "a.u."  # generic NIfTI: modality unknown
