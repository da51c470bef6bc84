"""NIfTI-1/2 (``.nii`` / ``.nii.gz``) from bytes, with size checks before any allocation.

Gzip input is inflated incrementally: first only the header, whose dimensions × data type
size are checked against :class:`~medviz.config.Limits`; then exactly the bytes the header
declares (plus nothing more than a small slack). The RAS affine is converted to LPS and the
array reoriented to the closest LPS+ axes.
"""

from __future__ import annotations

import io
import math
import zlib
from typing import Any

import numpy as np

from medviz.io import limits as _lim
from medviz.io.finite import replace_non_finite
from medviz.io.geometry import RAS_TO_LPS, check_affine, reorient_to_lps
from medviz.types import Volume


def read_nifti(data: bytes, source: str, *, modality: str = "OT", units: str = "a.u.") -> Volume:
    """Read one NIfTI image from memory.

    Args:
        data: ``.nii`` bytes, or gzip-compressed ``.nii.gz`` bytes.
        source: the file name as given (display name and messages).
        modality: modality to record (NIfTI carries none; ``"CT"`` with ``units="HU"`` for CT).
        units: units of the values (``"a.u."`` unless the caller knows better).

    Returns:
        A :class:`~medviz.types.Volume`: ``(Z, Y, X)`` float32 in LPS+ order, or
        ``(Z, Y, X, 3)`` uint8 for RGB NIfTI. 4D+ data keep the first volume (with a warning);
        NaN/Inf voxels are replaced by the minimum finite value, with a warning
        (:func:`medviz.io.finite.replace_non_finite`, the rule of every reader).

    Raises:
        ValueError: corrupt, truncated, complex-valued, non-positive pixdim or singular affine.
        medviz.io.limits.InputTooLarge: declared size over the limits, or a gzip bomb.
    """
    import nibabel as nib

    raw, header_cls = _raw_bytes(data)
    hdr, shape, dtype, pixdim = _checked_header(raw, header_cls)
    img = (nib.Nifti2Image if header_cls is nib.Nifti2Header else nib.Nifti1Image).from_bytes(raw)
    affine, warnings = _affine(img, hdr, pixdim, shape)
    values, rgb, value_warnings = _first_volume(img, shape, dtype)
    r = reorient_to_lps(values, RAS_TO_LPS @ affine)
    meta = {
        "Format": "NIfTI-2" if header_cls is nib.Nifti2Header else "NIfTI-1",
        "DataType": str(dtype),
        "Shape": list(shape),
        "Modality": modality,
        **header_text(hdr),
    }
    return Volume(
        array=r.array if r.array.dtype == np.uint8 else r.array.astype(np.float32, copy=False),
        spacing=r.spacing,
        affine=r.affine,
        modality=modality,
        units="RGB" if rgb else units,
        orientation=r.orientation,
        spacing_known=True,
        name=source.replace("\\", "/").rsplit("/", 1)[-1],
        meta=meta,
        warnings=tuple(warnings + value_warnings),
    )


def header_text(hdr: Any) -> dict[str, Any]:
    """The header's own words about its values, where it has any: ``IntentCode`` (a NIfTI intent other than
    none), ``IntentName`` and ``Description`` (``descrip``), decoded as ASCII and stripped."""
    def text(key: str) -> str:
        raw = np.asarray(hdr[key]).tobytes()
        return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()

    out: dict[str, Any] = {}
    code = int(np.asarray(hdr["intent_code"]))
    if code:
        out["IntentCode"] = code
    if name := text("intent_name"):
        out["IntentName"] = name
    if descrip := text("descrip"):
        out["Description"] = descrip
    return out


def _checked_header(raw: bytes, header_cls: type) -> tuple[Any, tuple[int, ...], np.dtype, list[float]]:
    """The header of ``raw`` after the checks made before any voxel is allocated: at least 2 dimensions,
    voxel count within the limits, enough bytes for the declared data, a real data type.

    Returns:
        ``(header, shape, dtype, pixdim[1:4])``.
    """
    pixdim = [float(z) for z in _header(raw, header_cls, check=False)["pixdim"][1:4]]
    hdr = _header(raw, header_cls)
    shape = tuple(int(s) for s in hdr.get_data_shape())
    dtype = hdr.get_data_dtype()
    if len(shape) < 2:
        raise ValueError(f"NIfTI image has {len(shape)} dimension(s) {shape}; at least 2 are needed")
    if any(s < 1 for s in shape):
        dims = "×".join(str(s) for s in shape)
        raise ValueError(f"the NIfTI header declares a dimension of size 0 ({dims}): the file holds no voxels to show")
    _lim.check_voxels((shape + (1,))[:3], "NIfTI image")
    needed = int(hdr.get_data_offset()) + math.prod(shape) * dtype.itemsize
    if len(raw) < needed:
        raise ValueError(
            f"truncated NIfTI: the image data is {needed - len(raw):,} bytes short "
            f"of the {shape} {dtype} the header declares"
        )
    if dtype.kind == "c":
        raise ValueError(f"complex-valued NIfTI ({dtype}) is not supported")
    return hdr, shape, dtype, pixdim


def _affine(img: Any, hdr: Any, pixdim: list[float], shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """The RAS affine nibabel chose (sform, else qform, else pixdim only), checked, with warnings about
    non-positive pixdim, a qform that disagrees with the sform, or no orientation at all."""
    warnings: list[str] = []
    affine = np.asarray(img.affine, dtype=np.float64)
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    bad_pixdim = any(not (z > 0) or not math.isfinite(z) for z in pixdim[: len(shape)])
    if bad_pixdim and scode <= 0:
        raise ValueError(f"NIfTI pixdim[1:4] = {pixdim} must be positive voxel sizes in mm")
    if bad_pixdim:
        warnings.append(f"NIfTI pixdim[1:4] = {pixdim} is not positive; the sform was used")
    check_affine(affine, "NIfTI")
    if scode > 0 and qcode > 0:
        q = np.asarray(hdr.get_qform(), dtype=np.float64)
        if not np.allclose(q, affine, atol=1e-3):
            warnings.append("qform and sform differ; the sform was used (as nibabel does)")
    if scode <= 0 and qcode <= 0:
        warnings.append(
            "the header has no qform/sform orientation: nibabel's default (pixdim only) was used; check left/right"
        )
    return affine, warnings


def _first_volume(img: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, bool, list[str]]:
    """The first 3D volume of the image as ``(i, j, k)`` float32 (NaN/Inf replaced by the minimum finite
    value) or ``(i, j, k, 3)`` uint8 for RGB voxels.

    Returns:
        ``(values, is_rgb, warnings)``.
    """
    warnings: list[str] = []
    index = (slice(None),) * min(len(shape), 3) + (0,) * max(0, len(shape) - 3)
    if len(shape) > 3:
        extra = "×".join(str(s) for s in shape[3:])
        warnings.append(f"{len(shape)}D NIfTI ({extra} volumes): only the first volume is shown")
    values = np.asanyarray(img.dataobj[index])
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    if dtype.names:  # RGB24 / RGBA32 structured voxels
        return np.stack([values[n] for n in dtype.names[:3]], axis=-1).astype(np.uint8), True, warnings
    values, note = replace_non_finite(values.astype(np.float32, copy=False))
    return values, False, warnings + ([note] if note else [])


def _raw_bytes(data: bytes) -> tuple[bytes, type]:
    """Uncompressed NIfTI bytes (inflating gzip in two capped steps) and the header class."""
    if not data.startswith(b"\x1f\x8b"):
        return data, _header_class(data[:548])
    lim = _lim.limits()
    d = zlib.decompressobj(31)
    try:
        head = d.decompress(data, 548)
    except zlib.error as e:
        raise ValueError(f"corrupt gzip data: {e}") from e
    header_cls = _header_class(head)
    hdr = _header(head + b"\x00" * 4, header_cls)
    shape = tuple(int(s) for s in hdr.get_data_shape())
    _lim.check_voxels((shape + (1,))[:3], "NIfTI image")
    needed = int(hdr.get_data_offset()) + math.prod(shape) * hdr.get_data_dtype().itemsize
    if needed > lim.max_unpacked_bytes:
        raise _lim.InputTooLarge(f"NIfTI declares {needed:,} bytes, over the limit of {lim.max_unpacked_bytes:,}")
    try:
        rest = d.decompress(d.unconsumed_tail, max(0, needed - len(head)) + 1)
    except zlib.error as e:
        raise ValueError(f"corrupt gzip data: {e}") from e
    raw = head + rest
    if len(raw) < needed and not d.eof:
        raise ValueError("truncated .nii.gz: the gzip stream ends before the image data")
    return raw[: max(needed, len(head))] if len(raw) > needed else raw, header_cls


def _header_class(head: bytes) -> type:
    import nibabel as nib

    kind = _lim.sniff_nifti_header(head)
    if kind == "analyze":
        raise ValueError(
            "this is an Analyze/NIfTI .hdr header of a .hdr/.img pair; upload a single-file .nii or .nii.gz"
        )
    if kind != "nifti":
        raise ValueError("not a NIfTI file (no 'n+1'/'n+2' magic)")
    size = int.from_bytes(head[:4], "little")
    if size not in (348, 540):
        size = int.from_bytes(head[:4], "big")
    return nib.Nifti2Header if size == 540 else nib.Nifti1Header


def _header(raw: bytes, header_cls: type, *, check: bool = True):
    from nibabel.spatialimages import HeaderDataError

    try:
        return header_cls.from_fileobj(io.BytesIO(raw[: header_cls.template_dtype.itemsize]), check=check)
    except (HeaderDataError, ValueError) as e:
        raise ValueError(f"invalid NIfTI header: {e}") from e
