"""CPU time per 256x256 slice: learned reconstruction vs zero-filled vs CS-TV, denoiser vs NLM vs BM3D.

Usage::

    python bench/reconstruct.py [--recon lgg_flair_recon] [--denoise lgg_flair_denoise] [--n 7] [--threads 1]
    python bench/reconstruct.py --tune-cs   # CS-TV lambda / iterations grid on validation slices
    python bench/reconstruct.py --fp16-check NAME RUN_DIR/best.safetensors   # shipped fp16 vs fp32 weights

Slices: the middle brain slices of the LGG test patients when the data folder is present, else the
Shepp-Logan phantom resized to 256x256. Each method runs once to warm up, then ``--n`` timed runs;
the median is reported (seconds per slice, wall clock, ``torch.set_num_threads(--threads)``).
The machine is shared, so expect about +-30 % between runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medviz.models.nets import build_network  # noqa: E402
from medviz.models.registry import RegistryError  # noqa: E402
from medviz.models.weights import load_model, load_state_dict  # noqa: E402
from medviz.reconstruction import baselines, infer, kspace, metrics  # noqa: E402
from medviz.reconstruction.data import load_flair_slices  # noqa: E402
from medviz.reconstruction.kspace import scale_slice  # noqa: E402
from medviz.reconstruction.metrics import is_brain_slice  # noqa: E402


def _slices(n: int) -> list[np.ndarray]:
    try:
        d = load_flair_slices(split="test")
        keep = [x for x in d.images if is_brain_slice(x)]
        step = max(len(keep) // n, 1)
        return keep[::step][:n]
    except (FileNotFoundError, OSError, ValueError):
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize

        return [scale_slice(resize(shepp_logan_phantom(), (256, 256)))] * n


def _median_time(fn, inputs: list) -> float:
    fn(inputs[0])  # warm-up
    times = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def tune_cs(n: int = 12) -> None:
    """Print mean PSNR/SSIM of CS-TV on ``n`` validation brain slices (4x and 8x random masks) per setting."""
    d = load_flair_slices(split="val")
    keep = [x for x in d.images if metrics.is_brain_slice(x)]
    xs = keep[:: max(len(keep) // n, 1)][:n]
    print("| acc | lambda | iterations | PSNR | SSIM | zero-filled PSNR | s/slice |\n|---|---|---|---|---|---|---|")
    for acc in (4, 8):
        for lam in (0.003, 0.01, 0.03, 0.1):
            for it in (100, 200):
                ps, ss, zs, ts = [], [], [], []
                for i, x in enumerate(xs):
                    m = kspace.make_mask(256, "random", acc, seed=i)
                    sim = kspace.simulate_undersampling(x, m)
                    t = time.perf_counter()
                    c = baselines.cs_tv(sim["kspace_us"], m, lamda=lam, max_iter=it)
                    ts.append(time.perf_counter() - t)
                    ps.append(metrics.psnr(x, c))
                    ss.append(metrics.ssim(x, c))
                    zs.append(metrics.psnr(x, sim["zero_filled"]))
                print(f"| {acc} | {lam:g} | {it} | {np.mean(ps):.2f} | {np.mean(ss):.4f} | {np.mean(zs):.2f} | "
                      f"{np.median(ts):.2f} |", flush=True)


def fp16_check(name: str, fp32_path: str, n: int) -> None:
    """PSNR of the shipped (fp16-stored) model vs the fp32 training weights on ``n`` test slices."""
    model16, entry = load_model(name)
    spec = entry.spec
    model32 = build_network(spec.arch.to_dict())
    model32.load_state_dict(load_state_dict(Path(fp32_path)), strict=True)
    model32.eval()
    diffs = []
    for i, x in enumerate(_slices(n)):
        if spec.is_recon:
            m, c = kspace.make_mask(256, "random", 4, seed=i), spec.cascades
            outs = [infer.reconstruct(mm, x, m, cascades=c)["reconstruction"] for mm in (model16, model32)]
        else:
            y = kspace.add_rician_noise(x, 0.05, seed=i)
            outs = [infer.denoise(mm, y) for mm in (model16, model32)]
        diffs.append(metrics.psnr(x, outs[0]) - metrics.psnr(x, outs[1]))
    print(f"{name}: PSNR(fp16 weights) - PSNR(fp32 weights) over {len(diffs)} test slices: "
          f"mean {np.mean(diffs):+.4f} dB, max |diff| {np.max(np.abs(diffs)):.4f} dB")


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recon", default="lgg_flair_recon")
    p.add_argument("--denoise", default="lgg_flair_denoise")
    p.add_argument("--n", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--acceleration", type=float, default=4)
    p.add_argument("--sigma", type=float, default=0.05)
    p.add_argument("--tune-cs", action="store_true", help="grid of CS-TV settings on validation slices")
    p.add_argument("--fp16-check", nargs=2, metavar=("NAME", "FP32_SAFETENSORS"), default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.tune_cs:
        tune_cs()
        return 0
    if a.fp16_check:
        fp16_check(*a.fp16_check, n=a.n)
        return 0
    images = _slices(a.n)
    rows: list[tuple[str, str, float]] = []
    mask = kspace.make_mask(256, "random", a.acceleration, seed=0)
    sims = [kspace.simulate_undersampling(x, mask) for x in images]
    rows.append(("recon", "zero-filled (FFT, mask, IFFT)", _median_time(lambda x: kspace.simulate_undersampling(x, mask), images)))
    try:
        model, entry = load_model(a.recon)
        c = entry.spec.cascades
        rows.append(("recon", f"{a.recon} (ComplexUnet x{c} + DC, incl. simulation)",
                     _median_time(lambda x: infer.reconstruct(model, x, mask, cascades=c), images)))
    except RegistryError as e:
        rows.append(("recon", f"{a.recon}: {e}", float("nan")))
    rows.append(("recon", f"CS-TV (sigpy, {baselines.CS_MAX_ITER} it, lambda {baselines.CS_TV_LAMBDA:g})",
                 _median_time(lambda s: baselines.cs_tv(s["kspace_us"], mask), sims)))
    noisy = [kspace.add_rician_noise(x, a.sigma, seed=i) for i, x in enumerate(images)]
    try:
        dmodel, _ = load_model(a.denoise)
        rows.append(("denoise", f"{a.denoise} (BasicUNet)", _median_time(lambda y: infer.denoise(dmodel, y), noisy)))
    except RegistryError as e:
        rows.append(("denoise", f"{a.denoise}: {e}", float("nan")))
    rows.append(("denoise", "NLM (scikit-image, fast mode)", _median_time(baselines.nlm, noisy)))
    rows.append(("denoise", "BM3D (bm3d package)", _median_time(baselines.bm3d_denoise, noisy[: max(3, a.n // 2)])))
    print(f"CPU, torch threads = {a.threads}, {len(images)} slices of 256x256, acceleration {a.acceleration:g}x, "
          f"sigma {a.sigma:g}")
    print("| task | method | median s / slice |\n|---|---|---|")
    for task, name, t in rows:
        print(f"| {task} | {name} | {t:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
