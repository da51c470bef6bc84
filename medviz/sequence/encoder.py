"""Slice features from the shipped segmentation model (``lgg_unet``, a 2D MONAI UNet).

Per slice, one embedding of ``FEATURES`` numbers: the global mean and the global maximum of the UNet's
bottleneck activations (256 channels at 1/16 resolution: 2 x 256 numbers), the maximum foreground
probability of the segmenter's output and the fraction of pixels above 0.5 (2 numbers). The output
probability map is the mean of the slice and its left-right mirror when the segmenter's manifest chose
that test-time augmentation, as on the Segment page.

The segmenter is a shared, cached model: it runs under :func:`medviz.models.runtime.using` (lock, eval
mode, inference mode) and the forward hook that reads the bottleneck is removed before the lock is
released. Note: the shipped segmenter was trained on the 34 original LGG training patients and selected on
5 validation patients, so its features are more confident on those patients than on new ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.models.runtime import model_device, using

#: Bottleneck channels of the shipped segmenter, and so the number of features per slice it gives.
BOTTLENECK_CHANNELS = 256
FEATURES = 2 * BOTTLENECK_CHANNELS + 2
#: Index of the segmenter's maximum probability in the feature vector (the ``segmenter_smoothed`` input).
SEG_MAX_PROB = -2


def bottleneck_name(model: Any) -> str:
    """The name of a MONAI ``UNet``'s bottom block: the deepest submodule named ``...submodule``
    (``model.1.submodule.1.submodule.1.submodule.1.submodule`` for the shipped 5-level UNet).

    Raises:
        ValueError: the network is not a MONAI UNet.
    """
    names = [n for n, _ in model.named_modules() if n.endswith("submodule")]
    if not names:
        raise ValueError("the slice encoder must be a MONAI UNet (no 'submodule' blocks found)")
    return max(names, key=lambda n: n.count("."))


def total_stride(model: Any) -> int:
    """The factor a MONAI ``UNet`` downsamples by (the product of its ``strides``; 16 for the shipped one):
    its input sides must be multiples of it."""
    strides = getattr(model, "strides", None) or (2, 2, 2, 2)
    return int(np.prod([max(s) if isinstance(s, (tuple, list)) else int(s) for s in strides]))


def pad_to_multiple(x: np.ndarray, k: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad the last two axes of ``x`` ``(..., H, W)`` to multiples of ``k``, split evenly (as MONAI's
    ``DivisiblePad``); returns the padded array and the ``(top, left)`` offset of the original."""
    h, w = x.shape[-2:]
    ph, pw = -h % k, -w % k
    if not ph and not pw:
        return x, (0, 0)
    widths = [(0, 0)] * (x.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(x, widths), (ph // 2, pw // 2)


def slice_features(segmenter: Any, x: np.ndarray, lr_flip: bool = True, batch_size: int = 16) -> np.ndarray:
    """Features of every slice of a stack.

    Args:
        segmenter: the shipped 2D UNet ``(B, 3, H, W) -> (B, 1, H, W)`` logits.
        x: ``(Z, 3, H, W)`` float32 normalised stack, any ``H, W`` (zero-padded to multiples of the UNet's
            :func:`total_stride`; the probability features read the unpadded area).
        lr_flip: average the output probability with the left-right mirror's (the segmenter's TTA).
        batch_size: slices per forward pass.

    Returns:
        ``(Z, 2 * C + 2)`` float32, ``C`` the bottleneck channels (``FEATURES`` for the shipped segmenter).
    """
    import torch

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected a (Z, C, H, W) stack, not {x.shape}")
    h, w = x.shape[-2:]
    x, (top, left) = pad_to_multiple(x, total_stride(segmenter))  # slices of any size; the padding is background
    out: list[np.ndarray] = []
    captured: list[Any] = []
    with using(segmenter) as model:
        device = model_device(model)
        hook = model.get_submodule(bottleneck_name(model)).register_forward_hook(lambda _m, _i, o: captured.append(o))
        try:
            for i in range(0, x.shape[0], batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
                captured.clear()
                prob = torch.sigmoid(model(xb).float())[:, 0]
                b = captured[0].float()
                if lr_flip:
                    prob = 0.5 * (prob + torch.sigmoid(model(xb.flip(-1)).float())[:, 0].flip(-1))
                prob = prob[:, top:top + h, left:left + w]
                feats = torch.cat([b.mean(dim=(2, 3)), b.amax(dim=(2, 3)),
                                   prob.amax(dim=(1, 2))[:, None], (prob > 0.5).float().mean(dim=(1, 2))[:, None]], 1)
                out.append(feats.cpu().numpy())
        finally:
            hook.remove()
    return np.concatenate(out).astype(np.float32, copy=False)
