"""CPU benchmark of the segmentation inference paths: ``python bench/segment.py [--threads 2]``.

Cases: one 256×256 slice (2D path), a 256×256×40 stack (slice-wise batches) and a 256×256×128
volume through ``sliding_window_inference``. Prints a Markdown table with the median wall time over
``--repeats`` runs and the peak resident memory above the pre-run level (sampled every 5 ms).
Uses the registered ``lgg_unet`` when present, with its spec's test-time augmentation and post-processing
(as the Segment page runs it), else the same untrained architecture with the default spec: no TTA,
threshold 0.5, no component filter (timing only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medviz.models.nets import build_network  # noqa: E402
from medviz.models.registry import RegistryError  # noqa: E402
from medviz.models.specs import parse_spec  # noqa: E402
from medviz.models.weights import load_model  # noqa: E402
from medviz.segmentation.infer import segment_volume  # noqa: E402
from medviz.types import Volume, affine_from_spacing  # noqa: E402

ARCH = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1,
                                   "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                                   "num_res_units": 2, "norm": "batch", "dropout": 0.0}}


class PeakRSS:
    """Peak RSS (MiB) above the level at entry, sampled in a thread."""

    def __enter__(self) -> "PeakRSS":
        import psutil

        self.proc, self.stop = psutil.Process(), threading.Event()
        self.base = self.peak = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    try:
        model, entry = load_model("lgg_unet")
        spec = entry.spec
        which = (f"lgg_unet (test-time augmentation: {spec.tta}, threshold {spec.threshold:g}, min size "
                 f"{spec.min_size}, as the Segment page runs it)")
    except RegistryError:
        spec = parse_spec({"name": "untrained", "task": "segmentation", "file": "-", "arch": ARCH})
        model, which = build_network(ARCH).eval(), "untrained UNet (same architecture)"
    rng = np.random.default_rng(0)
    cases = [("one slice 256×256", 1, "auto"), ("stack 256×256×40", 40, "stack"),
             ("volume 256×256×128, sliding window", 128, "sliding_window")]
    print(f"model: {which}; torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
          f"median of {args.repeats}\n")
    print("| input | path | median s | per slice ms | peak RSS MiB |\n|---|---|---|---|---|")
    for label, z, path in cases:
        vol = Volume(array=rng.integers(0, 255, (z, 256, 256, 3), dtype=np.uint8), spacing=(1.0, 1.0, 1.0),
                     affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="MR", units="RGB")
        segment_volume(model, vol, spec, path=path, batch_size=args.batch_size)  # warm-up
        times, peak = [], 0.0
        for _ in range(args.repeats):
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                res = segment_volume(model, vol, spec, path=path, batch_size=args.batch_size)
                times.append(time.perf_counter() - t0)
            peak = max(peak, mem.mib)
        med = statistics.median(times)
        print(f"| {label} | {res.path} | {med:.3f} | {1000 * med / z:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
