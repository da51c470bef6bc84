"""Atomic checkpoints: write to a temp file in the same folder, fsync, then rename.

A kill at any moment leaves either the previous complete checkpoint or the new complete one,
never a partial file under the final name. Checkpoints hold only tensors and plain Python values,
so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from medviz.types import MedvizError

LAST = "last.pt"


class CheckpointError(MedvizError):
    """A checkpoint is missing, truncated or does not fit the model."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); raise :class:`CheckpointError` if unusable."""
    import pickle

    import torch

    if not path.exists():
        raise CheckpointError(f"No checkpoint to resume from at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as e:
        raise CheckpointError(f"Checkpoint {path} is unreadable: {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
        raise CheckpointError(f"Checkpoint {path} lacks model/epoch fields")
    return ckpt
