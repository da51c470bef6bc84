"""CPU benchmark of the sequence model: ``python bench/sequence.py [--threads 2] [--repeats 5]``.

Per-stack latency for 20, 40 and 80 slices of 256 x 256: the slice encoder (the shipped segmenter's features,
with its left-right mirror pass) and the bidirectional GRU, and the GRU's share of the total. Prints a
Markdown table of medians over ``--repeats`` runs. Uses the registered sequence model ``lgg_slice_gru`` and
segmenter ``lgg_unet`` when present, else the same untrained architectures (timing only).
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
from medviz.sequence.encoder import FEATURES, slice_features  # noqa: E402
from medviz.sequence.infer import load_models, predict_features  # noqa: E402

SEGMENTER = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1,
                                        "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                                        "num_res_units": 2, "norm": "batch", "dropout": 0.0}}
SEQUENCE = {"name": "SliceSequenceModel", "kwargs": {"n_features": FEATURES, "hidden": 32, "proj": 64, "dropout": 0.3}}


def _models(name: str) -> tuple[object, object, str]:
    try:
        model, segmenter, entry = load_models(name)
        return model, segmenter, f"registered {name} + {entry.spec.segmenter}"
    except RegistryError:
        return build_network(SEQUENCE).eval(), build_network(SEGMENTER).eval(), "untrained architectures (timing only)"


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", default="lgg_slice_gru")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, segmenter, what = _models(a.model)
    rng = np.random.default_rng(0)
    print(f"sequence model: {what}; CPU, {a.threads} thread(s), median of {a.repeats}\n")
    print("| slices | encoder (s) | GRU (s) | total (s) | GRU share |\n|---|---|---|---|---|")
    for n in (20, 40, 80):
        x = rng.random((n, 3, 256, 256), dtype=np.float32)
        feats = slice_features(segmenter, x)
        enc = _median(lambda: slice_features(segmenter, x), a.repeats)
        gru = _median(lambda: predict_features(model, feats), a.repeats)
        print(f"| {n} | {enc:.3f} | {gru:.4f} | {enc + gru:.3f} | {gru / (enc + gru):.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
