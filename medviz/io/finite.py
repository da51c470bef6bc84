"""The one rule for non-finite voxel values, shared by every reader: NaN and ±Inf are replaced by the
minimum finite value of the image (0 when there is none), and the Volume says how many and how."""

from __future__ import annotations

import numpy as np


def replace_non_finite(values: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(values with NaN/Inf replaced, warning or None)``; ``values`` (float) is not modified.

    Example:
        >>> replace_non_finite(np.array([1.0, np.nan, -np.inf, 3.0], np.float32))[1]
        '2 NaN/Inf voxel(s) replaced by 1 (the minimum finite value)'
    """
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, None
    n_bad = int(bad.sum())
    fill = float(values[~bad].min()) if (~bad).any() else 0.0
    return (np.where(bad, values.dtype.type(fill), values),
            f"{n_bad:,} NaN/Inf voxel(s) replaced by {fill:g} (the minimum finite value)")
