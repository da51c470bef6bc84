"""Intensity normalisation of image stacks shared by every task that reads LGG-style MR (segmentation,
sequence models): each channel of a whole stack scaled by its 99th percentile above the minimum."""

from __future__ import annotations

import numpy as np


def normalise_stack(image: np.ndarray, percentile: float = 99.0, clip: float = 1.5) -> np.ndarray:
    """Channel-first float32 input for the model, robust to outliers and scanner scaling.

    Per channel, over the whole stack: subtract the minimum, divide by the ``percentile`` of the
    voxels above that minimum (the head, not the air), clip to ``[0, clip]``.

    Args:
        image: ``(Z, H, W, C)`` any numeric dtype.

    Returns:
        ``(Z, C, H, W)`` float32 in ``[0, clip]`` (a constant channel becomes 0).
    """
    x = np.moveaxis(np.asarray(image, dtype=np.float32), -1, 1)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        ch = x[:, c] - x[:, c].min()
        fg = ch[ch > 0]
        hi = float(np.percentile(fg, percentile)) if fg.size else 0.0
        out[:, c] = np.clip(ch / hi, 0.0, clip) if hi > 1e-6 else 0.0
    return out
