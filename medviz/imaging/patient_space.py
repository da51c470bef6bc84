"""From patient coordinates (LPS mm) back to the voxels of a :class:`~medviz.types.Volume`."""

from __future__ import annotations

import numpy as np

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
