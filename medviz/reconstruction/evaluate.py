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

import argparse
import sys
import time
from typing import Any, Callable

import numpy as np

from medviz.config import select_device
from medviz.models.weights import load_model
from medviz.reconstruction.baselines import bm3d_denoise, cs_tv, nlm
from medviz.reconstruction.card import store_result
from medviz.reconstruction.data import load_flair_slices
from medviz.reconstruction.infer import denoise, reconstruct
from medviz.reconstruction.kspace import add_rician_noise, make_mask
from medviz.reconstruction.metrics import image_metrics, is_brain_slice

METRICS = ("psnr", "ssim", "nmse")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acceleration", type=float, default=4, help="recon: undersampling factor (4 or 8)")
    parser.add_argument("--mask", choices=["random", "equispaced"], default="random", help="recon: mask type")
    parser.add_argument("--center-fraction", type=float, default=None, help="recon: fully sampled centre fraction")
    parser.add_argument("--noise", type=float, default=0.05, help="denoise: Rician sigma (fraction of slice max)")
    parser.add_argument("--baseline-every", type=int, default=4,
                        help="run the slow baseline (CS-TV / BM3D) on every k-th scored slice")
    parser.add_argument("--max-slices", type=int, default=0, help="score at most N evenly spaced slices (0: all)")
    parser.add_argument("--update-card", action="store_true",
                        help="store the result beside the weights and rewrite the model card")


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


def evaluate(entry: Any, args: argparse.Namespace) -> dict[str, Any]:
    mode = entry.get("mode", "recon")
    data = load_flair_slices(args.data, args.split)
    idx = [i for i, x in enumerate(data.images) if is_brain_slice(x)]
    if args.max_slices and len(idx) > args.max_slices:
        idx = [idx[int(j)] for j in np.linspace(0, len(idx) - 1, args.max_slices).round()]
    device = select_device(args.device)
    args.cascades = int(entry.get("cascades", 1))
    model, _ = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    slow = "cs_tv" if mode == "recon" else "bm3d"
    rows: dict[str, list] = {"model": [], "zero_filled" if mode == "recon" else "noisy": [], "nlm": [], slow: []}
    rows = {k: v for k, v in rows.items() if not (mode == "recon" and k == "nlm")}
    groups: dict[str, list] = {k: [] for k in rows}
    subset = set(idx[:: max(args.baseline_every, 1)])
    for i in idx:
        ref = data.images[i]
        res = _score_recon(model, ref, i, args, device, i in subset) if mode == "recon" else \
            _score_denoise(model, ref, i, args, device, i in subset)
        for k, r in res.items():
            rows[k].append((i, r))
            groups[k].append(data.case_ids[i])
    result: dict[str, Any] = {"model": entry.name, "task": entry.task, "mode": mode, "split": args.split,
                              "scored_slices": "brain slices (>= 10 % of pixels above 0.1 of the slice max)"}
    result.update({"acceleration": args.acceleration, "mask": args.mask, "center_fraction": args.center_fraction}
                  if mode == "recon" else {"noise_sigma": args.noise, "noise": "rician"})
    result.update(summarise([r for _, r in rows["model"]], groups["model"]))
    result["baselines"] = {k: summarise([r for _, r in rows[k]], groups[k]) for k in rows if k != "model"}
    sub = {k: [(r, g) for (i, r), g in zip(rows[k], groups[k]) if i in subset] for k in rows}
    result["paired_subset"] = {k: summarise([r for r, _ in v], [g for _, g in v]) for k, v in sub.items()}
    if args.update_card:
        store_result(entry, result, "python -m medviz.evaluate " + " ".join(sys.argv[1:]))
    return result


def _score_recon(model: Any, ref: np.ndarray, i: int, args: argparse.Namespace, device: str,
                 slow: bool) -> dict[str, dict[str, float]]:
    mask = make_mask(ref.shape[-1], args.mask, args.acceleration, args.center_fraction, seed=20_000 + i)
    t = time.perf_counter()
    out = reconstruct(model, ref, mask, device=device, cascades=args.cascades)
    res = {"model": {**image_metrics(ref, out["reconstruction"]), "seconds": time.perf_counter() - t},
           "zero_filled": image_metrics(ref, out["zero_filled"])}
    if slow:
        res["cs_tv"] = _timed(lambda: cs_tv(out["kspace_us"], mask), ref)
    return res


def _score_denoise(model: Any, ref: np.ndarray, i: int, args: argparse.Namespace, device: str,
                   slow: bool) -> dict[str, dict[str, float]]:
    noisy = add_rician_noise(ref, args.noise, seed=30_000 + i)
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
