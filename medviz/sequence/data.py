"""Slice stacks with slice labels from folders in the LGG layout (``images/``, ``masks/``, ``pairs.csv``,
optional ``splits.json``; see :mod:`medviz.datasets.lgg`).

A slice's label is 1 when its reference mask is not empty (it shows FLAIR abnormality), else 0. Without
``splits.json`` every case belongs to every split, so ``--data DIR`` evaluates every case in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.config import data_path
from medviz.datasets.lgg import cases, load_case, read_splits
from medviz.imaging.intensity import normalise_stack

DATASET_DIR = "lgg_flair_mri_seg"


@dataclass(frozen=True)
class SliceStack:
    """One patient's axial stack.

    Attributes:
        case: case id (a public data-set id, never a patient name).
        x: ``(Z, 3, H, W)`` float32, channels (T1, FLAIR, T1c), each scaled over the stack
            (:func:`medviz.imaging.intensity.normalise_stack`).
        labels: ``(Z,)`` uint8, 1 = the slice's mask is not empty.
    """

    case: str
    x: np.ndarray
    labels: np.ndarray


def default_data_dir() -> Path:
    """The shared LGG folder under ``MEDVIZ_DATA_DIR``."""
    return data_path(DATASET_DIR)


def split_cases(root: Path, split: str) -> tuple[list[str], str]:
    """``(case ids, split name reported)``: the ``split`` list of ``splits.json``, or every case (``"all"``)
    when the folder has none."""
    if read_splits(root) is None:
        return cases(root), "all"
    return cases(root, split), split


def load_stack(root: Path, case: str) -> SliceStack:
    """One case as a :class:`SliceStack` (slices in the order of the ``slice`` column)."""
    image, mask = load_case(root, case)
    labels = (mask.reshape(mask.shape[0], -1) > 0).any(axis=1).astype(np.uint8)
    return SliceStack(case=case, x=normalise_stack(image), labels=labels)
