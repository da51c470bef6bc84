"""From patient coordinates (LPS mm) back to the voxels of a :class:`~medviz.types.Volume`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviz.imaging.measure import RoiStats, to_scalar
from medviz.types import Volume


def voxel_at(volume: Volume, lps: tuple[float, float, float] | list[float]) -> tuple[int, int, int] | None:
    """The index ``(x, y, z)`` (column, row, slice; 0-based) of the voxel whose centre is nearest to the LPS point
    ``lps`` (mm), or None when the point lies outside the volume."""
    xyz = np.linalg.inv(np.asarray(volume.affine, dtype=np.float64)) @ [*map(float, lps), 1.0]
    index = np.rint(xyz[:3]).astype(int)
    z, y, x = volume.shape
    if not (0 <= index[0] < x and 0 <= index[1] < y and 0 <= index[2] < z):
        return None
    return int(index[0]), int(index[1]), int(index[2])


def value_at(volume: Volume, index: tuple[int, int, int]) -> float | tuple[int, int, int]:
    """The voxel's value in the volume's units (an ``(R, G, B)`` triple for colour volumes)."""
    x, y, z = index
    v = volume.array[z, y, x]
    return tuple(int(c) for c in v) if volume.is_rgb else float(v)


def distance_lps(start: list[float], end: list[float]) -> float:
    """The straight-line distance in mm between two LPS points."""
    return float(np.linalg.norm(np.asarray(end, dtype=np.float64) - np.asarray(start, dtype=np.float64)))


@dataclass(frozen=True)
class PlaneBox:
    """A rectangle drawn on one plane of a volume, in array indices.

    Attributes:
        fixed_axis: the array axis (0 = z, 1 = y, 2 = x) the rectangle's plane is perpendicular to.
        index: the slice along ``fixed_axis`` (0-based).
        spans: inclusive ``(first, last)`` index ranges along the two other axes, in axis order.
    """

    fixed_axis: int
    index: int
    spans: tuple[tuple[int, int], tuple[int, int]]

    def selection(self) -> tuple[slice | int, ...]:
        """The array index of the rectangle (``volume.array[box.selection()]``, 2D)."""
        spans = iter(self.spans)
        return tuple(self.index if a == self.fixed_axis else slice(s[0], s[1] + 1)
                     for a, s in ((a, None if a == self.fixed_axis else next(spans)) for a in range(3)))


def plane_box(volume: Volume, start: list[float], end: list[float]) -> PlaneBox | None:
    """The rectangle with corners ``start`` and ``end`` (LPS mm, in one displayed plane) in array indices,
    clipped to the volume; None when it lies outside. The plane is the array axis along which the two corners
    differ least."""
    inv = np.linalg.inv(np.asarray(volume.affine, dtype=np.float64))
    xyz = np.array([(inv @ [*map(float, p), 1.0])[:3] for p in (start, end)])
    zyx = xyz[:, ::-1]  # array axis order
    fixed = int(np.argmin(np.abs(zyx[1] - zyx[0])))
    shape = volume.shape
    index = int(np.rint(zyx[:, fixed].mean()))
    if not 0 <= index < shape[fixed]:
        return None
    spans = []
    for axis in (a for a in range(3) if a != fixed):
        lo, hi = sorted(int(np.rint(v)) for v in zyx[:, axis])
        lo, hi = max(lo, 0), min(hi, shape[axis] - 1)
        if lo > hi:
            return None
        spans.append((lo, hi))
    return PlaneBox(fixed, index, (spans[0], spans[1]))


def box_stats(volume: Volume, box: PlaneBox, ellipse: bool = False) -> RoiStats:
    """Statistics of the rectangle (or of the ellipse inscribed in it) in the volume's units; area in mm²."""
    values = to_scalar(volume.array[box.selection()]).astype(np.float64)
    spacing = [s for a, s in enumerate(volume.spacing) if a != box.fixed_axis]  # (sz, sy, sx) minus the fixed axis
    if ellipse:
        rows, cols = values.shape
        r, c = np.ogrid[:rows, :cols]
        inside = ((r - (rows - 1) / 2) / (rows / 2)) ** 2 + ((c - (cols - 1) / 2) / (cols / 2)) ** 2 <= 1.0
    else:
        inside = np.ones(values.shape, dtype=bool)
    n = int(inside.sum())
    finite = values[inside & np.isfinite(values)]
    area = n * float(spacing[0]) * float(spacing[1])
    if finite.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, area, n, 0)
    return RoiStats(float(finite.mean()), float(finite.std()), float(finite.min()), float(finite.max()), area, n,
                    int(finite.size))
