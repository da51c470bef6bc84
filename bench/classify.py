"""CPU latency of classification and Grad-CAM explanations, cold vs warm.

    python bench/classify.py [--model pneumonia_resnet] [--repeats 30] [--threads 2] [--json]

Measures (median of ``--repeats`` runs, batch 1, ``torch.inference_mode`` for inference):

* ``forward``: one forward pass of the preprocessed image (the unit of the ratio column);
* ``classify``: preprocessing + calibrated prediction (what the page does before explaining);
* ``classify + TTA``: plus the 9 test-time augmentations;
* ``classify + <CAM>``: plus one explanation for GradCAM, GradCAM++, HiResCAM and EigenCAM;
* cold vs warm: a fresh Python process (imports + sha256-checked load + first classify), the
  in-process load of the model + first classify, and a classify with the model already cached.

Input: the real NIH chest X-ray PNG from the data directory when present, else a synthetic 512 px image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medviz.classification.infer import predict, predict_tta  # noqa: E402
from medviz.classification.preprocess import prepare_input  # noqa: E402
from medviz.config import get_settings  # noqa: E402
from medviz.explain import CamMethod, classifier_target, explain  # noqa: E402
from medviz.models.weights import load_model  # noqa: E402


def _image() -> tuple[np.ndarray, str]:
    png = get_settings().data_dir / "cxr_nih_torchxrayvision" / "00000001_000.png"
    if png.exists():
        from PIL import Image

        return np.asarray(Image.open(png).convert("L")), f"{png.name} (512x512 CXR)"
    return np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8), "synthetic 512x512"


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(model, spec, img: np.ndarray, repeats: int) -> dict[str, float]:
    """Median milliseconds of forward, classify, classify + TTA and classify + each CAM method on ``img``."""
    import torch

    x = prepare_input(img, spec).x
    xt = torch.from_numpy(x[None])

    def forward():
        with torch.inference_mode():
            model(xt)

    def classify():
        return predict(model, spec, prepare_input(img, spec).x)

    rows = {"forward": _median_ms(forward, repeats), "classify": _median_ms(classify, repeats),
            "classify + TTA": _median_ms(lambda: (classify(), predict_tta(model, spec, x)), repeats)}
    for m in CamMethod:
        rows[f"classify + {m.value}"] = _median_ms(
            lambda m=m: explain(model, prepare_input(img, spec).x, spec.cam_layer,
                                classifier_target(classify().top), m.value),
            repeats)
    return rows


COLD_SNIPPET = """
import time; t = time.perf_counter()
import numpy as np, torch; torch.set_num_threads({threads})
from medviz.models.weights import load_model  # noqa: E402
from medviz.classification.infer import prepare_input, predict  # noqa: E402
model, entry = load_model({name!r})
img = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
predict(model, entry.spec, prepare_input(img, entry.spec).x)
print((time.perf_counter() - t) * 1000)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pneumonia_resnet")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    t = time.perf_counter()
    model, entry = load_model(args.model)
    spec = entry.spec
    img, what = _image()
    predict(model, spec, prepare_input(img, spec).x)
    cold_in_process = (time.perf_counter() - t) * 1000
    rows = measure(model, spec, img, args.repeats)
    cold = subprocess.run([sys.executable, "-c", COLD_SNIPPET.format(threads=args.threads, name=args.model)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    result = {"model": args.model, "input": what, "threads": args.threads, "repeats": args.repeats,
              "median_ms": rows, "ratio_to_forward": {k: v / rows["forward"] for k, v in rows.items()},
              "cold_process_ms": float(cold.stdout.strip().splitlines()[-1]),
              "cold_load_in_process_ms": cold_in_process, "warm_classify_ms": rows["classify"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {args.model}, input {what}, {args.threads} CPU threads, median of {args.repeats}")
    print(f"| {'step':<22} | {'median ms':>9} | {'x forward':>9} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 11}|")
    for k, v in rows.items():
        print(f"| {k:<22} | {v:>9.1f} | {v / rows['forward']:>9.1f} |")
    print(f"| {'cold: new process':<22} | {result['cold_process_ms']:>9.0f} | {'':>9} |")
    print(f"| {'cold: load+1st (in-proc)':<22} | {cold_in_process:>9.1f} | {'':>9} |")
    print(f"| {'warm: cached model':<22} | {rows['classify']:>9.1f} | {'':>9} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
