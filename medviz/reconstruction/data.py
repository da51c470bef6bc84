"""FLAIR slices of the LGG folder for reconstruction and denoising (built on :mod:`medviz.datasets.lgg`).

Intensity policy (shared by training, evaluation and the page, see :func:`medviz.reconstruction.kspace.scale_slice`):
each 2D FLAIR magnitude slice is divided by its own maximum, so the reference image lies in ``[0, 1]``
and PSNR uses ``data_range = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.config import data_path
from medviz.datasets.lgg import cases, load_case
from medviz.reconstruction.kspace import scale_slice

FLAIR_CHANNEL = 1
DATASET_FOLDER = "lgg_flair_mri_seg"


@dataclass(frozen=True)
class FlairSlices:
    """Reference magnitude slices of one split.

    Attributes:
        images: ``(N, H, W)`` float32, each slice scaled to ``[0, 1]`` by its maximum.
        case_ids: ``N`` case identifiers (the data set's de-identified TCGA case names).
        slices: ``N`` integer slice numbers within their case.
    """

    images: np.ndarray
    case_ids: tuple[str, ...]
    slices: tuple[int, ...]


def default_root() -> Path:
    """The LGG folder under the configured data directory."""
    return data_path(DATASET_FOLDER)


def load_flair_slices(root: Path | None = None, split: str | None = "train") -> FlairSlices:
    """Read the FLAIR channel of every slice of ``split``'s cases.

    Args:
        root: the LGG folder (default: :func:`default_root`).
        split: ``train``, ``val``, ``test`` or None for all cases.

    Returns:
        :class:`FlairSlices` in case order, slices sorted by their integer number.

    Raises:
        medviz.datasets.lgg.DataLayoutError: unusable folder or split.
    """
    root = Path(root) if root is not None else default_root()
    images, ids, nums = [], [], []
    for case in cases(root, split):
        stack, _ = load_case(root, case)
        for k in range(stack.shape[0]):
            images.append(scale_slice(stack[k, ..., FLAIR_CHANNEL]))
            ids.append(case)
            nums.append(k + 1)
    return FlairSlices(np.stack(images).astype(np.float32), tuple(ids), tuple(nums))
