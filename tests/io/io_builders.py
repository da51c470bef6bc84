"""Synthetic DICOM / NIfTI / PNG / zip builders for the loader tests (no patient data, deterministic)."""

from __future__ import annotations

import io

import numpy as np

SERIES_UID = "1.2.826.0.1.3680043.8.498.1"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def dicom_bytes(ds) -> bytes:
    """Write a pydicom Dataset (with file_meta) to bytes, as a Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_ct_dataset(
    pixels: np.ndarray,
    *,
    position: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    orientation: tuple[float, ...] | None = AXIAL,
    spacing: tuple[float, float] = (0.5, 0.7),
    series_uid: str = SERIES_UID,
    sop_uid: str | None = None,
    instance: int = 1,
    modality: str = "CT",
    series_number: int = 3,
    slope: float = 1.0,
    intercept: float = -1024.0,
):
    """A minimal CT Image Storage data set (Explicit VR LE) holding ``pixels`` (rows, columns) int16."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    sop = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance
    ds.PatientName = "CANARY^PATIENT"
    ds.SeriesDescription = "CANARY DESCRIPTION"
    if position is not None:
        ds.ImagePositionPatient = list(position)
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.set_pixel_data(np.asarray(pixels, dtype=np.int16), "MONOCHROME2", 16)
    return ds


def nifti_bytes(array: np.ndarray, affine: np.ndarray | None = None, *, gz: bool = False) -> bytes:
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(array, np.eye(4) if affine is None else affine)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format=fmt) if mode else Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(members: list[tuple[str, bytes]], compression: int | None = None) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression or zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression or zipfile.ZIP_DEFLATED)
    return buf.getvalue()
