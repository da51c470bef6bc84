"""A tiny real training run per model family improves its training loss, and stop + resume gives
the same weights as an uninterrupted run (the real task plugins on small subsets of the public
data, through the one engine)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from medviz.train.checkpoint import LAST, load_checkpoint
from medviz.train.engine import TrainConfig, train
from medviz.train.registry import available_tasks, get_task_class
from tests.lgg_folders import lgg_folder, shipped_splits

pytestmark = pytest.mark.data


def _lgg_subset(data_dir: Path, out: Path, n_train: int = 1, n_val: int = 1) -> Path:
    """An LGG-layout folder holding a few whole patients of each split."""
    splits = shipped_splits(data_dir)
    return lgg_folder(data_dir, out, {"train": splits["train"][:n_train], "val": splits["val"][:n_val],
                                      "test": splits["test"][:1]})


def _improves(task: str, data: Path, run_dir: Path, options: dict, **config) -> None:
    """Train 3 epochs (loss must drop); then stop a second run in epoch 2 and resume it: the final
    weights must equal the uninterrupted run's bit for bit (data order and augmentation replay).
    ``options``: fields of the task's options dataclass; ``config``: fields of the TrainConfig."""
    if task not in available_tasks():
        pytest.skip(f"task plugin {task!r} is not installed")
    cls = get_task_class(task)
    cfg = TrainConfig(device="cpu", scheduler="none", epochs=3, lr=0.003, **config)
    make = lambda: cls(cls.Options(**options), data=data, seed=cfg.seed)  # noqa: E731
    result = train(make(), cfg, run_dir / "ref")
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert result.best_epoch >= 1

    stop = threading.Event()
    stopper = lambda e: e.kind == "step" and e.epoch == 1 and e.step == 2 and stop.set()  # noqa: E731
    assert train(make(), cfg, run_dir / "run", [stopper], stop).status == "stopped"
    resumed = train(make(), cfg, run_dir / "run", resume=True)
    a, b = load_checkpoint(run_dir / "ref" / LAST)["model"], load_checkpoint(run_dir / "run" / LAST)["model"]
    assert resumed.status == "completed" and all(torch.equal(a[k], b[k]) for k in a)


def test_classification_tiny_run_improves(data_dir, tmp_path):
    _improves("classification", data_dir / "medmnist", tmp_path, {"dataset": "breastmnist"},
              batch_size=32, max_steps_per_epoch=6)


def test_segmentation_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg")
    _improves("segmentation", root, tmp_path, {"crop": 64, "unet_channels": [8, 16, 32], "res_units": 1},
              batch_size=8, max_steps_per_epoch=4)


def test_reconstruction_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg")
    _improves("reconstruction", root, tmp_path, {"mode": "denoise", "crop": (64, 64), "val_limit": 4},
              batch_size=4, max_steps_per_epoch=4)


def test_sequence_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg", n_train=3)
    _improves("sequence", root, tmp_path, {"hidden": 8, "proj": 8, "dropout": 0.0}, batch_size=1)


def test_sequence_stacked_ensemble_tiny_run_improves(data_dir, tmp_path):
    root = _lgg_subset(data_dir, tmp_path / "lgg", n_train=3)
    _improves("sequence", root, tmp_path, {"hidden": 8, "proj": 8, "dropout": 0.0, "inputs": "stacked", "members": 2},
              batch_size=1)
