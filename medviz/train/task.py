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

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from medviz.models.weights import load_state_dict
from medviz.options import option


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


@dataclass(frozen=True)
class NoOptions:
    """Options of a task that has none of its own."""


def init_option() -> Any:
    """The ``init`` field (``--init WEIGHTS``) of a task that can fine-tune (see :meth:`TrainTask.load_init`)."""
    return option(None, label="Start from weights (fine-tuning)",
                  help="start from these safetensors weights (fine-tuning)")


def init_note_option() -> Any:
    """The ``init_note`` field (``--init-note TEXT``): provenance of ``init``, written into the model card."""
    return option("", label="Provenance of the start weights",
                  help="where the start weights came from, written into the model card")


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
    #: the task's options dataclass (field metadata: label, help, range; see :mod:`medviz.options`)
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None, *, data: Path | str | None = None, seed: int = 0) -> None:
        """
        Args:
            options: an instance of :attr:`Options` (None: its defaults).
            data: data folder or file (None: the task's default data set).
            seed: the run's base seed (``TrainConfig.seed``), for tasks that split data randomly.
        """
        self.options = self.Options() if options is None else options
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, not {type(self.options).__name__}")
        self.data_path = Path(data) if data else None
        self.seed = seed

    @abstractmethod
    def build_data(self) -> TaskData:
        """Load and describe the data; raise ``medviz.types.MedvizError`` with a clear message
        for unusable data (missing files, empty splits, wrong shapes)."""

    @abstractmethod
    def build_model(self) -> Any:
        """Return a freshly initialised ``torch.nn.Module`` (a MONAI network)."""

    def load_init(self, model: Any) -> bool:
        """Load the ``init`` weights of the options (safetensors, strict) into ``model``; False when
        the options name none (see :func:`init_option`)."""
        init = getattr(self.options, "init", None)
        if not init:
            return False
        model.load_state_dict(load_state_dict(init), strict=True)
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

    def parameter_groups(self, model: Any, lr: float) -> Any:
        """What the engine's one AdamW optimises: ``model.parameters()`` (default) or a list of parameter
        groups (``[{"params": ..., "lr": ...}, ...]``), e.g. a GAN's generator and discriminator at their own
        learning rates; ``lr`` is the run's peak learning rate. The schedule scales every group alike."""
        return model.parameters()

    def step_metrics(self) -> dict[str, float]:
        """Scalars of the last training step besides its loss (e.g. a GAN's ``generator_loss`` and
        ``discriminator_loss``), streamed with every step event and averaged into the epoch's history as
        ``train_<name>``, so the Training page draws each as its own curve; ``{}`` (default): none. Values are
        those of this process (rank 0 under ``torchrun``), not averaged over processes."""
        return {}

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
