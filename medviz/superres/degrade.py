"""The one degradation of the super-resolution task and the bicubic upsampling every arm starts from.

The low-resolution slice is made from the real one by **area averaging**: each ``scale x scale`` block of
pixels becomes its mean (``torch.nn.functional.avg_pool2d``; a sensor that integrates over larger pixels,
with no noise and no k-space truncation). Training, validation, evaluation and the page all use these
functions, so the input a model sees is made identically everywhere.

Bicubic upsampling is ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` clipped to
``[0, 1]``: with ``align_corners=False`` the centre of low-resolution pixel ``i`` maps onto the centre of the
block it averaged, so the bicubic image is not shifted against the real one; its weights sum to one, so a
constant image stays constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.types import MedvizError

#: The upsampling factor of the shipped models.
SCALE = 4


class SuperResError(MedvizError):
    """A slice the super-resolution task cannot use (wrong shape, size not a multiple of the scale...)."""


def _check(shape: tuple[int, ...], scale: int) -> None:
    if scale < 2:
        raise SuperResError(f"the scale must be at least 2, not {scale}")
    h, w = shape[-2:]
    if h % scale or w % scale:
        raise SuperResError(f"a {h}x{w} slice cannot be reduced {scale}x: its height and width must be "
                            f"multiples of {scale}")


def degrade_tensor(hr: Any, scale: int = SCALE) -> Any:
    """``(B, C, H, W)`` tensor -> ``(B, C, H / scale, W / scale)``: the mean of each ``scale x scale`` block."""
    import torch.nn.functional as F

    _check(tuple(hr.shape), scale)
    return F.avg_pool2d(hr, kernel_size=scale, stride=scale)


def bicubic_tensor(lr: Any, scale: int = SCALE) -> Any:
    """``(B, C, h, w)`` tensor -> ``(B, C, h * scale, w * scale)`` bicubic upsampling, clipped to ``[0, 1]``."""
    import torch.nn.functional as F

    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)


def _as_batch(x: np.ndarray) -> Any:
    import torch

    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise SuperResError(f"expected one 2D slice (H, W), not an array of shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a))[None, None]


def degrade(hr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """The low-resolution ``(H / scale, W / scale)`` float32 version of a ``(H, W)`` slice (block means).

    Raises:
        SuperResError: not 2D, or a size that is not a multiple of ``scale``.
    """
    return degrade_tensor(_as_batch(hr), scale)[0, 0].numpy()


def bicubic(lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """The bicubic ``(h * scale, w * scale)`` float32 upsampling of a ``(h, w)`` slice in ``[0, 1]``."""
    return bicubic_tensor(_as_batch(lr), scale)[0, 0].numpy()
