"""Measurements on binary/label masks: Dice, per-label area (mm²) and volume (mL).

Masks follow the Volume contract: ``(Z, Y, X)`` integer labels (0 = background); spacing is
``(sz, sy, sx)`` in mm.
"""

from __future__ import annotations

import numpy as np

#: The column of the slice number in measurement rows and their CSV: numbered from 1, and it says so.
SLICE_COLUMN = "slice (1-based)"


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|P∩T| / (|P| + |T|)`` of two binary masks of the same shape (any ndim).

    Both empty gives 1.0 (agrees with ``monai.metrics.DiceMetric(ignore_empty=False)``).

    Raises:
        ValueError: shapes differ.
    """
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"Dice needs masks of one shape, not {p.shape} and {t.shape}")
    denom = int(p.sum()) + int(t.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, t).sum()) / denom


def label_measurements(mask: np.ndarray, spacing: tuple[float, float, float], slice_index: int | None = None,
                       names: dict[int, str] | None = None) -> list[dict[str, float | int | str]]:
    """Per-label voxel count, volume (mL) and, for ``slice_index``, the area on that axial slice (mm²).

    Args:
        mask: ``(Z, Y, X)`` integer labels, 0 = background.
        spacing: ``(sz, sy, sx)`` in mm.
        slice_index: axial slice for the area column (None: the slice with the largest area).
        names: label -> display name.

    Returns:
        One row per non-zero label: ``label, name, voxels, volume_ml, slice (1-based), area_mm2,
        max_area_mm2`` (volume = voxels x sz x sy x sx / 1000). The slice is numbered from 1, as a person
        reads it on the slider, in tables and in the CSV (``slice_index`` itself is 0-based).
    """
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be (Z, Y, X), not {m.shape}")
    sz, sy, sx = (float(s) for s in spacing)
    rows = []
    for lab in (int(v) for v in np.unique(m) if v != 0):
        per_slice = (m == lab).reshape(m.shape[0], -1).sum(axis=1)
        k = int(np.argmax(per_slice)) if slice_index is None else int(slice_index)
        rows.append({
            "label": lab,
            "name": (names or {}).get(lab, f"label {lab}"),
            "voxels": int(per_slice.sum()),
            "volume_ml": float(per_slice.sum() * sz * sy * sx / 1000.0),
            SLICE_COLUMN: k + 1,
            "area_mm2": float(per_slice[k] * sy * sx),
            "max_area_mm2": float(per_slice.max() * sy * sx),
        })
    return rows


def confusion_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-voxel agreement: 0 = both background, 1 = true positive, 2 = false positive, 3 = false negative."""
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and reference {t.shape} differ in shape")
    out = np.zeros(p.shape, dtype=np.uint8)
    out[p & t] = 1
    out[p & ~t] = 2
    out[~p & t] = 3
    return out
