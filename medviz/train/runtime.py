"""Runtime helpers of the training engine: distributed setup, devices, seeding, data loaders.

Kept apart from :mod:`medviz.train.engine` so the loop itself stays readable.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from medviz.train.task import TaskData


@dataclass
class Dist:
    """Where this process sits in a ``torchrun`` job (``world == 1``: plain single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_mean(self, value: Any) -> Any:
        """Average a tensor over the processes (identity when alone)."""
        if self.world == 1:
            return value
        import torch.distributed as tdist

        value = value.detach().clone()
        tdist.all_reduce(value)
        return value / self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (identity when alone)."""
        if self.world == 1:
            return obj
        import torch.distributed as tdist

        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self, synchronise: bool = True) -> None:
        """Leave the process group. ``synchronise``: wait at a barrier first, so no rank tears the
        group down while another still finishes its last collective (with gloo that race can abort
        the slower process); skipped after an error, when the other ranks may never arrive."""
        if self.owns_group:
            import torch.distributed as tdist

            if tdist.is_initialized():
                if synchronise and self.world > 1:
                    tdist.barrier()
                tdist.destroy_process_group()


def init_distributed(device: str) -> Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``).

    The backend is nccl on CUDA and gloo on CPU; the group is left open if the caller made it.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    owns = not tdist.is_initialized()
    if owns:
        tdist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")), owns_group=owns)


def memory_mb(device: str) -> float:
    """Peak allocated GPU memory (CUDA) or resident memory of this process (CPU), in MB."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def to_device(batch: dict[str, Any], device: str, channels_last: bool) -> dict[str, Any]:
    """Move every tensor of a dict batch to ``device`` (4D float tensors channels-last if asked)."""
    import torch

    if not isinstance(batch, dict):
        raise TypeError(f"training batches must be dicts of tensors, not {type(batch).__name__}")
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def lr_factor(scheduler: str, epochs: int):
    """Per-epoch multiplier of the peak learning rate for ``LambdaLR``."""
    if scheduler not in {"cosine", "step", "none"}:
        raise ValueError(f"scheduler must be 'cosine', 'step' or 'none', not {scheduler!r}")

    def f(epoch: int) -> float:
        if scheduler == "cosine":
            t = min(epoch / max(epochs, 1), 1.0)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
        if scheduler == "step":
            return 0.1 ** sum(epoch >= epochs * m for m in (0.5, 0.75))
        return 1.0

    return f


def seed_epoch(data: TaskData, seed: int, epoch: int, rank: int) -> None:
    """Seed every RNG (torch, numpy, random, MONAI transforms) for one epoch of one rank.

    Epoch ``e`` of rank ``r`` always gets the same seed, so a resumed run replays the same data
    order and augmentation as an uninterrupted one.
    """
    from monai.data.utils import set_rnd
    from monai.utils import set_determinism

    s = seed + epoch * 1009 + rank
    set_determinism(seed=s)
    transform = getattr(data.train, "transform", None)
    if transform is not None and hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=s)
    else:  # wrapped or composite data sets: seed every randomizable part MONAI can find
        set_rnd(data.train, seed=s)


def make_loaders(data: TaskData, batch_size: int, num_workers: int, device: str, dist: Dist, seed: int):
    """Training loader (sharded with ``DistributedSampler``) and validation loader.

    MONAI loaders are used so MONAI datasets (``Dataset``, ``CacheDataset``, ``PersistentDataset``)
    and their random transforms work with ``num_workers > 0`` (per-worker seeding). With
    ``num_workers == 0`` and ``data.loader`` ``"thread"`` (or ``"auto"`` on a ``CacheDataset``), a
    ``ThreadDataLoader`` prepares the next batch in a background thread while the model trains.

    Returns:
        ``(sampler, train_loader, val_loader)``.
    """
    from monai.data import CacheDataset, DataLoader, ThreadDataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(data.train, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed)
    kind = getattr(data, "loader", "auto")
    threaded = num_workers == 0 and (kind == "thread" or (kind == "auto" and isinstance(data.train, CacheDataset)))
    cls = ThreadDataLoader if threaded else DataLoader
    loader = cls(data.train, batch_size=batch_size // dist.world, sampler=sampler, num_workers=num_workers,
                 pin_memory=device.startswith("cuda"), drop_last=False)
    # No persistent workers: fresh workers each epoch inherit that epoch's seeds (exact resume).
    val_loader = DataLoader(data.val, batch_size=max(1, batch_size), shuffle=False, num_workers=num_workers)
    return sampler, loader, val_loader


def sample_images(data: TaskData, k: int = 8) -> tuple[list[Any], list[str]]:
    """Up to ``k`` small 2D images for the summary grid: the task's own ``samples``, else the
    ``"image"`` of the first validation items (first channel, or RGB when there are 3), with the
    ``"label"`` as caption when it is a scalar. Returns ``([], [])`` when the items do not fit."""
    import numpy as np

    if data.samples:
        return list(data.samples)[:k], list(data.sample_captions)[:k]
    images, captions = [], []
    try:
        for i in range(min(k, len(data.val))):
            item = data.val[i]
            x = np.asarray(item["image"].detach().cpu() if hasattr(item["image"], "detach") else item["image"])
            if np.iscomplexobj(x):
                x = np.abs(x)
            if x.ndim == 3:
                x = np.moveaxis(x[:3], 0, -1) if x.shape[0] == 3 else x[0]
            if x.ndim not in (2, 3):
                return [], []
            label = item.get("label")
            label = np.asarray(label.detach().cpu() if hasattr(label, "detach") else label) if label is not None else None
            images.append(x.astype(np.float32))
            captions.append(str(label.item()) if label is not None and label.size == 1 else f"val {i}")
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        return [], []
    return images, captions
