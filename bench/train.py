"""Training throughput: the MedViz engine vs a plain MONAI-tutorial loop, measured in one run.

Same model (MONAI UNet 2D), data (LGG FLAIR image/mask PNG pairs of the first ``--cases`` training
patients, resized to ``--size``), loss, optimiser, batch size, epochs and threads. The only
differences are the engine's: a ``CacheDataset`` holding the deterministic preprocessing (PNG decode,
scaling, resize) after the first epoch, a ``ThreadDataLoader`` that prepares the next batch while
the model trains, and the engine's own bookkeeping (events, validation, checkpoints every epoch).
The baseline is the tutorial style: ``Dataset`` + ``DataLoader`` (no caching), validating each epoch
too. Wall-clock time includes building the cache.

Run: ``OMP_NUM_THREADS=1 python bench/train.py`` (prints a markdown table; ``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)  # STACK.md pitfall 2
warnings.filterwarnings("ignore", message=".*NvImgCodecPydicomReader.*")

from medviz.config import get_settings  # noqa: E402
from medviz.train.engine import TrainConfig, train  # noqa: E402
from medviz.train.task import TaskData, TrainTask  # noqa: E402

KEYS = ["image", "label"]


def _items(root: Path, split: str, n_cases: int) -> list[dict[str, str]]:
    cases = json.loads((root / "splits.json").read_text())[split][:n_cases]
    with open(root / "pairs.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["case_id"] in cases]
    return [{"image": str(root / r["image"]), "label": str(root / r["mask"])} for r in rows]


def _transforms(size: int, train: bool) -> tuple[Any, Any]:
    """(deterministic preprocessing, random augmentation)."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        LoadImaged,
        RandFlipd,
        Resized,
        ScaleIntensityRanged,
    )

    pre = Compose([LoadImaged(keys=KEYS, reader="PILReader"), EnsureChannelFirstd(keys=KEYS),
                   ScaleIntensityRanged(keys=KEYS, a_min=0, a_max=255, b_min=0.0, b_max=1.0, clip=True),
                   Resized(keys=KEYS, spatial_size=(size, size), mode=("bilinear", "nearest")),
                   EnsureTyped(keys=KEYS, track_meta=False)])
    aug = Compose([RandFlipd(keys=KEYS, prob=0.5 if train else 0.0, spatial_axis=1)])
    return pre, aug


def _model() -> Any:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=3, out_channels=1, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)


def _loss() -> Any:
    from monai.losses import DiceCELoss

    return DiceCELoss(sigmoid=True)


class BenchTask(TrainTask):
    """LGG segmentation with cached deterministic preprocessing (the engine side of the bench)."""

    name = "bench"
    monitor = "val_loss"
    mode = "min"

    def __init__(self, a: argparse.Namespace) -> None:
        super().__init__()
        self.args = a  # the bench's own command line (no task options)

    def build_data(self) -> TaskData:
        from monai.data import CacheDataset
        from monai.transforms import Compose

        a = self.args
        pre, aug = _transforms(a.size, True)
        vpre, _ = _transforms(a.size, False)
        train = CacheDataset(_items(a.data, "train", a.cases), transform=Compose([*pre.transforms, *aug.transforms]),
                             progress=False, num_workers=1)
        val = CacheDataset(_items(a.data, "val", a.val_cases), transform=vpre, progress=False, num_workers=1)
        return TaskData(train=train, val=val, summary={"train": len(train), "val": len(val)})

    def build_model(self) -> Any:
        return _model()

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        if not hasattr(self, "_lossf"):
            self._lossf = _loss()
        return self._lossf(model(batch["image"]), batch["label"])

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        return {"val_loss": _val_loss(model, loader, device)}


def _val_loss(model: Any, loader: Any, device: str) -> float:
    lossf, total, n = _loss(), 0.0, 0
    for b in loader:
        x, y = b["image"].to(device), b["label"].to(device)
        total += lossf(model(x), y).item() * len(x)
        n += len(x)
    return total / max(n, 1)


def plain_loop(a: argparse.Namespace) -> tuple[float, list[float]]:
    """MONAI tutorial style: Dataset + DataLoader, no caching; returns (seconds, per-epoch val loss)."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose
    from monai.utils import set_determinism

    set_determinism(seed=0)
    t0 = time.perf_counter()
    pre, aug = _transforms(a.size, True)
    vpre, _ = _transforms(a.size, False)
    train = Dataset(_items(a.data, "train", a.cases), transform=Compose([*pre.transforms, *aug.transforms]))
    val = Dataset(_items(a.data, "val", a.val_cases), transform=vpre)
    loader = DataLoader(train, batch_size=a.batch_size, shuffle=True, num_workers=0)
    vloader = DataLoader(val, batch_size=a.batch_size, num_workers=0)
    model, lossf = _model(), _loss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    curve = []
    for _ in range(a.epochs):
        model.train()
        for b in loader:
            opt.zero_grad()
            loss = lossf(model(b["image"]), b["label"])
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            curve.append(_val_loss(model, vloader, "cpu"))
    return time.perf_counter() - t0, curve


def engine_run(a: argparse.Namespace) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        r = train(BenchTask(a), TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=1e-3, scheduler="none",
                                            device="cpu"), Path(run_dir))
    return time.perf_counter() - t0, [h["val_loss"] for h in r.history]


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=get_settings().data_dir / "lgg_flair_mri_seg")
    p.add_argument("--cases", type=int, default=8, help="training patients (all their slices)")
    p.add_argument("--val-cases", type=int, default=1)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    n = len(_items(a.data, "train", a.cases))
    rows = {}
    for label, fn in (("plain MONAI loop (Dataset + DataLoader)", plain_loop), ("MedViz engine", engine_run)):
        secs, curve = fn(a)
        rows[label] = {"seconds": secs, "images_per_s": n * a.epochs / secs, "val_loss": curve}
    base, eng = rows["plain MONAI loop (Dataset + DataLoader)"], rows["MedViz engine"]
    ratio = eng["images_per_s"] / base["images_per_s"]
    if a.json:
        print(json.dumps({"train_images": n, "epochs": a.epochs, "size": a.size, "rows": rows, "speedup": ratio}))
        return 0
    print(f"LGG FLAIR, {n} training slices ({a.cases} patients), {a.size}², batch {a.batch_size}, {a.epochs} epochs, "
          f"UNet 2D, {a.threads} thread(s), CPU")
    print("| loop | wall s | images/s | val loss per epoch |\n|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | {', '.join(f'{v:.3f}' for v in r['val_loss'])} |")
    print(f"| **speed-up** | | **{ratio:.2f}×** | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
