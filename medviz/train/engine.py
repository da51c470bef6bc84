"""The one training loop for every model family (see :mod:`medviz.train.tasks.base`).

Generic concerns live here: device choice with CPU fallback, seeding, AMP and channels-last on
CUDA, DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on GPU; sharded data; rank 0
validates, logs and checkpoints), AdamW with a cosine or step schedule, validation every epoch,
early stopping on the task's monitored metric, atomic checkpoints with ``resume``, a stop request
checked every iteration, NaN/Inf loss detection, and events for listeners.

Resume semantics: a checkpoint is written after every completed epoch (``last.pt``) and the best
weights so far (``best.safetensors``). A run killed or stopped mid-epoch resumes at the start of the
interrupted epoch from the last completed one; epochs are seeded by ``seed + epoch``, so a resumed
run replays the same data order and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medviz.train.checkpoint import LAST, CheckpointError, atomic_torch_save, load_checkpoint
from medviz.train.events import Listener, TrainEvent
from medviz.train.tasks.base import TaskData, TrainTask
from medviz.types import MedvizError

BEST = "best.safetensors"


class TrainingError(MedvizError):
    """Training cannot go on (NaN loss, unusable data, bad checkpoint...)."""


@dataclass
class TrainConfig:
    """Hyperparameters shared by every task.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: global batch size (split across ``torchrun`` processes).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        scheduler: ``"cosine"`` (per-epoch cosine to 1 % of ``lr``), ``"step"`` (x0.1 at 50 % and
            75 % of the epochs) or ``"none"``.
        patience: early stopping after this many epochs without improvement (0: off).
        seed: base seed; epoch ``e`` is seeded with ``seed + e``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        amp: mixed precision on CUDA (ignored on CPU).
        num_workers: DataLoader workers (0: load in the training process).
        max_steps_per_epoch: cap on optimiser steps per epoch (``None``: whole data set).
        grad_clip: clip the gradient norm to this value (``None``: off).
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced; ``model`` holds the best weights, in eval mode."""

    status: str  # "completed", "early_stopped" or "stopped"
    model: Any
    best_epoch: int
    best_metric: float
    monitor: str
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def _memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _to_device(batch: dict[str, Any], device: str, channels_last: bool) -> dict[str, Any]:
    import torch

    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def _lr_lambda(cfg: TrainConfig):
    def f(epoch: int) -> float:
        if cfg.scheduler == "cosine":
            t = min(epoch / max(cfg.epochs, 1), 1.0)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.scheduler == "step":
            return 0.1 ** sum(epoch >= cfg.epochs * m for m in (0.5, 0.75))
        return 1.0

    return f


def _seed_epoch(data: TaskData, seed: int, epoch: int, rank: int) -> None:
    """Seed every RNG (torch, numpy, random, MONAI transforms) for one epoch of one rank."""
    from monai.utils import set_determinism

    s = seed + epoch * 1009 + rank
    set_determinism(seed=s)
    transform = getattr(data.train, "transform", None)
    if transform is not None and hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=s)


class _Emitter:
    def __init__(self, listeners: Iterable[Listener], enabled: bool) -> None:
        self.listeners = list(listeners)
        self.enabled = enabled

    def __call__(self, event: TrainEvent) -> None:
        if self.enabled:
            for listener in self.listeners:
                listener(event)


def train(
    task: TrainTask,
    cfg: TrainConfig,
    run_dir: Path,
    listeners: Iterable[Listener] = (),
    stop_event: threading.Event | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``task`` under ``cfg``; checkpoints go to ``run_dir``.

    Args:
        task: the model family plugin (data, network, loss, metrics).
        cfg: shared hyperparameters.
        run_dir: folder for ``last.pt`` and ``best.safetensors`` (created).
        listeners: callables receiving :class:`TrainEvent` (rank 0 only).
        stop_event: when set, training stops after the current iteration (status ``"stopped"``).
        resume: continue from ``run_dir/last.pt`` (error if there is none).

    Returns:
        A :class:`TrainResult` whose model holds the best validation weights.

    Raises:
        TrainingError: NaN/Inf loss (the last good checkpoint is kept), unusable data.
        CheckpointError: ``resume`` without a usable checkpoint.
    """
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from medviz.config import select_device
    from medviz.models.weights import load_state_dict, save_state_dict

    device = select_device(cfg.device)
    dist = _init_distributed(device)
    if device == "cuda" and dist.world > 1:
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(dist.local_rank)
    emit = _Emitter(listeners, dist.main)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stop_event = stop_event or threading.Event()

    data = task.build_data()
    if len(data.train) == 0 or len(data.val) == 0:
        raise TrainingError(f"Empty split: {len(data.train)} training and {len(data.val)} validation samples")
    if cfg.batch_size % dist.world:
        raise TrainingError(f"batch size {cfg.batch_size} must be divisible by the {dist.world} processes")

    torch.manual_seed(cfg.seed)
    model = task.build_model().to(device)
    channels_last = device.startswith("cuda") and getattr(task, "channels_last", True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    use_amp = cfg.amp and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best_metric, best_epoch, bad_epochs = 0, None, -1, 0
    history: list[dict[str, Any]] = []
    if resume:
        ckpt = load_checkpoint(run_dir / LAST)
        try:
            model.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"Checkpoint {run_dir / LAST} does not fit this model: {e}") from e
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if use_amp and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_metric, best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
        bad_epochs, history = ckpt.get("bad_epochs", 0), list(ckpt.get("history", []))

    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)

    sampler = DistributedSampler(data.train, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(
        data.train,
        batch_size=cfg.batch_size // dist.world,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.startswith("cuda"),
        drop_last=False,
    )
    val_loader = DataLoader(data.val, batch_size=max(1, cfg.batch_size), shuffle=False, num_workers=cfg.num_workers)
    steps_per_epoch = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)

    better = (lambda a, b: a > b) if task.mode == "max" else (lambda a, b: a < b)
    t_run = time.perf_counter()
    emit(TrainEvent("start", epoch=start_epoch, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                    metrics={"summary": data.summary, "config": asdict(cfg), "device": device, "world": dist.world}))
    status = "completed"
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        _seed_epoch(data, cfg.seed, epoch, dist.rank)
        sampler.set_epoch(epoch)
        net.train()
        t_epoch, seen, loss_sum, n_steps = time.perf_counter(), 0, 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            if stop_event.is_set():
                status = "stopped"
                break
            batch = _to_device(batch, device, channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                loss = task.training_loss(net, batch)
            if not torch.isfinite(loss.detach()).item():
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    f"the last good checkpoint is kept in {run_dir}"
                )
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            n = task.batch_size(batch) * dist.world
            seen += n
            loss_sum += loss.item()
            n_steps += 1
            emit(TrainEvent("step", epoch=epoch, step=step + 1, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                            metrics={"loss": loss.item()}, lr=lr,
                            throughput=seen / max(time.perf_counter() - t_epoch, 1e-9),
                            memory_mb=_memory_mb(device), elapsed_s=time.perf_counter() - t_run))
        if status == "stopped":
            break
        scheduler.step()

        # Validation, selection and checkpoint on rank 0; every rank learns whether to stop.
        should_stop = False
        if dist.main:
            model.eval()
            with torch.inference_mode():
                metrics = task.validate(model, val_loader, device)
            metrics = {"train_loss": loss_sum / max(n_steps, 1), **{k: float(v) for k, v in metrics.items()}}
            current = metrics[task.monitor]
            improved = best_metric is None or better(current, best_metric)
            if improved:
                best_metric, best_epoch, bad_epochs = current, epoch, 0
                save_state_dict(model, run_dir / BEST)
            else:
                bad_epochs += 1
            epoch_time = time.perf_counter() - t_epoch
            history.append({"epoch": epoch + 1, "lr": lr, "seconds": epoch_time,
                            "throughput": seen / max(epoch_time, 1e-9), **metrics})
            atomic_torch_save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                 "epoch": epoch + 1, "best_metric": best_metric, "best_epoch": best_epoch,
                 "bad_epochs": bad_epochs, "history": history, "config": asdict(cfg), "task": task.name},
                run_dir / LAST,
            )
            emit(TrainEvent("epoch", epoch=epoch, step=n_steps, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                            metrics=metrics, lr=lr, throughput=seen / max(epoch_time, 1e-9),
                            memory_mb=_memory_mb(device), elapsed_s=time.perf_counter() - t_run))
            should_stop = cfg.patience > 0 and bad_epochs >= cfg.patience
        if dist.world > 1:
            import torch.distributed as tdist

            flag = [should_stop]
            tdist.broadcast_object_list(flag, src=0)
            should_stop = bool(flag[0])
        if should_stop:
            status = "early_stopped"
            break

    if (run_dir / BEST).exists():
        model.load_state_dict(load_state_dict(run_dir / BEST), strict=True)
    model.eval()
    message = {"completed": f"finished {cfg.epochs} epochs",
               "early_stopped": f"early stop after epoch {epoch + 1}",
               "stopped": f"stopped by request during epoch {epoch + 1}"}[status]
    emit(TrainEvent("stopped" if status == "stopped" else "end", epoch=epoch, epochs=cfg.epochs,
                    metrics={"best_epoch": best_epoch + 1, "best_metric": best_metric, "monitor": task.monitor},
                    elapsed_s=time.perf_counter() - t_run, message=message))
    return TrainResult(status=status, model=model, best_epoch=best_epoch + 1,
                       best_metric=float("nan") if best_metric is None else float(best_metric),
                       monitor=task.monitor, history=history, run_dir=run_dir)


def export_model(task: TrainTask, result: TrainResult, out_dir: Path, name: str, command: str,
                 register: bool = False) -> dict[str, Any]:
    """Write weights + model card via the task, add the sha256 and optionally register the model.

    Args:
        out_dir: folder receiving ``<name>.safetensors`` and ``<name>.md`` (e.g. ``weights/``).
        register: add/replace the entry in ``out_dir/manifest.json``.

    Returns:
        The manifest entry.
    """
    from medviz.models.registry import sha256_file, upsert_entry

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"best_epoch": result.best_epoch, "monitor": result.monitor, "best_val": result.best_metric,
               "epochs_run": len(result.history), "status": result.status}
    entry = task.export(result.model, out_dir, name, metrics, command)
    entry.setdefault("name", name)
    entry.setdefault("task", task.name)
    entry["sha256"] = sha256_file(out_dir / entry["file"])
    if register:
        upsert_entry(entry, out_dir)
    return entry
