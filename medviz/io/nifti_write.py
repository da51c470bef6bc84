"""A :class:`~medviz.types.Volume` (or a label map on its grid) written as NIfTI-1 bytes, in its true geometry.

The array ``(Z, Y, X)`` is transposed to NIfTI's ``(X, Y, Z)`` and the LPS affine converted to RAS
(``diag(-1, -1, 1, 1) @ affine``), so that any NIfTI reader — the in-browser viewer included — places every voxel
where the source put it. RGB volumes become NIfTI RGB24. A volume without patient geometry gets sform/qform code
2 (aligned to our grid) instead of 1 (scanner space).
"""

from __future__ import annotations

import gzip

import numpy as np

from medviz.types import Volume

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def nifti_bytes_of(volume: Volume, data: np.ndarray | None = None, *, compress: bool = True) -> bytes:
    """``data`` (default: the volume's own array), shaped ``(Z, Y, X)`` or ``(Z, Y, X, 3)`` uint8 RGB, as NIfTI
    bytes on the volume's grid (``.nii.gz`` bytes when ``compress``; gzip ``mtime`` 0, so equal inputs give equal
    bytes)."""
    import nibabel as nib

    a = np.asarray(volume.array if data is None else data)
    if a.shape[:3] != volume.shape:
        raise ValueError(f"data of shape {a.shape} is not on the volume's grid {volume.shape}")
    xyz = np.transpose(a, (2, 1, 0, 3) if a.ndim == 4 else (2, 1, 0))
    if a.ndim == 4:
        xyz = np.ascontiguousarray(xyz.astype(np.uint8)).view(_RGB24)[..., 0]
    elif a.dtype.kind == "f" and _fits_int16(a):
        xyz = xyz.astype(np.int16)  # CT in HU and most MR: half the bytes, the same values
    img = nib.Nifti1Image(np.ascontiguousarray(xyz), RAS_FROM_LPS @ np.asarray(volume.affine, dtype=np.float64))
    code = 1 if volume.orientation != "unknown" else 2
    img.set_sform(img.affine, code=code)
    img.set_qform(img.affine, code=code)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw


def _fits_int16(a: np.ndarray) -> bool:
    """True when every value of ``a`` is a whole number within int16 (converting then loses nothing)."""
    if not a.size or not np.all(np.isfinite(a)):
        return False
    lo, hi = float(a.min()), float(a.max())
    return -32768 <= lo and hi <= 32767 and bool(np.all(a == np.round(a)))


def array_on_grid(volume: Volume, data: bytes) -> np.ndarray:
    """The ``(Z, Y, X)`` array of a NIfTI written on ``volume``'s grid — by :func:`nifti_bytes_of`, or by the
    in-browser viewer, which saves a drawn mask with the study's own header.

    Raises:
        ValueError: the file is not NIfTI, or its grid (shape or affine) is not the volume's.
    """
    import nibabel as nib

    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    try:
        img = nib.Nifti1Image.from_bytes(raw)
    except Exception as e:  # nibabel raises several types for a malformed header
        raise ValueError(f"the mask sent back is not a readable NIfTI file ({e})") from None
    xyz = np.asanyarray(img.dataobj)
    if xyz.ndim == 4 and xyz.shape[3] == 1:
        xyz = xyz[..., 0]
    if xyz.shape[::-1] != volume.shape:
        raise ValueError(f"the mask sent back has shape {xyz.shape[::-1]}, not the study's {volume.shape}")
    expected = RAS_FROM_LPS @ np.asarray(volume.affine, dtype=np.float64)
    if not np.allclose(img.affine, expected, atol=1e-3):
        raise ValueError("the mask sent back is not on the study's grid (its affine differs)")
    return np.ascontiguousarray(np.transpose(xyz, (2, 1, 0)))
