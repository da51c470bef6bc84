"""Extract axial, coronal and sagittal planes from a :class:`~medviz.types.Volume` for display.

Display convention (radiological), for volumes under the LPS+ contract of ``medviz.types``:

========  ============  ===========  =====================  ==================
plane     fixed axis    rows (down)  columns (to the right)  edge labels T/B/L/R
========  ============  ===========  =====================  ==================
axial     z (index k)   y: A -> P    x: R -> L               A / P / R / L
coronal   y (index j)   z: S -> I    x: R -> L               S / I / R / L
sagittal  x (index i)   z: S -> I    y: A -> P               S / I / A / P
========  ============  ===========  =====================  ==================

Each display axis is flipped when the volume's ``orientation`` code for it points the other way,
and the edge labels are always derived from that code, so they stay truthful even for a volume
that breaks the contract. Volumes with ``orientation == "unknown"`` are shown as stored, without
labels, and cannot be reformatted (only the slice axis is browsable).

A :class:`PlaneSlice` maps any display pixel ``(row, col)`` back to the voxel index ``(z, y, x)``
and to patient coordinates (LPS, mm) through the volume's affine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviz.constants import Plane
from medviz.types import Volume

_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
_PAIR = {c: frozenset((c, o)) for c, o in _OPPOSITE.items()}
LPS_NAMES = ("L", "P", "S")

# plane -> (fixed array axis, row array axis, wanted code down the rows,
#           column array axis, wanted code along the columns). Array axes: 0=z, 1=y, 2=x.
_LAYOUT: dict[Plane, tuple[int, int, str, int, str]] = {
    Plane.AXIAL: (0, 1, "P", 2, "L"),
    Plane.CORONAL: (1, 0, "I", 2, "L"),
    Plane.SAGITTAL: (2, 0, "I", 1, "P"),
}


@dataclass(frozen=True)
class EdgeLabels:
    """Anatomical direction at each image edge (``""`` when unknown)."""

    top: str = ""
    bottom: str = ""
    left: str = ""
    right: str = ""


@dataclass(frozen=True)
class AxisCoords:
    """Patient coordinate along one display axis of an axis-aligned plane.

    ``value(i) = start + step * i`` mm on LPS component ``name`` (``"L"``, ``"P"`` or ``"S"``)
    for display index ``i`` (row or column).
    """

    name: str
    start: float
    step: float


@dataclass(frozen=True, eq=False)
class PlaneSlice:
    """One plane of a volume, oriented for display.

    Attributes:
        image: ``(rows, cols)`` or ``(rows, cols, 3)`` view into the volume (not a copy; never
            write to it). Row 0 is the top edge, column 0 the left edge.
        plane: which plane.
        index: slice index along the fixed array axis.
        row_mm: pixel height in mm (spacing along the rows).
        col_mm: pixel width in mm.
        labels: anatomical edge labels.
        fixed_axis, row_axis, col_axis: array axes (0=z, 1=y, 2=x) behind the slice, rows and columns.
        row_flip, col_flip: True when display index 0 is the last array index of that axis.
        volume_shape: ``(Z, Y, X)``.
        affine: the volume's 4x4 index ``(x, y, z, 1)`` -> LPS mm matrix.
        has_geometry: False for ``orientation == "unknown"`` (mm are then relative to pixel 0).
    """

    image: np.ndarray
    plane: Plane
    index: int
    row_mm: float
    col_mm: float
    labels: EdgeLabels
    fixed_axis: int
    row_axis: int
    col_axis: int
    row_flip: bool
    col_flip: bool
    volume_shape: tuple[int, int, int]
    affine: np.ndarray
    has_geometry: bool

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the displayed image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def voxel_index(self, row: float | np.ndarray, col: float | np.ndarray) -> np.ndarray:
        """Voxel index ``(z, y, x)`` of display pixel(s) ``(row, col)``.

        Args:
            row, col: display coordinates (scalars or broadcastable arrays; fractions allowed).

        Returns:
            float array of shape ``broadcast(row, col).shape + (3,)`` in array order ``(z, y, x)``.
        """
        row, col = np.broadcast_arrays(np.asarray(row, float), np.asarray(col, float))
        out = np.empty(row.shape + (3,), dtype=float)
        out[..., self.fixed_axis] = self.index
        n_row, n_col = self.volume_shape[self.row_axis], self.volume_shape[self.col_axis]
        out[..., self.row_axis] = (n_row - 1 - row) if self.row_flip else row
        out[..., self.col_axis] = (n_col - 1 - col) if self.col_flip else col
        return out

    def to_lps(self, row: float | np.ndarray, col: float | np.ndarray) -> np.ndarray:
        """Patient coordinates ``(L, P, S)`` in mm of display pixel(s) ``(row, col)``.

        Returns:
            float array of shape ``broadcast(row, col).shape + (3,)``. Without geometry the
            values are the affine's (spacing-scaled) index coordinates.
        """
        zyx = self.voxel_index(row, col)
        xyz1 = np.concatenate([zyx[..., ::-1], np.ones(zyx.shape[:-1] + (1,))], axis=-1)
        return (xyz1 @ np.asarray(self.affine, float).T)[..., :3]

    def axis_coords(self) -> tuple[AxisCoords, AxisCoords, AxisCoords] | None:
        """LPS coordinates along the rows, along the columns and of the slice itself.

        Returns:
            ``(rows, cols, fixed)`` for a plane whose display axes are parallel to patient axes
            (``fixed.step`` is 0 and ``fixed.start`` the slice position); None for oblique
            acquisitions or volumes without geometry.
        """
        if not self.has_geometry:
            return None
        rot = np.asarray(self.affine, float)[:3, :3]
        scale = np.abs(rot).max(axis=0)
        if np.any(scale <= 0) or np.count_nonzero(np.abs(rot) > 1e-6 * scale) != 3:
            return None
        origin = self.to_lps(0, 0)
        along_rows = self.to_lps(1, 0) - origin
        along_cols = self.to_lps(0, 1) - origin
        k_row, k_col = int(np.argmax(np.abs(along_rows))), int(np.argmax(np.abs(along_cols)))
        k_fixed = 3 - k_row - k_col
        return (
            AxisCoords(LPS_NAMES[k_row], float(origin[k_row]), float(along_rows[k_row])),
            AxisCoords(LPS_NAMES[k_col], float(origin[k_col]), float(along_cols[k_col])),
            AxisCoords(LPS_NAMES[k_fixed], float(origin[k_fixed]), 0.0),
        )


def _axis_codes(volume: Volume) -> dict[int, str] | None:
    """Array axis -> orientation code (``orientation`` names x, y, z = axes 2, 1, 0), or None."""
    o = volume.orientation.upper()
    if len(o) != 3 or any(c not in _OPPOSITE for c in o) or len({_PAIR[c] for c in o}) != 3:
        return None
    return {2: o[0], 1: o[1], 0: o[2]}


def has_geometry(volume: Volume) -> bool:
    """True when the volume's orientation names three patient axes (not ``"unknown"``)."""
    return _axis_codes(volume) is not None


def available_planes(volume: Volume) -> dict[Plane, str | None]:
    """Each plane with None when it can be shown, else the reason it cannot (for the user).

    Axial is always available. Coronal and sagittal need more than one slice and patient
    geometry.
    """
    reason: str | None = None
    if not volume.is_3d:
        reason = "single-slice image: only the acquired plane can be shown"
    elif not has_geometry(volume):
        reason = "no patient geometry in this study: reformatting to other planes is disabled"
    return {Plane.AXIAL: None, Plane.CORONAL: reason, Plane.SAGITTAL: reason}


def num_slices(volume: Volume, plane: Plane | str) -> int:
    """Number of slices along the plane's fixed axis."""
    return volume.shape[_LAYOUT[Plane(plane)][0]]


def _orient(axis: int, wanted: str, codes: dict[int, str] | None) -> tuple[bool, str, str]:
    """(flip, label at display index 0, label at the far end) for one display axis."""
    if codes is None:
        return False, "", ""
    code = codes[axis]
    flip = code == _OPPOSITE[wanted]
    return (True, code, _OPPOSITE[code]) if flip else (False, _OPPOSITE[code], code)


def extract_plane(volume: Volume, plane: Plane | str, index: int) -> PlaneSlice:
    """The slice ``index`` of ``plane``, oriented for display.

    Args:
        volume: the study.
        plane: axial, coronal or sagittal.
        index: slice index along the plane's fixed array axis, ``0 <= index < num_slices``.

    Returns:
        A :class:`PlaneSlice` (its image is a view of ``volume.array``).

    Raises:
        ValueError: plane not available for this volume (see :func:`available_planes`).
        IndexError: index out of range.
    """
    plane = Plane(plane)
    reason = available_planes(volume)[plane]
    if reason:
        raise ValueError(f"{plane.value} plane not available: {reason}")
    fixed, row_axis, row_want, col_axis, col_want = _LAYOUT[plane]
    n = volume.shape[fixed]
    if not 0 <= index < n:
        raise IndexError(f"{plane.value} slice index {index} outside 0..{n - 1}")
    codes = _axis_codes(volume)
    row_flip, top, bottom = _orient(row_axis, row_want, codes)
    col_flip, left, right = _orient(col_axis, col_want, codes)
    sel: list[int | slice] = [slice(None)] * volume.array.ndim
    sel[fixed] = int(index)
    image = volume.array[tuple(sel)]
    image = image[::-1 if row_flip else 1, ::-1 if col_flip else 1]
    return PlaneSlice(
        image=image,
        plane=plane,
        index=int(index),
        row_mm=float(volume.spacing[row_axis]),
        col_mm=float(volume.spacing[col_axis]),
        labels=EdgeLabels(top=top, bottom=bottom, left=left, right=right),
        fixed_axis=fixed,
        row_axis=row_axis,
        col_axis=col_axis,
        row_flip=row_flip,
        col_flip=col_flip,
        volume_shape=volume.shape,
        affine=np.asarray(volume.affine, float),
        has_geometry=codes is not None,
    )
