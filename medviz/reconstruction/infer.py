"""Learned reconstruction and denoising of one slice, and :func:`compare`, which degrades a slice,
restores it with the model and the classical baselines and scores everything."""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.models.runtime import using
from medviz.reconstruction.baselines import bm3d_denoise, cs_tv, nlm
from medviz.reconstruction.kspace import (
    ReconError,
    add_rician_noise,
    data_consistency,
    magnitude,
    make_mask,
    scale_slice,
    simulate_undersampling,
)
from medviz.reconstruction.metrics import image_metrics


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
    """Simulate undersampling of ``image`` with ``mask`` and reconstruct it with ``model``.

    The model may be shared by every session: the forward pass runs inside
    :func:`medviz.models.runtime.using` (its lock, eval mode, ``torch.inference_mode``; modes restored).

    Returns:
        :func:`simulate_undersampling`'s dict plus ``"reconstruction"`` ``(H, W)`` float32.
    """
    import torch

    sim = simulate_undersampling(image, mask)
    with using(model) as net:
        z = torch.as_tensor(sim["zero_filled_complex"])[None, None].to(device)
        k = torch.as_tensor(sim["kspace_us"])[None, None].to(device)
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None, None, :, None].to(device)
        sim["reconstruction"] = recon_forward(net, z, k, m, cascades)[0, 0].cpu().numpy()
    return sim


def denoise(model: Any, noisy: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Learned denoising ``y + model(y)`` of one ``(H, W)`` slice, inside :func:`medviz.models.runtime.using`
    (the shared model's lock, eval mode, ``torch.inference_mode``; modes restored)."""
    import torch

    with using(model) as net:
        y = torch.as_tensor(np.asarray(noisy, dtype=np.float32))[None, None].to(device)
        return (y + net(y))[0, 0].cpu().numpy()


def compare(model: Any, mode: str, image: np.ndarray, *, kind: str = "random", acceleration: float = 4,
            center_fraction: float | None = None, sigma: float = 0.05, seed: int = 0, slow_baseline: bool = True,
            device: str = "cpu", cascades: int = 1) -> dict[str, Any]:
    """Degrade one slice, restore it with ``model`` and the baselines, and score everything.

    Safe with a model shared by every session: the model runs through :func:`reconstruct` /
    :func:`denoise` (each inside :func:`medviz.models.runtime.using`); the classical baselines run
    outside the model's lock, so other sessions are not kept waiting for them.

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


def input_note(spec: Any, name: str, modality: str, shape: tuple[int, ...]) -> str | None:
    """A warning when a slice of ``modality`` and ``shape`` ``(H, W)`` is unlike the model's training data
    (FLAIR MR magnitude slices of ``spec.input.size``), else None."""
    size = tuple(spec.input.size)
    problems = []
    if modality not in ("MR", "OT"):
        problems.append(f"modality {modality}")
    if tuple(shape) != size:
        problems.append(f"size {shape[0]}x{shape[1]}")
    if not problems:
        return None
    return (f"{name} was trained on {size[0]}x{size[1]} FLAIR MR slices; this image ({', '.join(problems)}) "
            "is out of distribution, so expect it to do worse than on the test patients (compare with the baselines).")

