"""Evaluate a reconstruction or denoising model against classical baselines on held-out patients.

``python -m medviz.evaluate --model lgg_flair_recon --json --acceleration 4 --mask random`` or
``python -m medviz.evaluate --model lgg_flair_denoise --json --noise 0.05``.

Protocol (same for model and baselines): FLAIR slices of the split's patients, each scaled to
[0, 1] by its maximum; only brain slices (:func:`medviz.reconstruction.metrics.is_brain_slice`) are scored; slice
``i`` gets mask seed ``20000 + i`` / noise seed ``30000 + i``. The slow classical baselines (CS-TV,
BM3D) run on every ``--baseline-every``-th scored slice; the model and the fast baselines are also
reported on that same subset (``*_subset``) so the comparison is paired. 95 % CIs come from a
patient-level bootstrap of the mean (1000 resamples of cases).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medviz.config import select_device
from medviz.models.weights import load_model
from medviz.options import EvalOptions, option
from medviz.reconstruction.baselines import bm3d_denoise, cs_tv, nlm
from medviz.reconstruction.card import store_result
from medviz.reconstruction.data import load_flair_slices
from medviz.reconstruction.infer import denoise, reconstruct
from medviz.reconstruction.kspace import add_rician_noise, make_mask
from medviz.reconstruction.metrics import image_metrics, is_brain_slice

METRICS = ("psnr", "ssim", "nmse")


@dataclass(frozen=True)
class ReconstructionEvalOptions(EvalOptions):
    """``python -m medviz.evaluate --model NAME`` options for a reconstruction or denoising model."""

    acceleration: float = option(4.0, label="Acceleration (recon)", min=1.0, help="recon: undersampling factor (4 or 8)")
    mask: str = option("random", label="Mask type (recon)", choices=["random", "equispaced"], help="recon: mask type")
    center_fraction: float | None = option(None, label="Centre fraction (recon; empty: default)", min=0.0, max=1.0,
                                           help="recon: fully sampled centre fraction")
    noise: float = option(0.05, label="Noise sigma (denoise)", min=0.0, max=1.0,
                          help="denoise: Rician sigma (fraction of slice max)")
    baseline_every: int = option(4, label="Slow baseline on every k-th slice", min=1,
                                 help="run the slow baseline (CS-TV / BM3D) on every k-th scored slice")
    max_slices: int = option(0, label="Max scored slices (0: all)", min=0,
                             help="score at most N evenly spaced slices (0: all)")
    update_card: bool = option(False, label="Update the model card",
                               help="store the result beside the weights and rewrite the model card")


OPTIONS = ReconstructionEvalOptions


def bootstrap_mean_ci(values: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> list[float]:
    """Percentile CI of the mean of ``values`` resampling whole ``groups`` (patients) with replacement."""
    values, groups = np.asarray(values, np.float64), np.asarray(groups)
    ids = np.unique(groups)
    if len(ids) < 2:
        return [float("nan"), float("nan")]
    per = [values[groups == g] for g in ids]
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        means.append(np.concatenate([per[j] for j in pick]).mean())
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return [float(v) for v in np.percentile(means, q)]


def summarise(rows: list[dict[str, float]], groups: list[str]) -> dict[str, Any]:
    """Mean and patient-bootstrap CI of each metric over slices."""
    out: dict[str, Any] = {"n": len(rows), "cases": len(set(groups))}
    for m in METRICS:
        v = np.array([r[m] for r in rows])
        out[m] = float(v.mean())
        out[f"{m}_ci"] = bootstrap_mean_ci(v, np.array(groups))
    times = [r["seconds"] for r in rows if "seconds" in r]
    if times:
        out["median_seconds"] = float(np.median(times))
    return out


def _timed(fn: Callable[[], np.ndarray], ref: np.ndarray) -> dict[str, float]:
    t = time.perf_counter()
    est = fn()
    return {**image_metrics(ref, est), "seconds": time.perf_counter() - t}


def evaluate(entry: Any, options: ReconstructionEvalOptions) -> dict[str, Any]:
    spec = entry.spec
    mode = spec.mode
    data = load_flair_slices(options.data, options.split)
    idx = [i for i, x in enumerate(data.images) if is_brain_slice(x)]
    if options.max_slices and len(idx) > options.max_slices:
        idx = [idx[int(j)] for j in np.linspace(0, len(idx) - 1, options.max_slices).round()]
    device = select_device(options.device)
    cascades = spec.cascades
    model, _ = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    slow = "cs_tv" if mode == "recon" else "bm3d"
    rows: dict[str, list] = {"model": [], "zero_filled" if mode == "recon" else "noisy": [], "nlm": [], slow: []}
    rows = {k: v for k, v in rows.items() if not (mode == "recon" and k == "nlm")}
    groups: dict[str, list] = {k: [] for k in rows}
    subset = set(idx[:: max(options.baseline_every, 1)])
    for i in idx:
        ref = data.images[i]
        res = _score_recon(model, ref, i, options, device, i in subset, cascades) if mode == "recon" else \
            _score_denoise(model, ref, i, options, device, i in subset)
        for k, r in res.items():
            rows[k].append((i, r))
            groups[k].append(data.case_ids[i])
    result: dict[str, Any] = {"model": entry.name, "task": entry.task, "mode": mode, "split": options.split,
                              "scored_slices": "brain slices (>= 10 % of pixels above 0.1 of the slice max)"}
    result.update({"acceleration": options.acceleration, "mask": options.mask, "center_fraction": options.center_fraction}
                  if mode == "recon" else {"noise_sigma": options.noise, "noise": "rician"})
    result.update(summarise([r for _, r in rows["model"]], groups["model"]))
    result["baselines"] = {k: summarise([r for _, r in rows[k]], groups[k]) for k in rows if k != "model"}
    sub = {k: [(r, g) for (i, r), g in zip(rows[k], groups[k]) if i in subset] for k in rows}
    result["paired_subset"] = {k: summarise([r for r, _ in v], [g for _, g in v]) for k, v in sub.items()}
    if options.update_card:
        store_result(entry, result, "python -m medviz.evaluate " + " ".join(sys.argv[1:]))
    return result


def _score_recon(model: Any, ref: np.ndarray, i: int, options: ReconstructionEvalOptions, device: str,
                 slow: bool, cascades: int = 1) -> dict[str, dict[str, float]]:
    mask = make_mask(ref.shape[-1], options.mask, options.acceleration, options.center_fraction, seed=20_000 + i)
    t = time.perf_counter()
    out = reconstruct(model, ref, mask, device=device, cascades=cascades)
    res = {"model": {**image_metrics(ref, out["reconstruction"]), "seconds": time.perf_counter() - t},
           "zero_filled": image_metrics(ref, out["zero_filled"])}
    if slow:
        res["cs_tv"] = _timed(lambda: cs_tv(out["kspace_us"], mask), ref)
    return res


def _score_denoise(model: Any, ref: np.ndarray, i: int, options: ReconstructionEvalOptions, device: str,
                   slow: bool) -> dict[str, dict[str, float]]:
    noisy = add_rician_noise(ref, options.noise, seed=30_000 + i)
    res = {"model": _timed(lambda: denoise(model, noisy, device=device), ref),
           "noisy": image_metrics(ref, noisy), "nlm": _timed(lambda: nlm(noisy), ref)}
    if slow:
        res["bm3d"] = _timed(lambda: bm3d_denoise(noisy), ref)
    return res


def _fmt(r: dict[str, Any]) -> str:
    ci = lambda m: f"[{r[m + '_ci'][0]:.3f}, {r[m + '_ci'][1]:.3f}]"  # noqa: E731
    return (f"{r['n']:>4} {r['psnr']:7.2f} dB {ci('psnr'):>18} {r['ssim']:7.4f} {ci('ssim'):>18} "
            f"{r['nmse']:8.5f}")


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table: method, n, PSNR (CI), SSIM (CI), NMSE; all slices then the paired subset."""
    setting = (f"{result['mask']} {result['acceleration']:g}x" if result["mode"] == "recon"
               else f"Rician sigma {result['noise_sigma']:g}")
    lines = [f"{result['model']} on {result['split']} ({setting}); {result['scored_slices']}",
             f"{'method':<14} {'n':>4} {'PSNR':>10} {'95% CI':>18} {'SSIM':>7} {'95% CI':>18} {'NMSE':>8}",
             f"{'model':<14} {_fmt(result)}"]
    lines += [f"{k:<14} {_fmt(v)}" for k, v in result["baselines"].items()]
    lines.append("paired subset (slow baseline slices):")
    lines += [f"{k:<14} {_fmt(v)}" for k, v in result["paired_subset"].items()]
    return "\n".join(lines)
