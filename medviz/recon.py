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


def is_brain_slice(image: np.ndarray, threshold: float = 0.1, min_fraction: float = 0.1) -> bool:
    """The evaluation rule: at least ``min_fraction`` of pixels above ``threshold`` (image in [0, 1]).

    Slices at the top and bottom of a stack that are mostly air are left out of every evaluation
    (model and baselines alike), because their metrics measure noise, not anatomy.
    """
    return float(np.mean(np.asarray(image) > threshold)) >= min_fraction


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
    from monai.apps.reconstruction.transforms.array import EquispacedKspaceMask, RandomKspaceMask

    if kind not in MASK_TYPES:
        raise ReconError(f"mask kind must be one of {MASK_TYPES}, not {kind!r}")
    if not acceleration >= 1:
        raise ReconError(f"acceleration must be >= 1, not {acceleration}")
    cf = DEFAULT_CENTER_FRACTION.get(int(acceleration), 0.32 / acceleration) if center_fraction is None else center_fraction
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


def recon_forward(model: Any, zf_complex: Any, kspace_us: Any, mask: Any, cascades: int = 1):
    """Learned reconstruction of a batch: ``x <- DC(x + model(x))`` ``cascades`` times from ``x = z``, then ``|x|``.

    With ``cascades > 1`` the same network is unrolled with shared weights (MoDL-style).

    Args:
        model: a MONAI ``ComplexUnet`` taking ``(B, 1, H, W, 2)``.
        zf_complex: ``(B, 1, H, W, 2)`` zero-filled complex images.
        kspace_us: ``(B, 1, H, W, 2)`` measured k-space (zeros where not sampled).
        mask: ``(B, 1, 1, W, 1)`` sampling masks.

    Returns:
        ``(B, 1, H, W)`` magnitude tensor (differentiable).
    """
    x = zf_complex
    for _ in range(max(int(cascades), 1)):
        x = data_consistency(x + _safe_forward(model, x), kspace_us, mask)
    return magnitude(x)


def _safe_forward(model: Any, x: Any):
    """``model(x)``, except that all-zero samples (blank slice, background crop) give 0.

    ComplexUnet normalises by the per-sample standard deviation, so an all-zero input would give 0/0;
    such samples get a harmless ramp as input and their output is discarded.
    """
    import torch

    ok = x.flatten(1).std(dim=1) > 1e-7
    if bool(ok.all()):
        return model(x)
    ramp = torch.linspace(0, 1, x[0].numel(), device=x.device).view_as(x[0])
    sel = ok.view(-1, *([1] * (x.ndim - 1)))
    return torch.where(sel, model(torch.where(sel, x, ramp)), torch.zeros_like(x))


def reconstruct(model: Any, image: np.ndarray, mask: np.ndarray, device: str = "cpu",
                cascades: int = 1) -> dict[str, np.ndarray]:
    """Simulate undersampling of ``image`` with ``mask`` and reconstruct it with ``model`` (eval mode).

    Returns:
        :func:`simulate_undersampling`'s dict plus ``"reconstruction"`` ``(H, W)`` float32.
    """
    import torch

    sim = simulate_undersampling(image, mask)
    with torch.inference_mode():
        z = torch.as_tensor(sim["zero_filled_complex"])[None, None].to(device)
        k = torch.as_tensor(sim["kspace_us"])[None, None].to(device)
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None, None, :, None].to(device)
        sim["reconstruction"] = recon_forward(model, z, k, m, cascades)[0, 0].cpu().numpy()
    return sim


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


def denoise(model: Any, noisy: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Learned denoising ``y + model(y)`` of one ``(H, W)`` slice (model in eval mode)."""
    import torch

    with torch.inference_mode():
        y = torch.as_tensor(np.asarray(noisy, dtype=np.float32))[None, None].to(device)
        return (y + model(y))[0, 0].cpu().numpy()


def psnr(reference: np.ndarray, estimate: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (scikit-image)."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(np.asarray(reference, np.float64), np.asarray(estimate, np.float64),
                                         data_range=data_range))


def ssim(reference: np.ndarray, estimate: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM (Wang et al. 2004): Gaussian window sigma 1.5, population covariance, as MONAI ``SSIMMetric``."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(reference, np.float64), np.asarray(estimate, np.float64),
                                       data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def nmse(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Normalised MSE ``||x_hat - x||^2 / ||x||^2`` (NaN for an all-zero reference)."""
    ref = np.asarray(reference, np.float64)
    den = float(np.sum(ref**2))
    return float(np.sum((np.asarray(estimate, np.float64) - ref) ** 2) / den) if den > 0 else float("nan")


def image_metrics(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """``{"psnr", "ssim", "nmse"}`` of one slice pair (both in [0, 1] units)."""
    return {"psnr": psnr(reference, estimate), "ssim": ssim(reference, estimate), "nmse": nmse(reference, estimate)}


# --- classical baselines -------------------------------------------------------------------------

CS_TV_LAMBDA = 0.03  # chosen on 12 validation slices: python bench/reconstruct.py --tune-cs
CS_MAX_ITER = 100


def cs_tv(kspace_us: np.ndarray, mask: np.ndarray, lamda: float = CS_TV_LAMBDA, max_iter: int = CS_MAX_ITER) -> np.ndarray:
    """Compressed-sensing total-variation reconstruction (sigpy ``TotalVariationRecon``, single coil).

    Args:
        kspace_us: ``(H, W, 2)`` measured k-space (MONAI's centred orthonormal FFT = sigpy's ``sp.fft``).
        mask: ``(W,)`` sampling mask (the data-fidelity weights).

    Returns:
        ``(H, W)`` float32 magnitude.
    """
    import sigpy.mri.app as app

    k = np.asarray(kspace_us, np.float32)
    y = (k[..., 0] + 1j * k[..., 1]).astype(np.complex64)[None]
    w = np.broadcast_to(np.asarray(mask, np.float32)[None, :], y.shape[1:])[None].copy()
    mps = np.ones_like(y)
    x = app.TotalVariationRecon(y, mps, lamda, weights=w, max_iter=max_iter, show_pbar=False).run()
    return np.abs(np.asarray(x)).astype(np.float32)


def nlm(noisy: np.ndarray) -> np.ndarray:
    """Non-local means (scikit-image, fast mode, ``h = 0.8 sigma``, sigma from ``estimate_sigma``)."""
    from skimage.restoration import denoise_nl_means, estimate_sigma

    y = np.asarray(noisy, np.float64)
    s = float(estimate_sigma(y))
    return denoise_nl_means(y, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True).astype(np.float32)


def bm3d_denoise(noisy: np.ndarray) -> np.ndarray:
    """BM3D (``bm3d`` package) with the noise level from scikit-image ``estimate_sigma`` (blind, as NLM)."""
    import bm3d
    from skimage.restoration import estimate_sigma

    y = np.asarray(noisy, np.float64)
    return np.asarray(bm3d.bm3d(y, sigma_psd=max(float(estimate_sigma(y)), 1e-4)), dtype=np.float32)


def compare(model: Any, mode: str, image: np.ndarray, *, kind: str = "random", acceleration: float = 4,
            center_fraction: float | None = None, sigma: float = 0.05, seed: int = 0, slow_baseline: bool = True,
            device: str = "cpu", cascades: int = 1) -> dict[str, Any]:
    """Degrade one slice, restore it with ``model`` and the baselines, and score everything.

    Args:
        model: a loaded reconstruction (``mode="recon"``) or denoising (``mode="denoise"``) network.
        image: ``(H, W)`` slice in any units (scaled with :func:`scale_slice`).
        kind, acceleration, center_fraction: the k-space mask (recon).
        sigma: Rician noise level as a fraction of the slice maximum (denoise).
        seed: mask / noise seed.
        slow_baseline: also run CS-TV (recon) or BM3D (denoise), about 1-3 s per 256x256 slice.
        cascades: unrolled iterations of the reconstruction model (its manifest ``cascades``).

    Returns:
        ``{"reference", "degraded", "output", "difference"}`` ``(H, W)`` arrays, ``"mask"`` ``(W,)`` or None,
        ``"baselines"`` {name: (H, W)}, ``"metrics"`` {method: {psnr, ssim, nmse}}, ``"seconds"`` {method: s}.

    Raises:
        ReconError: bad mode or mask parameters, or an image smaller than 16 pixels.
    """
    import time

    ref = scale_slice(image)
    if min(ref.shape) < 16:
        raise ReconError(f"slice {ref.shape} is too small; need at least 16x16 pixels")
    seconds: dict[str, float] = {}
    if mode == "recon":
        mask = make_mask(ref.shape[1], kind, acceleration, center_fraction, seed=seed)
        t = time.perf_counter()
        out = reconstruct(model, ref, mask, device=device, cascades=cascades)
        seconds["model"] = time.perf_counter() - t
        degraded, output, base = out["zero_filled"], out["reconstruction"], {"zero_filled": out["zero_filled"]}
        if slow_baseline:
            t = time.perf_counter()
            base["cs_tv"] = cs_tv(out["kspace_us"], mask)
            seconds["cs_tv"] = time.perf_counter() - t
    elif mode == "denoise":
        mask = None
        degraded = add_rician_noise(ref, sigma, seed=seed)
        t = time.perf_counter()
        output = denoise(model, degraded, device=device)
        seconds["model"] = time.perf_counter() - t
        base = {"noisy": degraded}
        for name, fn in (("nlm", nlm), ("bm3d", bm3d_denoise))[: 2 if slow_baseline else 1]:
            t = time.perf_counter()
            base[name] = fn(degraded)
            seconds[name] = time.perf_counter() - t
    else:
        raise ReconError(f"mode must be 'recon' or 'denoise', not {mode!r}")
    metrics = {"model": image_metrics(ref, output), **{k: image_metrics(ref, v) for k, v in base.items()}}
    return {"reference": ref, "degraded": degraded, "output": output, "difference": np.abs(output - ref),
            "mask": mask, "baselines": base, "metrics": metrics, "seconds": seconds}
