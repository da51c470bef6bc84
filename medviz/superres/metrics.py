"""Image-quality metrics of the super-resolution task, inside a mask (the brain, or the tumour).

Every metric compares an estimate with the real slice, both ``(H, W)`` in ``[0, 1]``:

* :func:`psnr`: peak signal-to-noise ratio in dB over the mask's pixels (data range 1); with a mask of every
  pixel it is scikit-image's ``peak_signal_noise_ratio``.
* :func:`ssim`: the mean of scikit-image's SSIM map (7 x 7 window, data range 1) over the mask, without the
  3-pixel border scikit-image leaves out of its mean (so with a mask of every pixel it is scikit-image's SSIM).
* :func:`hfen`: high-frequency error norm (Ravishankar & Bresler 2011): ``||LoG(x) - LoG(y)|| / ||LoG(y)||``
  with a Laplacian-of-Gaussian of sigma 1.5 pixels, norms over the mask (lower is better).
* :func:`frechet_distance`: MONAI ``FIDMetric`` on two sets of feature vectors (lower is better).
"""

from __future__ import annotations

import numpy as np

#: Laplacian-of-Gaussian sigma of HFEN, in pixels (15 x 15 kernel in the original paper).
HFEN_SIGMA = 1.5
#: SSIM window (pixels), scikit-image's default.
SSIM_WINDOW = 7


def _mask(reference: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return np.ones(np.shape(reference), bool) if mask is None else np.asarray(mask, bool)


def psnr(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB over ``mask`` (all pixels when None); ``inf`` for a perfect estimate, NaN for an empty mask."""
    m = _mask(reference, mask)
    if not m.any():
        return float("nan")
    err = np.asarray(reference, np.float64)[m] - np.asarray(estimate, np.float64)[m]
    mse = float(np.mean(err ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM (scikit-image map, 7 x 7, data range 1) over ``mask``; NaN for an empty mask."""
    from skimage.metrics import structural_similarity

    m = _mask(reference, mask).copy()
    pad = (SSIM_WINDOW - 1) // 2
    m[:pad], m[-pad:], m[:, :pad], m[:, -pad:] = False, False, False, False
    if not m.any():
        return float("nan")
    _, smap = structural_similarity(np.asarray(reference, np.float64), np.asarray(estimate, np.float64),
                                    win_size=SSIM_WINDOW, data_range=1.0, full=True)
    return float(smap[m].mean())


def hfen(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None,
         sigma: float = HFEN_SIGMA) -> float:
    """High-frequency error norm over ``mask`` (see the module docstring); NaN when the reference has no
    high-frequency content there."""
    from scipy.ndimage import gaussian_laplace

    m = _mask(reference, mask)
    lr = gaussian_laplace(np.asarray(reference, np.float64), sigma)
    le = gaussian_laplace(np.asarray(estimate, np.float64), sigma)
    den = float(np.linalg.norm(lr[m]))
    return float(np.linalg.norm((le - lr)[m]) / den) if den > 0 else float("nan")


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """MONAI ``FIDMetric`` between two ``(N, F)`` feature sets (N >= 2 each)."""
    import torch
    from monai.metrics import FIDMetric

    a = torch.as_tensor(np.asarray(features_a, np.float64))
    b = torch.as_tensor(np.asarray(features_b, np.float64))
    return float(FIDMetric()(a, b))
