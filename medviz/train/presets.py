"""The "quick demo run" of the Training page: a small, fast configuration per task.

A preset is the engine's hyperparameters (:class:`~medviz.train.engine.TrainConfig` fields) and the task's
own options to change; everything else keeps its default. Every task gets 2 epochs of at most 20 optimiser
steps on a small batch (the validation split is the task's own, capped where the task allows it), so a
demo on a CPU shows curves within minutes instead of hours (measured on a 2-core machine shared with other
work: classification about 2.5 min, segmentation about 7 min and reconstruction about 5 min, most of it
loading and validating the LGG data; the sequence task first encodes every LGG stack with its slice encoder
and takes longer); the numbers it reaches say nothing about the shipped models.

Example:
    >>> preset = quick_demo("segmentation")
    >>> preset.config["epochs"], preset.options["crop"]
    (2, 64)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from medviz.train.engine import TrainConfig
from medviz.train.registry import get_task_class

DEMO_CONFIG: dict[str, Any] = {"epochs": 2, "batch_size": 16, "max_steps_per_epoch": 20, "patience": 0}

#: task options of each task's demo (tasks not named here: the common part only)
DEMO_OPTIONS: dict[str, dict[str, Any]] = {
    "classification": {"image_size": 28},
    "segmentation": {"crop": 64, "unet_channels": [8, 16, 32, 64], "res_units": 1},
    "reconstruction": {"crop": (96, 256), "val_limit": 32},  # recon keeps the width whole (aliasing geometry)
    "sequence": {"hidden": 16, "proj": 16},
    "superres": {"crop": 64, "val_limit": 16},  # the pixel-loss arm (a GAN run needs start weights)
}


@dataclass(frozen=True)
class Preset:
    """Field values to set: ``config`` (TrainConfig fields) and ``options`` (the task's Options fields)."""

    task: str
    config: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    def description(self) -> str:
        """What the preset sets, in words."""
        c = self.config
        return (f"Quick demo run: {c['epochs']} epochs of at most {c['max_steps_per_epoch']} steps of {c['batch_size']} "
                f"images each, a small subset of the training data, so it finishes in minutes on a CPU (longer "
                f"while the machine is busy); "
                f"the model it trains is for seeing the page work, not for use.")

    def apply(self, config: TrainConfig, options: Any) -> tuple[TrainConfig, Any]:
        """``config`` and ``options`` with the preset's values."""
        return replace(config, **self.config), replace(options, **self.options)


def quick_demo(task: str) -> Preset:
    """The quick demo preset of ``task`` (its task options keep only the fields that task has)."""
    names = {f.name for f in fields(get_task_class(task).Options)}
    return Preset(task=task, config=dict(DEMO_CONFIG),
                  options={k: v for k, v in DEMO_OPTIONS.get(task, {}).items() if k in names})
