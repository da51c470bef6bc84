"""CPU latency at 224 px vs 28 px: the chest X-ray model and the 28-px PneumoniaMNIST model on one radiograph.

    python bench/cxr_resolution.py [--repeats 20] [--threads 2] [--json]

Both models classify the same bundled test-split radiograph (``examples/cxr_pneumonia_person121_bacteria_575.jpg``,
434x256) through their own ``prepare_input``; rows as in ``bench/classify.py`` (median ms, batch 1): forward,
classify, classify + TTA and classify + each CAM method.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from classify import measure  # noqa: E402

from medviz.models.weights import load_model  # noqa: E402

MODELS = ("pneumonia_cxr224", "pneumonia_resnet")
IMAGE = ROOT / "examples" / "cxr_pneumonia_person121_bacteria_575.jpg"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    img = np.asarray(Image.open(IMAGE).convert("L"))
    out = {}
    for name in MODELS:
        model, entry = load_model(name)
        out[name] = {"input_px": entry.spec.input.size, "median_ms": measure(model, entry.spec, img, args.repeats)}
    result = {"image": f"{IMAGE.name} ({img.shape[1]}x{img.shape[0]})", "threads": args.threads,
              "repeats": args.repeats, "models": out}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    a, b = MODELS
    print(f"{result['image']}, {args.threads} CPU threads, median of {args.repeats} (ms)")
    print(f"| step | {a} ({out[a]['input_px']} px) | {b} ({out[b]['input_px']} px) | ratio |")
    print("|---|---|---|---|")
    for k, v in out[a]["median_ms"].items():
        w = out[b]["median_ms"][k]
        print(f"| {k} | {v:.1f} | {w:.1f} | {v / w:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
