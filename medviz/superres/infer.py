"""Running the super-resolution arms on slices: bicubic (arm A) and a registered generator (B or C).

A generator may be shared by every browser session (``st.cache_resource``); each forward pass runs under
:func:`medviz.models.runtime.using` (its lock, eval mode, inference mode).

Slices are ``(H, W)`` float32 in ``[0, 1]`` (:func:`medviz.superres.data.scale_to_max`); a low-resolution
slice is ``(H / scale, W / scale)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medviz.models.runtime import model_device, using
from medviz.superres.degrade import SCALE, SuperResError, bicubic, bicubic_tensor, degrade

#: Names of the arms, as the evaluation contract and the page use them.
BICUBIC, PIXEL_LOSS, GAN = "bicubic", "pixel_loss", "gan"


def super_resolve(generator: Any, low_res: np.ndarray, scale: int = SCALE, residual: bool = True,
                  batch_size: int = 8) -> np.ndarray:
    """A generator's output for low-resolution slices.

    Args:
        generator: ``(B, 1, H, W) -> (B, 1, H, W)`` network reading the bicubic image (residual when ``residual``).
        low_res: ``(h, w)`` or ``(N, h, w)`` float32 in ``[0, 1]``.

    Returns:
        ``(H, W)`` or ``(N, H, W)`` float32 in ``[0, 1]``, ``H = h * scale``.
    """
    import torch

    lr = np.asarray(low_res, dtype=np.float32)
    single = lr.ndim == 2
    if single:
        lr = lr[None]
    if lr.ndim != 3:
        raise SuperResError(f"expected (h, w) or (N, h, w) low-resolution slices, not {lr.shape}")
    outs = []
    with using(generator) as g:
        device = model_device(g)
        for i in range(0, len(lr), batch_size):
            up = bicubic_tensor(torch.from_numpy(np.ascontiguousarray(lr[i:i + batch_size]))[:, None].to(device), scale)
            y = g(up)
            outs.append((up + y if residual else y).clamp(0, 1)[:, 0].float().cpu().numpy())
    out = np.concatenate(outs)
    return out[0] if single else out


def bicubic_batch(low_res: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Arm A of ``(N, h, w)`` low-resolution slices: ``(N, H, W)``."""
    return np.stack([bicubic(x, scale) for x in np.asarray(low_res, np.float32)])


def degrade_batch(real: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """``(N, H, W)`` real slices -> ``(N, H / scale, W / scale)`` low-resolution inputs."""
    return np.stack([degrade(x, scale) for x in np.asarray(real, np.float32)])


@dataclass(frozen=True)
class ArmOutputs:
    """Every arm's output for the same low-resolution slice(s).

    Attributes:
        low_res: the input, ``(h, w)`` (or ``(N, h, w)``).
        outputs: arm name (:data:`BICUBIC`, :data:`PIXEL_LOSS`, :data:`GAN` or a model name) -> ``(H, W)``
            (or ``(N, H, W)``) float32 in ``[0, 1]``, all synthetic.
        real: the real slice the input was made from, when known (else None).
    """

    low_res: np.ndarray
    outputs: dict[str, np.ndarray]
    real: np.ndarray | None = None


def run_arms(generators: dict[str, tuple[Any, Any]], low_res: np.ndarray, real: np.ndarray | None = None,
             scale: int = SCALE) -> ArmOutputs:
    """Bicubic and every generator on the same input.

    Args:
        generators: arm name -> ``(generator, its SuperResSpec)``.
        low_res: ``(h, w)`` or ``(N, h, w)``.
        real: the real slice(s), when known.
    """
    lr = np.asarray(low_res, np.float32)
    outputs = {BICUBIC: bicubic(lr, scale) if lr.ndim == 2 else bicubic_batch(lr, scale)}
    for name, (g, spec) in generators.items():
        if spec.scale != scale:
            raise SuperResError(f"{name} upsamples {spec.scale}x, not {scale}x")
        outputs[name] = super_resolve(g, lr, spec.scale, spec.residual)
    return ArmOutputs(low_res=lr, outputs=outputs, real=real)
