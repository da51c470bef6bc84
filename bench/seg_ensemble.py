"""CPU benchmark of a fold ensemble against the single segmenter: ``python bench/seg_ensemble.py [--members 5]
[--threads 1] [--repeats 5]``.

Latency of one 256 x 256 slice (batch 1) and of a 40-slice stack (batches of 16), with the test-time
augmentation of the registered ``lgg_unet`` (its left-right mirror pass when the manifest says so), for the
single model and for a probability-averaging ensemble of ``--members`` copies of it (the architecture a
``--folds K --members ...`` export ships; timing does not depend on the weights). Prints a Markdown table of
medians over ``--repeats`` runs and the ensemble / single ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sequence import _median  # noqa: E402

from medviz.models.nets import build_network  # noqa: E402
from medviz.models.weights import load_model  # noqa: E402
from medviz.segmentation.infer import predict_tta  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the server's default is 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", default="lgg_unet")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    single, entry = load_model(a.model)
    arch = entry.spec.arch.to_dict()
    ensemble = build_network({"name": "Ensemble", "kwargs": {"members": [arch] * a.members, "activation": "sigmoid"}})
    for member in ensemble.members:
        member.load_state_dict(single.state_dict())
    ensemble.eval()
    tta = entry.spec.tta
    rng = np.random.default_rng(0)
    inputs = {"one 256² slice": rng.random((1, 3, 256, 256), dtype=np.float32),
              "40-slice stack": rng.random((40, 3, 256, 256), dtype=np.float32)}
    print(f"{a.model} (test-time augmentation {tta}) vs an ensemble of {a.members} copies; CPU, {a.threads} thread(s), "
          f"median of {a.repeats}")
    print("| input | single | ensemble | ensemble / single |\n|---|---|---|---|")
    for what, x in inputs.items():
        times = [_median(lambda m=m: predict_tta(m, x, tta, "stack", 16), a.repeats) for m in (single, ensemble)]
        print(f"| {what} | {times[0]:.3f} s | {times[1]:.3f} s | {times[1] / times[0]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
