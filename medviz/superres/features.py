"""What the shipped segmenter (``lgg_unet``) makes of a super-resolved FLAIR: its encoder features (for the
in-house Fréchet distance) and its tumour masks (downstream Dice, false-positive components).

The segmenter reads three channels (T1 pre-contrast, FLAIR, T1 post-contrast) of a whole stack, each scaled
by :func:`medviz.imaging.intensity.normalise_stack`. An arm's FLAIR (a slice in ``[0, 1]``, see
:mod:`medviz.superres.data`) goes back into the stack's units by its slice maximum and replaces the real
FLAIR; T1 and T1c stay real. So every difference between arms comes from their FLAIR alone.

Features are the global means of the segmenter's 256 bottleneck channels
(:func:`medviz.sequence.encoder.slice_features`), taken under its lock with the hook removed afterwards. The
Fréchet distance on them is ours: it is not comparable with published FIDs (Inception features of natural
images).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.imaging.intensity import apply_scale, normalise_stack, stack_scales
from medviz.segmentation.infer import postprocess, predict_tta
from medviz.sequence.encoder import BOTTLENECK_CHANNELS, slice_features
from medviz.superres.data import FLAIR_CHANNEL


def with_flair(stack: np.ndarray, flair: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """``(Z, H, W, 3)`` float32: ``stack`` with its FLAIR replaced by ``flair * maxima`` (an arm's output
    ``(Z, H, W)`` in ``[0, 1]`` put back into the stack's units by each slice's maximum ``(Z,)``)."""
    out = np.asarray(stack, dtype=np.float32).copy()
    out[..., FLAIR_CHANNEL] = np.asarray(flair, np.float32) * np.asarray(maxima, np.float32)[:, None, None]
    return out


def segmenter_input(stack: np.ndarray, flair: np.ndarray | None = None, maxima: np.ndarray | None = None) -> np.ndarray:
    """The segmenter's ``(Z, 3, H, W)`` input of a real ``(Z, H, W, 3)`` stack, its FLAIR replaced when given."""
    return normalise_stack(stack if flair is None else with_flair(stack, flair, maxima))


def fixed_scale_input(real_x: np.ndarray, flair: np.ndarray, maxima: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Slices of a segmenter input ``(N, 3, H, W)`` (of the real stacks) with FLAIR replaced by ``flair * maxima``
    scaled with the real stack's FLAIR ``(lo, hi)`` (:func:`flair_scale`): a per-slice shortcut of
    :func:`segmenter_input` for validation during training (no re-scaling of the whole stack)."""
    x = np.asarray(real_x, np.float32).copy()
    x[:, FLAIR_CHANNEL] = apply_scale(np.asarray(flair, np.float32) * np.asarray(maxima, np.float32)[:, None, None],
                                      lo, hi)
    return x


def flair_scale(stack: np.ndarray) -> tuple[float, float]:
    """The ``(minimum, scale)`` :func:`medviz.imaging.intensity.normalise_stack` gives the FLAIR of a stack."""
    lo, hi = stack_scales(stack)[FLAIR_CHANNEL]
    return float(lo), float(hi)


def encoder_features(segmenter: Any, x: np.ndarray) -> np.ndarray:
    """``(N, 256)`` float32 bottleneck-mean features of segmenter inputs ``(N, 3, H, W)``."""
    return slice_features(segmenter, x, lr_flip=False)[:, :BOTTLENECK_CHANNELS]


def segment(segmenter: Any, spec: Any, x: np.ndarray) -> np.ndarray:
    """``(Z, H, W)`` uint8 tumour mask of a segmenter input ``(Z, 3, H, W)``, with the segmenter's own test-time
    augmentation, threshold and smallest component (its manifest entry ``spec``), as on the Segment page."""
    prob, _, _ = predict_tta(segmenter, x, spec.tta)
    return postprocess(prob, spec.threshold, spec.min_size)


def false_positive_components(mask: np.ndarray, truth: np.ndarray) -> int:
    """Connected tumour components (2D, 8-connected) the segmenter found on slices whose expert mask is empty:
    the hallucination proxy. ``mask`` and ``truth``: ``(Z, H, W)``."""
    from scipy import ndimage

    n = 0
    for m, t in zip(np.asarray(mask), np.asarray(truth)):
        if not t.any() and m.any():
            n += int(ndimage.label(m, structure=np.ones((3, 3), int))[1])
    return n
