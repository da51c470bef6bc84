"""CPU time per 256 x 256 slice of the super-resolution arms: bicubic, the pixel-loss generator, the GAN.

Usage::

    python bench/superres.py [--pixel lgg_flair_sr4_pixel] [--gan lgg_flair_sr4_gan] [--weights-dir DIR]
                             [--repeats 7] [--threads 1 2] [--json]

The input is one low-resolution slice (``medviz.superres.degrade``, 4x area average) of the middle brain slice
of the first LGG test patient when the data folder is present, else of the Shepp-Logan phantom resized to
256 x 256. Each arm maps it to 256 x 256 (batch 1: bicubic, or a registered generator through
``medviz.superres.infer.super_resolve``); the degradation itself is not timed. Per torch thread count
(``torch.set_num_threads``): one warm-up run, then the median wall time of ``--repeats`` runs. A model that is
not registered is listed as missing. The machine may be shared: expect about +-30 % between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sequence import _median  # noqa: E402

from medviz.datasets.lgg import DataLayoutError, cases  # noqa: E402
from medviz.models.registry import RegistryError  # noqa: E402
from medviz.models.weights import load_model  # noqa: E402
from medviz.superres.data import default_root, is_brain_slice, load_sr_slices, scale_to_max  # noqa: E402
from medviz.superres.degrade import bicubic, degrade  # noqa: E402
from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS, super_resolve  # noqa: E402


def bench_slice() -> tuple[np.ndarray, str]:
    """``(a 256 x 256 real slice in [0, 1], where it comes from)``."""
    try:
        root = default_root()
        case = cases(root, "test")[0]
        brain = [x for x in load_sr_slices(root, case_ids=[case]).images if is_brain_slice(x)]
        return brain[len(brain) // 2], f"middle brain slice of {case} (LGG test)"
    except (FileNotFoundError, OSError, DataLayoutError, IndexError):
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize

        return scale_to_max(resize(shepp_logan_phantom(), (256, 256)))[0], "Shepp-Logan phantom, 256 x 256"


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixel", default="lgg_flair_sr4_pixel", help="registered pixel-loss model (arm B)")
    p.add_argument("--gan", default="lgg_flair_sr4_gan", help="registered GAN (arm C)")
    p.add_argument("--weights-dir", type=Path, default=None, help="registry folder (default: MEDVIZ_WEIGHTS_DIR)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op thread counts")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = p.parse_args(argv)
    real, source = bench_slice()
    low_res = degrade(real)
    arms = {BICUBIC: ("bicubic (torch, align_corners=False)", lambda: bicubic(low_res))}
    missing = {}
    for arm, name in ((PIXEL_LOSS, a.pixel), (GAN, a.gan)):
        try:
            generator, entry = load_model(name, device="cpu", weights_dir=a.weights_dir)
        except RegistryError as e:
            missing[arm] = f"{name}: {e}"
            continue
        spec = entry.spec
        arms[arm] = (name, lambda g=generator, s=spec: super_resolve(g, low_res, s.scale, s.residual))
    seconds: dict[str, dict[str, float]] = {arm: {} for arm in arms}
    for n in a.threads:
        torch.set_num_threads(n)
        for arm, (_, run) in arms.items():
            seconds[arm][str(n)] = _median(run, a.repeats)
    if a.json:
        print(json.dumps({"input": source, "low_res_shape": list(low_res.shape), "output_shape": list(real.shape),
                          "repeats": a.repeats, "threads": a.threads,
                          "seconds_per_slice": {arm: {"model": arms[arm][0], "by_threads": seconds[arm]} for arm in arms},
                          "missing": missing}, indent=2))
        return 0
    print(f"CPU, {source}: {low_res.shape[0]}x{low_res.shape[1]} -> {real.shape[0]}x{real.shape[1]}, "
          f"median of {a.repeats} after one warm-up")
    print("| arm | model | " + " | ".join(f"{n} thread{'s' * (n > 1)} (s / slice)" for n in a.threads) + " |")
    print("|---|---|" + "---|" * len(a.threads))
    for arm, (name, _) in arms.items():
        print(f"| {arm} | {name} | " + " | ".join(f"{seconds[arm][str(n)]:.4f}" for n in a.threads) + " |")
    for arm, why in missing.items():
        print(f"| {arm} | not registered ({why}) |" + " – |" * len(a.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
