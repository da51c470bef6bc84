"""Every super-resolution export, read back: each one says SYNTHETIC, and a synthetic DICOM series can never take
the place of the real one."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from medviz.superres.export import (
    SYNTHETIC_LABEL,
    SuperResExportError,
    burn_label,
    dicom_bytes,
    display_uint8,
    export_file_name,
    nifti_bytes,
    nifti_file_name,
    png_bytes,
)


@pytest.fixture
def image(rng) -> np.ndarray:
    """A 64x48 image in [0, 1]: a bright disc on a dim noisy background."""
    y, x = np.mgrid[-1:1:64j, -1:1:48j]
    return np.clip(0.6 * (x ** 2 + y ** 2 < 0.6) + 0.1 * rng.random((64, 48)), 0, 1).astype(np.float32)


@pytest.fixture
def source():
    """A real MR header (pydicom's MR_small example) as the source study."""
    from pydicom import examples

    return examples.mr


def _read_png(data: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return np.asarray(im), im.text


def test_png_has_the_label_burned_into_its_pixels_and_its_text_chunks(image):
    pixels, text = _read_png(png_bytes(image))
    k = 512 // 48 + 1  # enlarged by a whole factor to at least 512 px wide, so the text is legible
    assert pixels.shape == (64 * k, 48 * k) and pixels.dtype == np.uint8
    plain = np.repeat(np.repeat(display_uint8(image), k, axis=0), k, axis=1)
    differs = np.any(pixels != plain, axis=1)
    band = int(np.argmin(differs))  # the first row like the unlabelled image: the band ends there
    assert band >= 16 and differs[:band].all() and not differs[band:].any()  # only the band, and all of it
    assert (pixels[:band] == 255).sum() > 200  # white text on it...
    assert np.median(pixels[:band]) < 40  # ...over a dark band
    assert text["Disclaimer"] == text["Warning"] == SYNTHETIC_LABEL


def test_png_follows_the_window_and_keeps_wide_images_at_their_size(rng):
    wide = rng.random((40, 600)).astype(np.float32)
    pixels, _ = _read_png(png_bytes(wide, window=(0.2, 0.4)))
    assert pixels.shape == (40, 600)
    np.testing.assert_array_equal(pixels[-10:], display_uint8(wide, (0.2, 0.4))[-10:])
    assert set(np.unique(display_uint8(np.array([[0.1, 0.3, 0.5]]), (0.2, 0.4)))) == {0, 128, 255}


def test_an_export_label_must_say_synthetic_and_the_input_must_be_one_slice(image):
    with pytest.raises(SuperResExportError, match="must say SYNTHETIC"):
        png_bytes(image, label="super-resolved")
    with pytest.raises(SuperResExportError, match="one 2D image"):
        nifti_bytes(np.zeros((2, 8, 8)), "m")
    with pytest.raises(SuperResExportError, match="one 2D image"):
        dicom_bytes(np.zeros(8), None, "m")


def test_exports_leave_the_image_as_it_was(image, source):
    before = image.copy()
    png_bytes(image)
    nifti_bytes(image, "m")
    dicom_bytes(image, source, "m")
    burn_label(display_uint8(image))
    np.testing.assert_array_equal(image, before)


def test_nifti_says_synthetic_in_its_header_and_its_file_name(image):
    import nibabel as nib

    nii = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_bytes(image, "lgg_flair_sr4_gan", (0.5, 0.25), peak=200.0)))
    descrip = nii.header["descrip"].tobytes().decode("ascii")
    assert descrip.startswith("SYNTHETIC") and "lgg_flair_sr4_gan" in descrip
    assert nii.shape == (48, 64, 1)  # (X, Y, 1): columns, rows
    np.testing.assert_allclose(nii.get_fdata()[..., 0].T, image * 200.0, rtol=1e-6)
    np.testing.assert_allclose(nii.header.get_zooms()[:2], (0.25, 0.5))
    name = nifti_file_name("lgg_flair_sr4_gan", slice_number=12)
    assert name.startswith("SYNTHETIC") and name.endswith("_slice012.nii.gz")
    assert export_file_name("blend 0.50 A/B", "png").startswith("SYNTHETIC") and "/" not in export_file_name("a/b", "png")


def test_a_long_model_name_never_cuts_the_warning_out_of_the_80_byte_descrip(image):
    import nibabel as nib

    nii = nib.Nifti1Image.from_bytes(nifti_bytes(image, "é" + "x" * 200, compress=False))
    descrip = nii.header["descrip"].tobytes().rstrip(b"\0").decode("ascii")
    assert descrip.startswith("SYNTHETIC - NOT FOR DIAGNOSIS") and len(descrip) < 80 and descrip.endswith("...)")


def test_dicom_is_a_synthetic_secondary_capture_in_the_source_study_but_a_new_series(image, source):
    import pydicom
    from pydicom.uid import SecondaryCaptureImageStorage

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(image, source, "lgg_flair_sr4_gan", window=(0.1, 0.9),
                                                pixel_spacing_mm=(0.5, 0.5))))
    assert ds.SOPClassUID == SecondaryCaptureImageStorage
    assert ds.SyntheticData == "YES"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription.startswith("SYNTHETIC") and "lgg_flair_sr4_gan" in ds.SeriesDescription
    assert ds.ConversionType == "SYN" and ds.BurnedInAnnotation == "YES"
    assert "super-resolution" in ds.DerivationDescription
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.StudyInstanceUID == source.StudyInstanceUID  # files under the same study
    assert (ds.PatientName, ds.PatientID) == (source.PatientName, source.PatientID)
    for kw in ("InstitutionName", "FrameOfReferenceUID", "ImagePositionPatient", "SliceLocation"):
        assert kw in source and kw not in ds  # only the patient and study identity are copied
    assert ds.pixel_array.shape == image.shape and ds.pixel_array.max() <= 4095
    np.testing.assert_array_equal(ds.pixel_array[-20:], np.rint(image[-20:] * 4095))  # below the label band
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
    assert float(ds.WindowCenter) == pytest.approx(0.5 * 4095) and float(ds.WindowWidth) == pytest.approx(0.8 * 4095)


def test_every_dicom_export_is_a_new_series_and_without_a_source_a_new_study(image):
    import pydicom

    a, b = (pydicom.dcmread(io.BytesIO(dicom_bytes(image, None, "m", burn_in=False))) for _ in range(2))
    assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert a.StudyInstanceUID != b.StudyInstanceUID  # no source: no study to file under
    assert a.SyntheticData == "YES" and a.BurnedInAnnotation == "NO" and a.PatientID == ""
    np.testing.assert_array_equal(a.pixel_array, np.rint(image * 4095))
