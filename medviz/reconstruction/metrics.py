"""Image-quality metrics of restored slices (PSNR in dB, SSIM, NMSE; images in [0, 1], data range 1) and
the rule that leaves mostly-air slices out of every evaluation."""

from __future__ import annotations

import numpy as np


def is_brain_slice(image: np.ndarray, threshold: float = 0.1, min_fraction: float = 0.1) -> bool:
    """The evaluation rule: at least ``min_fraction`` of pixels above ``threshold`` (image in [0, 1]).

    Slices at the top and bottom of a stack that are mostly air are left out of every evaluation
    (model and baselines alike), because their metrics measure noise, not anatomy.
    """
    return float(np.mean(np.asarray(image) > threshold)) >= min_fraction


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
