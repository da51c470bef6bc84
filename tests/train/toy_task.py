"""A tiny synthetic task for engine tests: segment ``image > 0.5`` with a 2-level MONAI UNet.

No BatchNorm and no dropout by default, so a 2-process DDP run equals a single-process run up to
float error. Register it for the command line and the page with
``MEDVIZ_TRAIN_TASKS=toy=tests.train.toy_task:ToyTask``.

Options: :class:`ToyOptions`. Test hooks: ``--nan-at-step`` (global step that returns NaN), ``--nan-grad-at-step`` (global step
whose loss is finite but whose gradient is NaN, like the derivative of a magnitude at 0), ``--step-delay`` (seconds slept per
step, to kill a run mid-epoch), ``--trace`` (file that gets one ``epoch step`` line per step), ``--crash-at-step`` (a plugin bug: an unexpected
error at that global step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.models.specs import SPEC_TYPES, ModelSpec
from medviz.options import option
from medviz.train.task import TaskData, TrainTask


class ToySpec(ModelSpec):
    """The manifest entry of a toy model: the common keys only."""

    TASK = "toy"


# Registered when the task is (tests and MEDVIZ_TRAIN_TASKS runs import this module before exporting).
SPEC_TYPES.setdefault("toy", ToySpec)

ARCH = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [4, 8],
                                   "strides": [2], "num_res_units": 0, "norm": None}}


@dataclass(frozen=True)
class ToyOptions:
    n_train: int = option(64, label="Training images", min=1, help="training images")
    n_val: int = option(16, label="Validation images", min=1, help="validation images")
    size: int = option(16, label="Image side (pixels)", min=4, help="image side in pixels")
    augment: bool = option(False, label="Random noise", help="random Gaussian noise (seeded)")
    nan_at_step: int = option(0, label="NaN loss at step", min=0, help="return a NaN loss at this global step")
    nan_grad_at_step: int = option(0, label="NaN gradient at step", min=0, help="finite loss, NaN gradient at this step")
    step_delay: float = option(0.0, label="Delay per step (s)", min=0.0, help="seconds to sleep per step")
    trace: Path | None = option(None, label="Trace file", help="append 'epoch step' per step")
    crash_at_step: int = option(0, label="Plugin bug at step", min=0, help="raise an unexpected error at this step")


class ToyTask(TrainTask):
    name = "toy"
    monitor = "val_loss"
    mode = "min"
    Options = ToyOptions

    def __init__(self, options: ToyOptions | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self._global_step = 0

    def build_data(self) -> TaskData:
        from monai.data import CacheDataset
        from monai.transforms import Compose, EnsureTyped, RandGaussianNoised

        a = self.options
        rng = np.random.default_rng(0)
        img = rng.random((a.n_train + a.n_val, 1, a.size, a.size), dtype=np.float32)
        items = [{"image": x, "label": (x > 0.5).astype(np.float32)} for x in img]
        train_tf = Compose([EnsureTyped(keys=["image", "label"], track_meta=False),
                            RandGaussianNoised(keys="image", prob=1.0 if a.augment else 0.0, std=0.05)])
        val_tf = Compose([EnsureTyped(keys=["image", "label"], track_meta=False)])
        train = CacheDataset(items[: a.n_train], transform=train_tf, progress=False)
        val = CacheDataset(items[a.n_train:], transform=val_tf, progress=False)
        summary = {"train": a.n_train, "val": a.n_val, "size": [a.size, a.size],
                   "foreground_fraction": round(float((img > 0.5).mean()), 3)}
        return TaskData(train=train, val=val, summary=summary, samples=[x[0] for x in img[:4]],
                        sample_captions=[f"sample {i}" for i in range(4)])

    def build_model(self) -> Any:
        from medviz.models.nets import build_network

        return build_network(ARCH)

    def arch(self) -> dict[str, Any]:
        return ARCH

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        self._global_step += 1
        if self.options.trace is not None:
            with open(self.options.trace, "a") as f:
                f.write(f"{self._global_step}\n")
        if self.options.step_delay:
            time.sleep(self.options.step_delay)
        if self.options.crash_at_step and self._global_step == self.options.crash_at_step:
            raise KeyError("label")  # like a plugin bug: not a MedvizError
        loss = F.binary_cross_entropy_with_logits(model(batch["image"]), batch["label"])
        if self.options.nan_at_step and self._global_step == self.options.nan_at_step:
            loss = loss * float("nan")
        if self.options.nan_grad_at_step and self._global_step == self.options.nan_grad_at_step:
            w = next(model.parameters())
            loss = loss + (w - w.detach()).abs().sum().sqrt()  # value 0; d sqrt(u)/du at 0 = inf, times 0 = NaN
        return loss

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        import torch.nn.functional as F

        losses, inter, total = [], 0.0, 0.0
        for batch in loader:
            x, y = batch["image"].to(device), batch["label"].to(device)
            logits = model(x)
            losses.append(F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item())
            pred = (logits > 0).float()
            inter += (pred * y).sum().item()
            total += (pred.sum() + y.sum()).item()
        n = sum(1 for _ in loader.dataset) * self.options.size**2
        return {"val_loss": sum(losses) / n, "val_dice": 2 * inter / max(total, 1e-9)}

    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        from medviz.models.weights import save_state_dict

        save_state_dict(model, out_dir / f"{name}.safetensors")
        (out_dir / f"{name}.md").write_text(
            f"# {name}\n\nToy model (synthetic data, tests only).\n\n"
            f"Training command:\n\n    {command}\n\nValidation: {metrics}\n"
        )
        return {"name": name, "task": "toy", "dataset": "synthetic", "file": f"{name}.safetensors",
                "card": f"{name}.md", "arch": ARCH}
