"""Simulated accelerated MRI and Rician noise, learned reconstruction/denoising, and image metrics.

Pure functions (NumPy / torch / MONAI), no Streamlit. Conventions:

* A reference image is a 2D magnitude slice ``(H, W)`` float32 scaled to ``[0, 1]`` by its maximum
  (:func:`scale_slice`); every metric uses ``data_range = 1``.
* Complex arrays follow MONAI's convention: a trailing axis of size 2 (real, imaginary), e.g. k-space
  ``(H, W, 2)``. The Fourier transform is MONAI's centred orthonormal FFT, so the zero-filled
  reconstruction of fully sampled k-space equals the input.
* Cartesian undersampling masks come from MONAI (``RandomKspaceMask`` / ``EquispacedKspaceMask``) and
  select phase-encoding columns (the last image axis, ``W``); the centre is fully sampled.
* Learned models are residual: reconstruction ``x = DC(z + f(z))`` with ``z`` the complex zero-filled
  image and ``DC`` the data-consistency step (measured k-space lines put back); denoising
  ``x = y + f(y)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.types import MedvizError

MASK_TYPES = ("random", "equispaced")
DEFAULT_CENTER_FRACTION = {4: 0.08, 8: 0.04}  # fastMRI convention


class ReconError(MedvizError):
    """Unusable input for reconstruction or denoising (wrong shape, bad mask parameters...)."""


def scale_slice(image: np.ndarray) -> np.ndarray:
    """A 2D slice as float32 in ``[0, 1]``: divided by its maximum (shifted to 0 first if negative).

    Raises:
        ReconError: when ``image`` is not 2D.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ReconError(f"expected a 2D slice (H, W), got shape {x.shape}")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if x.min() < 0:  # e.g. CT in HU: shift so the minimum is 0 (magnitude images are already >= 0)
        x = x - x.min()
    peak = float(x.max())
    return x / peak if peak > 0 else x


def _t(x: Any):
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()


def to_kspace(image: Any):
    """Centred orthonormal 2D FFT of a real image ``(..., H, W)`` -> k-space ``(..., H, W, 2)``."""
    import torch
    from monai.networks.blocks.fft_utils_t import fftn_centered_t

    x = _t(image)
    return fftn_centered_t(torch.stack([x, torch.zeros_like(x)], dim=-1), spatial_dims=2, is_complex=True)


def to_image(kspace: Any):
    """Inverse of :func:`to_kspace`: k-space ``(..., H, W, 2)`` -> complex image ``(..., H, W, 2)``."""
    from monai.networks.blocks.fft_utils_t import ifftn_centered_t

    return ifftn_centered_t(_t(kspace), spatial_dims=2, is_complex=True)


def magnitude(x: Any):
    """``|x|`` of a complex tensor ``(..., 2)`` (MONAI ``complex_abs_t``)."""
    from monai.apps.reconstruction.complex_utils import complex_abs_t

    return complex_abs_t(x)


def default_center_fraction(acceleration: float) -> float:
    """The fully sampled centre fraction used when none is given: the fastMRI convention (0.08 at 4x,
    0.04 at 8x), else ``0.32 / acceleration``; never more than the budget ``1 / acceleration``."""
    return min(DEFAULT_CENTER_FRACTION.get(int(acceleration), 0.32 / acceleration), 1.0 / acceleration)


def make_mask(width: int, kind: str = "random", acceleration: float = 4, center_fraction: float | None = None,
              seed: int = 0) -> np.ndarray:
    """A 1D Cartesian sampling mask over the ``width`` phase-encoding columns (MONAI k-space masks).

    Args:
        width: number of columns ``W``.
        kind: ``"random"`` or ``"equispaced"``.
        acceleration: undersampling factor (4 keeps about a quarter of the columns).
        center_fraction: fully sampled centre fraction (default 0.08 at 4x, 0.04 at 8x).
        seed: RNG seed of the mask (same seed, same mask).

    Returns:
        ``(W,)`` float32 in {0, 1}.

    Raises:
        ReconError: unknown kind, acceleration < 1, or a centre larger than the budget 1/acceleration.
    """
    import torch
    from monai.apps.reconstruction.transforms.array import (
        EquispacedKspaceMask,
        RandomKspaceMask,
    )

    if kind not in MASK_TYPES:
        raise ReconError(f"mask kind must be one of {MASK_TYPES}, not {kind!r}")
    if not acceleration >= 1:
        raise ReconError(f"acceleration must be >= 1, not {acceleration}")
    cf = default_center_fraction(acceleration) if center_fraction is None else center_fraction
    if not 0 < cf <= 1 / acceleration:
        raise ReconError(f"centre fraction {cf} must lie in (0, 1/acceleration = {1 / acceleration:.3f}]")
    if acceleration == 1:
        return np.ones(width, dtype=np.float32)
    cls = RandomKspaceMask if kind == "random" else EquispacedKspaceMask
    masker = cls(center_fractions=[cf], accelerations=[acceleration], spatial_dims=2, is_complex=True)
    masker.set_random_state(seed=seed)
    masker(torch.zeros(1, 1, width, 2))
    return np.asarray(masker.mask, dtype=np.float32).reshape(width)


def undersample(kspace: Any, mask: Any):
    """Keep the sampled columns: ``kspace (..., H, W, 2) * mask (W,)`` (or a broadcastable mask)."""
    m = _t(mask)
    if m.ndim == 1:
        m = m[:, None]
    return _t(kspace) * m


def data_consistency(image: Any, kspace_us: Any, mask: Any):
    """Replace the sampled k-space lines of ``image`` (complex, ``(..., H, W, 2)``) by the measured ones.

    ``mask`` is ``(W,)`` or broadcastable to ``(..., 1, W, 1)``; differentiable (torch).
    """
    m = _t(mask)
    if m.ndim == 1:
        m = m[:, None]
    k = to_kspace_complex(image)
    return to_image(m * _t(kspace_us) + (1 - m) * k)


def to_kspace_complex(image: Any):
    """Centred orthonormal FFT of a complex image ``(..., H, W, 2)``."""
    from monai.networks.blocks.fft_utils_t import fftn_centered_t

    return fftn_centered_t(_t(image), spatial_dims=2, is_complex=True)


def simulate_undersampling(image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Single-coil Cartesian acquisition of a magnitude slice.

    Args:
        image: ``(H, W)`` reference in [0, 1].
        mask: ``(W,)`` sampling mask.

    Returns:
        ``{"kspace_us": (H, W, 2), "zero_filled_complex": (H, W, 2), "zero_filled": (H, W)}`` float32.
    """
    k_us = undersample(to_kspace(image), mask)
    zf = to_image(k_us)
    return {"kspace_us": k_us.numpy(), "zero_filled_complex": zf.numpy(), "zero_filled": magnitude(zf).numpy()}


def add_rician_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Rician noise of standard deviation ``sigma`` (a fraction of the image maximum, 1) per channel.

    Uses MONAI ``RandRicianNoise`` with a fixed ``sigma``: ``sqrt((x + n1)^2 + n2^2)``, ``n1, n2 ~ N(0, sigma^2)``.

    Returns:
        ``(H, W)`` float32.
    """
    from monai.transforms import RandRicianNoise

    t = RandRicianNoise(prob=1.0, std=float(sigma), sample_std=False)
    t.set_random_state(seed=seed)
    return np.asarray(t(np.asarray(image, dtype=np.float32)[None]), dtype=np.float32)[0]


# --- classical baselines -------------------------------------------------------------------------


