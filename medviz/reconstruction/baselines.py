"""Classical baselines: compressed-sensing TV reconstruction (sigpy), non-local means and BM3D denoising."""

from __future__ import annotations

import numpy as np

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
