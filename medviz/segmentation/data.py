"""One entry point for the two segmentation folder layouts (training, export, evaluation).

* ``"lgg"``: ``pairs.csv`` + ``images/`` + ``masks/`` (:mod:`medviz.datasets.lgg`, 3-channel PNG slices).
* ``"nifti"``: ``images/`` + ``labels/`` or ``imagesTr/`` + ``labelsTr/`` (:mod:`medviz.segmentation.nifti_pairs`).

Every case comes back as ``(image (Z, Y, X, C), mask (Z, Y, X) uint8 {0, 1})`` whatever the layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviz.config import data_path
from medviz.datasets import lgg
from medviz.datasets.lgg import read_splits
from medviz.segmentation import nifti_pairs
from medviz.types import Volume, affine_from_spacing


def layout(root: Path) -> str:
    """``"lgg"`` or ``"nifti"`` (raises :class:`medviz.datasets.lgg.DataLayoutError` otherwise)."""
    return nifti_pairs.detect_layout(Path(root))


def cases(root: Path, split: str | None = None) -> list[str]:
    """Case ids of ``split`` as the training task sees them (NIfTI folders without ``splits.json``
    use the deterministic hash split, which has no test cases)."""
    return (lgg if layout(root) == "lgg" else nifti_pairs).cases(Path(root), split)


def evaluation_cases(root: Path, split: str) -> tuple[list[str], str]:
    """Cases scored by ``python -m medviz.evaluate --split SPLIT`` and how they were chosen.

    With ``splits.json``: that split. Without it, every case of the folder for ``test`` (the
    evaluation contract: a folder without splits is evaluated whole); ``train``/``val`` of a NIfTI
    folder then follow the training task's hash split so a run's validation report matches training.

    Returns:
        ``(case ids, split description)``.
    """
    root = Path(root)
    if read_splits(root) is not None:
        return cases(root, split), split
    if split == "test" or layout(root) == "lgg":
        return cases(root, None), "all cases (no splits.json)"
    return cases(root, split), f"{split} (hash split, no splits.json)"


def load_case(root: Path, case: str, label_value: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One case: image ``(Z, Y, X, C)`` (uint8 RGB for LGG, float32 raw intensities for NIfTI) and
    mask ``(Z, Y, X)`` uint8 in {0, 1} (NIfTI: ``label > 0``, or ``label == label_value``)."""
    root = Path(root)
    if layout(root) == "lgg":
        return lgg.load_case(root, case)
    return nifti_pairs.load_case(root, case, label_value)


DATASET_DIR = "lgg_flair_mri_seg"


def default_data_dir() -> Path:
    return data_path(DATASET_DIR)


def lgg_test_patient(case_index: int = 0) -> Volume:
    """Test-split patient ``case_index`` of the shared LGG folder as an RGB MR Volume ``(Z, 256, 256, 3)``
    (channels T1, FLAIR, T1c; no spacing known, so 1 mm is assumed and flagged)."""
    root = default_data_dir()
    case = lgg.cases(root, "test")[case_index]
    image, _ = lgg.load_case(root, case)
    return Volume(array=image, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)),
                  modality="MR", units="RGB", orientation="unknown", spacing_known=False,
                  name=f"LGG test patient {case_index + 1} (T1 / FLAIR / T1c)")
