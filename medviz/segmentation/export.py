"""Exports of a segmentation as bytes (for ``st.download_button``): NIfTI, DICOM SEG, PNG, CSV.

Nothing here writes files. Masks follow the Volume contract: ``(Z, Y, X)`` integer labels on the
source volume's grid (0 = background).

* NIfTI: the mask transposed to ``(X, Y, Z)`` with the volume's LPS affine converted to RAS
  (``diag(-1, -1, 1, 1) @ affine``), so any NIfTI tool places every voxel where the source was.
* DICOM SEG (highdicom, BINARY): references the source series. Each source slice's pixels are
  looked up in the mask through the slice's own ImagePositionPatient / ImageOrientationPatient /
  PixelSpacing and the volume's affine, so the SEG is correct even when loading reoriented
  the array. Patient/study attributes are copied by highdicom from the source headers, nothing more.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from medviz.io.nifti_write import nifti_bytes_of
from medviz.segmentation.measure import SLICE_COLUMN
from medviz.types import MedvizError, Volume


class ExportError(MedvizError):
    """The export cannot be written for this input (shape mismatch, no DICOM source...)."""


def _check_mask(volume: Volume, mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != volume.shape:
        raise ExportError(f"mask shape {m.shape} differs from the volume shape {volume.shape}")
    return m


def nifti_bytes(volume: Volume, mask: np.ndarray, compress: bool = True) -> bytes:
    """The mask as NIfTI-1 (``.nii.gz`` when ``compress``) in the source geometry (uint8 labels)."""
    return nifti_bytes_of(volume, _check_mask(volume, mask).astype(np.uint8), compress=compress)


def _mask_on_source_slices(volume: Volume, mask: np.ndarray, headers: Sequence[Any]) -> np.ndarray:
    """``(n_headers, Rows, Columns)`` mask resampled (nearest) onto each source slice's pixel grid."""
    inv = np.linalg.inv(np.asarray(volume.affine, dtype=np.float64))
    out = []
    for ds in headers:
        rows, cols = int(ds.Rows), int(ds.Columns)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        lps = ipp + j[..., None] * dc * iop[:3] + i[..., None] * dr * iop[3:]
        xyz = np.rint(lps @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
        inside = (x >= 0) & (x < mask.shape[2]) & (y >= 0) & (y < mask.shape[1]) & (z >= 0) & (z < mask.shape[0])
        sl = np.zeros((rows, cols), dtype=mask.dtype)
        sl[inside] = mask[z[inside], y[inside], x[inside]]
        out.append(sl)
    return np.stack(out)


def dicom_seg_bytes(volume: Volume, mask: np.ndarray, label_names: dict[int, str] | None = None,
                    algorithm: str = "MedViz lgg_unet", version: str = "1") -> bytes:
    """A BINARY DICOM SEG (highdicom) referencing the volume's source DICOM series.

    Args:
        volume: a Volume loaded from DICOM (``dicom_headers`` present, slice order).
        mask: ``(Z, Y, X)`` labels on the volume grid; each non-zero label becomes a segment.
        label_names: label -> segment label (default ``"label N"``).

    Raises:
        ExportError: no DICOM source headers, or an empty mask.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    m = _check_mask(volume, mask)
    headers = list(volume.dicom_headers or [])
    if not headers:
        raise ExportError("DICOM SEG needs a DICOM source series; export NIfTI for this study instead")
    labels = [int(v) for v in np.unique(m) if v != 0]
    if not labels:
        raise ExportError("the mask is empty: there is no segment to export")
    src = _mask_on_source_slices(volume, m, headers)
    headers = [_usable_header(ds) for ds in headers]
    onehot = np.stack([(src == lab) for lab in labels], axis=-1).astype(np.uint8)  # (frames, rows, cols, segs)
    algo = hd.AlgorithmIdentificationSequence(name=algorithm, family=codes.cid7162.ArtificialIntelligence,
                                              version=version)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1, segment_label=(label_names or {}).get(lab, f"label {lab}"),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo)
        for n, lab in enumerate(labels)
    ]
    seg = hd.seg.Segmentation(
        source_images=headers, pixel_array=onehot, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="MedViz", manufacturer_model_name=algorithm,
        software_versions=version, device_serial_number="none", series_description="MedViz segmentation",
    )
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()


def _usable_header(ds: Any) -> Any:
    """A copy of a source header with an empty SOPClassUID/SOPInstanceUID filled from the file meta
    (some anonymisers blank them); the Volume's headers are never modified."""
    import copy

    meta = getattr(ds, "file_meta", None)
    if ds.get("SOPClassUID") and ds.get("SOPInstanceUID"):
        return ds
    if meta is None or not meta.get("MediaStorageSOPClassUID"):
        raise ExportError("a source DICOM slice has no SOP Class UID; it cannot be referenced by a DICOM SEG")
    ds = copy.deepcopy(ds)
    if not ds.get("SOPClassUID"):
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
    if not ds.get("SOPInstanceUID"):
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image (e.g. :func:`medviz.imaging.overlay.fuse_overlay`) as PNG bytes."""
    from PIL import Image

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ExportError(f"PNG export needs an (H, W, 3) uint8 image, not {a.shape} {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


#: The columns of :func:`medviz.segmentation.measure.label_measurements`, in order (the CSV header).
MEASUREMENT_COLUMNS = ("label", "name", "voxels", "volume_ml", SLICE_COLUMN, "area_mm2", "max_area_mm2")


def csv_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str] = MEASUREMENT_COLUMNS) -> bytes:
    """Measurement rows (e.g. :func:`medviz.segmentation.measure.label_measurements`) as UTF-8 CSV.

    The header row is always written, so an empty mask downloads as a header-only file, not 0 bytes.

    Raises:
        ExportError: a row has a column that is not in ``columns``.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns))
    w.writeheader()
    try:
        w.writerows(rows)
    except ValueError as e:  # DictWriter: "dict contains fields not in fieldnames"
        raise ExportError(f"measurement rows do not match the CSV columns {', '.join(columns)}: {e}") from e
    return buf.getvalue().encode("utf-8")


