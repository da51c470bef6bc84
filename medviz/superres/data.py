"""FLAIR slices of the LGG folder for super-resolution, with their tumour masks and brain masks.

Intensity: each FLAIR slice (channel 1 of the LGG PNGs) is divided by its own maximum, so the real image
lies in ``[0, 1]`` and PSNR uses ``data_range = 1``; the maximum is kept (:attr:`SrSlices.maxima`) to put a
model's output back into the stack's units for the segmenter.

Evaluation rule (fixed before any model was trained): only **brain slices** count, slices with at least 10 %
of pixels above 0.1 (:func:`is_brain_slice`), and inside them only the **brain mask**, the pixels of the real
slice above 0.1, closed and hole-filled (:func:`brain_mask`), so the air around the head does not inflate
PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.config import data_path
from medviz.datasets.lgg import cases, load_case
from medviz.reconstruction.metrics import is_brain_slice as reconstruction_brain_slice

FLAIR_CHANNEL = 1
DATASET_FOLDER = "lgg_flair_mri_seg"
#: Brain-slice and brain-mask threshold on the slice scaled to [0, 1].
BRAIN_THRESHOLD = 0.1
#: A brain slice has at least this fraction of pixels above :data:`BRAIN_THRESHOLD`.
BRAIN_MIN_FRACTION = 0.1


def default_root() -> Path:
    """The LGG folder under the configured data directory."""
    return data_path(DATASET_FOLDER)


def scale_to_max(flair: np.ndarray) -> tuple[np.ndarray, float]:
    """``(slice / its maximum as float32 in [0, 1], the maximum)``; an all-zero slice stays zero (maximum 0)."""
    x = np.clip(np.nan_to_num(np.asarray(flair, dtype=np.float32)), 0.0, None)
    peak = float(x.max()) if x.size else 0.0
    return (x / peak if peak > 0 else x), peak


def is_brain_slice(image: np.ndarray) -> bool:
    """Whether a ``(H, W)`` slice in ``[0, 1]`` is a brain slice: the reconstruction task's rule
    (:func:`medviz.reconstruction.metrics.is_brain_slice`) with this module's thresholds."""
    return reconstruction_brain_slice(image, BRAIN_THRESHOLD, BRAIN_MIN_FRACTION)


def brain_mask(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the pixels of the real slice above :data:`BRAIN_THRESHOLD`, closed (3x3, twice) and
    hole-filled (the dark ventricles of FLAIR belong to the brain)."""
    from scipy import ndimage

    m = np.asarray(image) > BRAIN_THRESHOLD
    m = ndimage.binary_closing(m, structure=np.ones((3, 3), bool), iterations=2, border_value=0)
    return ndimage.binary_fill_holes(m)


@dataclass(frozen=True)
class SrSlices:
    """Real FLAIR slices of some cases.

    Attributes:
        images: ``(N, H, W)`` float32 in ``[0, 1]``, each slice divided by its maximum.
        maxima: ``(N,)`` float32, each slice's maximum in the PNG's units (0..255).
        tumour: ``(N, H, W)`` uint8 in {0, 1}, the expert FLAIR-abnormality masks.
        case_ids: ``N`` case identifiers (the data set's de-identified TCGA case names).
        slices: ``N`` 0-based slice indices within their case's stack.
    """

    images: np.ndarray
    maxima: np.ndarray
    tumour: np.ndarray
    case_ids: tuple[str, ...]
    slices: tuple[int, ...]

    def brain(self) -> SrSlices:
        """Only the brain slices (:func:`is_brain_slice`)."""
        keep = [i for i, x in enumerate(self.images) if is_brain_slice(x)]
        return SrSlices(self.images[keep], self.maxima[keep], self.tumour[keep],
                        tuple(self.case_ids[i] for i in keep), tuple(self.slices[i] for i in keep))


def load_sr_slices(root: Path | None = None, split: str | None = "train",
                   case_ids: list[str] | None = None) -> SrSlices:
    """Every slice of ``split``'s cases (or of ``case_ids``), in case order and slice order.

    Args:
        root: the LGG folder (default: :func:`default_root`).
        split: ``train``, ``val``, ``test`` or None (every case); ignored when ``case_ids`` is given.

    Raises:
        medviz.datasets.lgg.DataLayoutError: unusable folder or split.
    """
    root = Path(root) if root is not None else default_root()
    images, maxima, masks, ids, nums = [], [], [], [], []
    for case in case_ids if case_ids is not None else cases(root, split):
        stack, mask = load_case(root, case)
        for k in range(stack.shape[0]):
            x, peak = scale_to_max(stack[k, ..., FLAIR_CHANNEL])
            images.append(x)
            maxima.append(peak)
            masks.append(mask[k])
            ids.append(case)
            nums.append(k)
    return SrSlices(np.stack(images).astype(np.float32), np.asarray(maxima, np.float32),
                    np.stack(masks).astype(np.uint8), tuple(ids), tuple(nums))
