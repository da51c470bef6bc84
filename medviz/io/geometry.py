"""Affine helpers shared by the DICOM and NIfTI readers: reorientation to the closest LPS+ axes.

Arrays here are indexed ``(x, y, z)`` (column, row, slice) like the affine of the Volume contract;
the readers transpose to ``(Z, Y, X)`` only at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Negative/positive labels of the three LPS world axes, for nibabel's axcodes helpers.
LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Reoriented:
    """Result of :func:`reorient_to_lps`.

    Attributes:
        array: ``(Z, Y, X)`` or ``(Z, Y, X, C)``, C-contiguous.
        affine: 4x4 index ``(x, y, z, 1)`` -> LPS mm for the new array.
        spacing: ``(sz, sy, sx)`` in mm (column norms of the new affine).
        orientation: axis codes of ``(x, y, z)``, normally ``"LPS"``.
        source_slice_axis: axis of the *returned* ``(Z, Y, X)`` array holding the input's axis 2.
        source_slice_flipped: True when that axis now runs opposite to the input's slice order.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str
    source_slice_axis: int
    source_slice_flipped: bool


def check_affine(affine: np.ndarray, what: str) -> None:
    """Refuse an affine that cannot place voxels in space.

    Raises:
        ValueError: non-finite entries, or a singular 3x3 part (a zero or collinear axis).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"{what} affine is not a finite 4x4 matrix: {np.array2string(a, precision=3)}")
    lin = a[:3, :3]
    norms = np.linalg.norm(lin, axis=0)
    if np.any(norms <= 0) or abs(np.linalg.det(lin)) <= 1e-6 * float(np.prod(norms)):
        raise ValueError(
            f"{what} affine is singular (voxel axes of length {np.round(norms, 4).tolist()} mm or collinear); "
            "the voxel geometry is unusable"
        )


def reorient_to_lps(array_xyz: np.ndarray, affine: np.ndarray) -> Reoriented:
    """Flip/permute ``array_xyz`` so its axes are the closest to L, P, S (increasing).

    A single slice (``Z == 1``) is left in the file's row/column order.

    Uses nibabel's ``io_orientation`` / ``apply_orientation`` / ``inv_ornt_aff``, the same steps
    as ``nibabel.as_closest_canonical`` but in the LPS world of DICOM. Oblique data keep their
    true direction in the returned affine.

    Args:
        array_xyz: ``(X, Y, Z)`` or ``(X, Y, Z, C)`` array.
        affine: 4x4 index ``(x, y, z, 1)`` -> LPS mm.

    Returns:
        A :class:`Reoriented` with the ``(Z, Y, X[, C])`` array.
    """
    from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

    check_affine(affine, "image")
    if array_xyz.shape[2] == 1:
        # A single slice keeps the file's row/column order: the plane the modality meant to be shown
        # (see the Volume contract); only its true affine and axis codes are reported.
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    else:
        ornt = io_orientation(affine)
    data = apply_orientation(array_xyz, ornt)
    new_aff = np.asarray(affine, dtype=np.float64) @ inv_ornt_aff(ornt, array_xyz.shape[:3])
    codes = "".join(aff2axcodes(new_aff, labels=LPS_LABELS))
    order = (2, 1, 0, 3) if data.ndim == 4 else (2, 1, 0)
    out = np.ascontiguousarray(np.transpose(data, order))
    norms = np.linalg.norm(new_aff[:3, :3], axis=0)
    slice_axis_xyz = int(ornt[2, 0])
    return Reoriented(
        array=out,
        affine=new_aff,
        spacing=(float(norms[2]), float(norms[1]), float(norms[0])),
        orientation=codes,
        source_slice_axis=2 - slice_axis_xyz,
        source_slice_flipped=bool(ornt[2, 1] < 0),
    )
