"""The contract between the training engine and a model family (a *task*).

The engine (:mod:`medviz.train.engine`) owns everything generic: device choice, seeding, AMP and
channels-last on GPU, DistributedDataParallel, the optimiser and learning-rate schedule, the epoch
loop, validation each epoch, early stopping, atomic checkpoints and resume, stop requests, NaN
checks and events. A task owns everything specific to its family: data, network, loss, metrics,
the model card and the manifest entry.

Batches are dicts of tensors produced by the task's datasets (MONAI ``Dataset``/``CacheDataset``
of dicts); the engine moves every tensor value to the device before calling the task.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviz.models.weights import load_state_dict


@dataclass
class TaskData:
    """What a task hands the engine.

    Attributes:
        train: dataset of dict samples for training (random augmentation inside it).
        val: dataset of dict samples for model selection (deterministic).
        summary: a JSON-able dataset summary shown before training (counts per class/label,
            sizes, ...); the Training page renders it.
        samples: optional small 2D arrays (``(H, W)`` gray or ``(H, W, 3)`` RGB, any dtype; a
            dozen at most) shown as a sample grid on the Training page.
        sample_captions: optional captions for ``samples`` (e.g. class names), same length.
        loader: ``"auto"`` (a ``ThreadDataLoader`` when ``train`` is a MONAI ``CacheDataset`` and
            ``num_workers`` is 0, else a MONAI ``DataLoader``), ``"thread"`` or ``"torch"``.
    """

    train: Any
    val: Any
    summary: dict[str, Any] = field(default_factory=dict)
    samples: list[Any] = field(default_factory=list)
    sample_captions: list[str] = field(default_factory=list)
    loader: str = "auto"


class TrainTask(ABC):
    """One model family. Subclasses are registered in :data:`medviz.train.registry.TASKS`.

    Class attributes:
        name: task name (``classification``, ``segmentation``, ``reconstruction``).
        monitor: validation metric used for model selection and early stopping.
        mode: ``"max"`` if larger ``monitor`` is better, else ``"min"``.
        channels_last: let the engine use channels-last memory format for 4D tensors on CUDA.
    """

    name: str = ""
    monitor: str = "val_loss"
    mode: str = "min"
    channels_last: bool = True

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add task-specific command-line options (``--data`` is already defined by the engine)."""

    @abstractmethod
    def build_data(self) -> TaskData:
        """Load and describe the data; raise ``medviz.types.MedvizError`` with a clear message
        for unusable data (missing files, empty splits, wrong shapes)."""

    @abstractmethod
    def build_model(self) -> Any:
        """Return a freshly initialised ``torch.nn.Module`` (a MONAI network)."""

    @staticmethod
    def add_init_arguments(parser: argparse.ArgumentParser) -> None:
        """``--init WEIGHTS`` / ``--init-note TEXT`` for tasks that can fine-tune (see :meth:`load_init`)."""
        from pathlib import Path

        parser.add_argument("--init", type=Path, default=None, help="start from these safetensors weights (fine-tuning)")
        parser.add_argument("--init-note", default="", help="provenance of --init, written into the model card")

    def load_init(self, model: Any) -> bool:
        """Load ``--init`` weights (safetensors, strict) into ``model``; False when none were given."""
        if not getattr(self.args, "init", None):
            return False

        model.load_state_dict(load_state_dict(self.args.init), strict=True)
        return True

    def arch(self) -> dict[str, Any]:
        """The ``{"name": ..., "kwargs": ...}`` manifest description of :meth:`build_model`'s
        network (see :mod:`medviz.models.nets`)."""
        raise NotImplementedError

    @abstractmethod
    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """Forward one training batch and return the scalar loss tensor."""

    @abstractmethod
    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        """Evaluate on the validation loader (model already in eval mode, under
        ``torch.inference_mode``); return metrics including :attr:`monitor`."""

    def assembled_result(self) -> Any:
        """A finished :class:`~medviz.train.engine.TrainResult` that needs no training (e.g. an
        ensemble of earlier runs), which the command line exports as is; None (default): train."""
        return None

    def batch_size(self, batch: dict[str, Any]) -> int:
        """Number of samples in a batch (for throughput)."""
        return int(next(iter(v for v in batch.values() if hasattr(v, "shape"))).shape[0])

    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        """Write the selected model's weights (safetensors), model card and any task files into
        ``out_dir``; return the manifest entry (without ``sha256``, which the engine adds).
        ``command`` is the exact command line that reproduces the run, for the model card."""
        raise NotImplementedError
