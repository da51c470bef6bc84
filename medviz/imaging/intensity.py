"""Intensity normalisation of image stacks shared by every task that reads LGG-style MR (segmentation,
sequence models): each channel of a whole stack scaled by its 99th percentile above the minimum."""

from __future__ import annotations

import numpy as np


def stack_scales(image: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """The ``(C, 2)`` float64 ``(minimum, scale)`` of each channel of a ``(Z, H, W, C)`` stack that
    :func:`normalise_stack` applies: the minimum over the stack, and the ``percentile`` of the voxels above it
    (0 for a constant channel)."""
    x = np.asarray(image, dtype=np.float32)
    out = np.zeros((x.shape[-1], 2))
    for c in range(x.shape[-1]):
        lo = float(x[..., c].min())
        fg = x[..., c][x[..., c] > lo] - lo
        out[c] = lo, float(np.percentile(fg, percentile)) if fg.size else 0.0
    return out


def apply_scale(channel: np.ndarray, lo: float, hi: float, clip: float = 1.5) -> np.ndarray:
    """One channel (any shape) as :func:`normalise_stack` scales it: ``(x - lo) / hi`` clipped to ``[0, clip]``;
    all zeros when ``hi`` is (nearly) 0."""
    x = np.asarray(channel, dtype=np.float32)
    return np.clip((x - lo) / hi, 0.0, clip).astype(np.float32) if hi > 1e-6 else np.zeros_like(x)


def normalise_stack(image: np.ndarray, percentile: float = 99.0, clip: float = 1.5) -> np.ndarray:
    """Channel-first float32 input for the model, robust to outliers and scanner scaling.

    Per channel, over the whole stack: subtract the minimum, divide by the ``percentile`` of the
    voxels above that minimum (the head, not the air), clip to ``[0, clip]`` (:func:`stack_scales`).

    Args:
        image: ``(Z, H, W, C)`` any numeric dtype.

    Returns:
        ``(Z, C, H, W)`` float32 in ``[0, clip]`` (a constant channel becomes 0).
    """
    x = np.moveaxis(np.asarray(image, dtype=np.float32), -1, 1)
    out = np.empty_like(x)
    for c, (lo, hi) in enumerate(stack_scales(image, percentile)):
        out[:, c] = apply_scale(x[:, c], lo, hi, clip)
    return out
