"""A tiny real training run per model family improves its training loss, and stop + resume gives
the same weights as an uninterrupted run (the real task plugins on small subsets of the public
data, through the one engine)."""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path

import pytest
import torch

from medviz.train.checkpoint import LAST, load_checkpoint
from medviz.train.cli import config_from_args, parse
from medviz.train.engine import train
from medviz.train.registry import available_tasks, get_task_class

pytestmark = pytest.mark.data


def _lgg_subset(data_dir: Path, out: Path, n_train: int = 1, n_val: int = 1) -> Path:
    """An LGG-layout folder holding a few whole patients (files linked, not copied)."""
    src = data_dir / "lgg_flair_mri_seg"
    splits = json.loads((src / "splits.json").read_text())
    keep = {"train": splits["train"][:n_train], "val": splits["val"][:n_val], "test": splits["test"][:1]}
    out.mkdir()
    for sub in ("images", "masks"):
        os.symlink(src / sub, out / sub)
    with open(src / "pairs.csv") as f, open(out / "pairs.csv", "w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=reader.fieldnames)
        writer.writeheader()
        cases = {c for v in keep.values() for c in v}
        writer.writerows(r for r in reader if r["case_id"] in cases)
    (out / "splits.json").write_text(json.dumps(keep))
    return out


def _improves(task: str, argv: list[str], run_dir: Path) -> None:
    """Train 3 epochs (loss must drop); then stop a second run in epoch 2 and resume it: the final
    weights must equal the uninterrupted run's bit for bit (data order and augmentation replay)."""
    if task not in available_tasks():
        pytest.skip(f"task plugin {task!r} is not installed")
    args = parse(["--task", task, "--device", "cpu", "--scheduler", "none", *argv])
    result = train(get_task_class(task)(args), config_from_args(args), run_dir / "ref")
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert result.best_epoch >= 1

    stop = threading.Event()
    stopper = lambda e: e.kind == "step" and e.epoch == 1 and e.step == 2 and stop.set()  # noqa: E731
    cfg = config_from_args(args)
    assert train(get_task_class(task)(args), cfg, run_dir / "run", [stopper], stop).status == "stopped"
    resumed = train(get_task_class(task)(args), cfg, run_dir / "run", resume=True)
    a, b = load_checkpoint(run_dir / "ref" / LAST)["model"], load_checkpoint(run_dir / "run" / LAST)["model"]
    assert resumed.status == "completed" and all(torch.equal(a[k], b[k]) for k in a)


def test_classification_tiny_run_improves(data_dir, tmp_path):
    _improves("classification", ["--dataset", "breastmnist", "--data", str(data_dir / "medmnist"),
                                 "--epochs", "3", "--batch-size", "32", "--max-steps-per-epoch", "6",
                                 "--lr", "0.003"], tmp_path)


def test_segmentation_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg")
    _improves("segmentation", ["--data", str(root), "--epochs", "3", "--batch-size", "8", "--lr", "0.003",
                               "--max-steps-per-epoch", "4", "--crop", "64", "--unet-channels", "8", "16", "32",
                               "--res-units", "1"], tmp_path)


def test_reconstruction_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg")
    _improves("reconstruction", ["--data", str(root), "--mode", "denoise", "--epochs", "3", "--batch-size", "4",
                                 "--lr", "0.003", "--max-steps-per-epoch", "4", "--crop", "64", "64",
                                 "--val-limit", "4"], tmp_path)
