"""Reader for folders laid out like the LGG FLAIR-abnormality data set (Buda et al. 2019).

Layout::

    <root>/images/<name>.png   RGB uint8, channels (pre-contrast T1, FLAIR, post-contrast T1)
    <root>/masks/<name>.png    grayscale uint8, values {0, 255} (0 / >0 is what counts)
    <root>/pairs.csv           at least: case_id, slice, image, mask (paths relative to <root>)
    <root>/splits.json         optional: {"train": [case_id, ...], "val": [...], "test": [...]}

Without ``splits.json`` every case belongs to every split (so ``--split test`` evaluates all cases).
A case's slices are stacked in the order of the integer ``slice`` column (file names are not
zero-padded, so never sort by name).

Intensity policy (shared by training and inference, see :func:`medviz.imaging.intensity.normalise_stack`): each channel of a
whole stack is scaled by its 99th percentile above the minimum and clipped to ``[0, 1.5]``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.types import LoadError, MedvizError

REQUIRED_COLUMNS = ("case_id", "slice", "image", "mask")
CHANNELS = ("T1 pre-contrast", "FLAIR", "T1 post-contrast")


class DataLayoutError(MedvizError):
    """The folder is not laid out like the LGG folder (missing files, columns or cases)."""


@dataclass(frozen=True)
class SlicePair:
    case_id: str
    slice: int
    image: Path
    mask: Path


def read_pairs(root: Path) -> list[SlicePair]:
    """All rows of ``<root>/pairs.csv`` sorted by (case_id, integer slice).

    Raises:
        DataLayoutError: missing ``pairs.csv`` or required columns, or a non-integer slice.
    """
    root = Path(root)
    path = root / "pairs.csv"
    if not path.exists():
        raise DataLayoutError(f"{root} has no pairs.csv (expected images/, masks/ and pairs.csv)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataLayoutError(f"{path} lacks column(s) {', '.join(missing)}; has {reader.fieldnames}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                s = int(r["slice"])
            except ValueError as e:
                raise DataLayoutError(f"{path} line {i}: slice {r['slice']!r} is not an integer") from e
            rows.append(SlicePair(r["case_id"], s, root / r["image"], root / r["mask"]))
    if not rows:
        raise DataLayoutError(f"{path} has no rows")
    return sorted(rows, key=lambda p: (p.case_id, p.slice))


def read_splits(root: Path) -> dict[str, list[str]] | None:
    """``splits.json`` as {split: [case_id, ...]}, or None when the folder has none."""
    path = Path(root) / "splits.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataLayoutError(f"{path} is not valid JSON: {e}") from e
    return {k: list(v) for k, v in data.items() if isinstance(v, list)}


def cases(root: Path, split: str | None = None) -> list[str]:
    """Sorted case ids of ``split`` (every case when ``split`` is None or there is no splits.json).

    Raises:
        DataLayoutError: unknown split name, or a split naming cases absent from pairs.csv.
    """
    all_cases = sorted({p.case_id for p in read_pairs(root)})
    splits = read_splits(root)
    if split is None or splits is None:
        return all_cases
    if split not in splits:
        raise DataLayoutError(f"split {split!r} not in {Path(root) / 'splits.json'} (has {', '.join(splits)})")
    absent = sorted(set(splits[split]) - set(all_cases))
    if absent:
        raise DataLayoutError(f"split {split!r} names {len(absent)} case(s) not in pairs.csv, e.g. {absent[0]}")
    return sorted(splits[split])


def _read_png(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except (OSError, UnidentifiedImageError) as e:
        raise LoadError(path.name, f"cannot read image: {e}") from e


def load_case(root: Path, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """One case as stacks sorted by slice.

    Returns:
        ``(image, mask)``: image ``(Z, H, W, 3)`` uint8, mask ``(Z, H, W)`` uint8 in {0, 1}.
    """
    pairs = [p for p in read_pairs(root) if p.case_id == case_id]
    if not pairs:
        raise DataLayoutError(f"case {case_id!r} not in {Path(root) / 'pairs.csv'}")
    image = np.stack([_read_png(p.image, "RGB") for p in pairs])
    mask = np.stack([(_read_png(p.mask, "L") > 0).astype(np.uint8) for p in pairs])
    if image.shape[:3] != mask.shape:
        raise DataLayoutError(f"case {case_id}: image stack {image.shape} and mask stack {mask.shape} differ")
    return image, mask


