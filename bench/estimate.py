"""The Training page's epoch-time estimate against the measured first epoch of the same configuration.

For each configuration: :func:`medviz.train.estimate.estimate` (what the "Estimate memory and time per
epoch" button shows), then a real one-epoch run through the engine, whose first epoch's ``seconds``
(training steps with data loading, then validation) is the number to compare. The ratio should lie
within a factor 1.5 (between 0.67 and 1.5), else the page must call the estimate rough.

Run: ``OMP_NUM_THREADS=2 python bench/estimate.py`` (the toy task, and a tiny real classification and
segmentation run when ``MEDVIZ_DATA_DIR`` holds PneumoniaMNIST and LGG; ``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)  # STACK.md pitfall 2
warnings.filterwarnings("ignore", message=".*NvImgCodecPydicomReader.*")

from medviz.train.command import TrainCommand  # noqa: E402
from medviz.train.engine import TrainConfig, train  # noqa: E402
from medviz.train.estimate import estimate  # noqa: E402
from medviz.train.registry import get_task_class  # noqa: E402
from medviz.types import MedvizError  # noqa: E402


def _configs() -> list[tuple[str, TrainCommand]]:
    """(label, command) of each measured configuration; the real tasks only when their data are present."""
    import os

    os.environ.setdefault("MEDVIZ_TRAIN_TASKS", "toy=tests.train.toy_task:ToyTask")
    from tests.train.toy_task import ToyOptions

    cpu = TrainConfig(epochs=1, device="cpu")
    out = [("toy (64 train, 16 val, 16 px, batch 8)",
            TrainCommand("toy", config=replace(cpu, batch_size=8), options=ToyOptions())),
           ("toy (512 train, 512 val, 32 px, batch 16)",
            TrainCommand("toy", config=replace(cpu, batch_size=16), options=ToyOptions(n_train=512, n_val=512, size=32)))]
    cls = get_task_class("classification")
    out.append(("classification pneumoniamnist 28 px, 40 steps of 32",
                TrainCommand("classification", config=replace(cpu, batch_size=32, max_steps_per_epoch=40),
                             options=cls.Options())))
    seg = get_task_class("segmentation")
    out.append(("segmentation LGG, crop 64, 20 steps of 8",
                TrainCommand("segmentation", config=replace(cpu, batch_size=8, max_steps_per_epoch=20),
                             options=seg.Options(crop=64, unet_channels=[8, 16, 32], res_units=0))))
    return out


def measure(command: TrainCommand) -> dict[str, Any]:
    """The estimate and the measured first epoch (seconds) of ``command``."""
    est = estimate(command.build_task(), command.config)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(command.build_task(), command.config, Path(tmp))
    first = result.history[0]["seconds"]
    return {"estimate_s": est["epoch_s"], "first_epoch_s": first, "ratio": first / est["epoch_s"],
            "rough": est.get("rough", False), "method": est["method"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for label, command in _configs():
        try:
            rows.append({"config": label, **measure(command)})
        except (MedvizError, FileNotFoundError) as e:  # data set not present
            rows.append({"config": label, "skipped": str(e)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| configuration | estimate (s) | first epoch (s) | measured / estimate | within 1.5x |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['config']} | skipped: {r['skipped'][:60]} | | | |")
            continue
        ok = 1 / 1.5 <= r["ratio"] <= 1.5
        print(f"| {r['config']} | {r['estimate_s']:.2f} | {r['first_epoch_s']:.2f} | {r['ratio']:.2f} | "
              f"{'yes' if ok else 'no'}{' (labelled rough)' if r['rough'] else ''} |")


if __name__ == "__main__":
    main()
