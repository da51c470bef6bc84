"""The one training loop for every model family (see :mod:`medviz.train.task`).

Generic concerns live here: device choice with CPU fallback, seeding, AMP and channels-last on
CUDA, DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on GPU; sharded data; rank 0
validates, logs and checkpoints), AdamW with a cosine or step schedule, validation every epoch,
early stopping on the task's monitored metric, atomic checkpoints with ``resume``, a stop request
checked every iteration, NaN/Inf loss detection (averaged over processes, so every rank stops),
a clear error on out-of-memory, MONAI loaders (``ThreadDataLoader`` for cached data sets,
``DataLoader`` with per-worker seeding for ``num_workers > 0``; see :mod:`medviz.train.runtime`),
and events for listeners.

Resume semantics: a checkpoint is written after every completed epoch (``last.pt``) and the best
weights so far (``best.safetensors``). A run killed or stopped mid-epoch resumes at the start of the
interrupted epoch from the last completed one; epochs are seeded by ``seed + epoch``, so a resumed
run replays the same data order and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medviz.config import select_device
from medviz.models.registry import sha256_file, upsert_entry
from medviz.models.weights import load_state_dict, save_state_dict
from medviz.train.checkpoint import LAST, CheckpointError, atomic_torch_save, load_checkpoint
from medviz.train.events import Listener, TrainEvent
from medviz.train.runtime import (
    Dist,
    init_distributed,
    lr_factor,
    make_loaders,
    memory_mb,
    sample_images,
    seed_epoch,
    to_device,
)
from medviz.train.task import TrainTask
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
        skip_nonfinite: optimiser steps whose loss or gradients are NaN/Inf that may be skipped
            (no weight update) before the run fails; 0 (default): fail at the first one. Skips
            are counted in each epoch's history (``skipped_steps``). Under AMP the gradient scaler
            already skips steps with Inf gradients; this covers the loss and CPU/fp32 runs.
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
    skip_nonfinite: int = 0


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


class _Emitter:
    def __init__(self, listeners: Iterable[Listener], enabled: bool) -> None:
        self.listeners = list(listeners)
        self.enabled = enabled

    def __call__(self, event: TrainEvent) -> None:
        if self.enabled:
            for listener in self.listeners:
                listener(event)


def _clean_run_dir(run_dir: Path, fresh: bool) -> None:
    """Remove temp files a killed writer left behind; on a fresh run also the old checkpoints."""
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    if fresh:
        for name in (LAST, BEST):
            (run_dir / name).unlink(missing_ok=True)


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
        run_dir: folder for ``last.pt`` and ``best.safetensors`` (created; a fresh run replaces
            the checkpoints of an earlier run there).
        listeners: callables receiving :class:`TrainEvent` (rank 0 only). On failure they get an
            ``"error"`` event before the exception propagates.
        stop_event: when set, training stops before the next iteration without saving the
            partial epoch (status ``"stopped"``; ``resume`` restarts that epoch). Single process only.
        resume: continue from ``run_dir/last.pt`` (error if there is none).

    Returns:
        A :class:`TrainResult` whose model holds the best validation weights, in eval mode.

    Raises:
        TrainingError: NaN/Inf loss (with epoch and step; the last good checkpoint is kept), out of
            GPU memory, unusable data, a task that does not report its monitored metric.
        CheckpointError: ``resume`` without a usable checkpoint.
    """
    try:
        device = select_device(cfg.device)
    except RuntimeError as e:
        raise TrainingError(str(e)) from e
    dist = init_distributed(device)
    emit = _Emitter(listeners, dist.main)
    finished = False
    try:
        result = _train(task, cfg, Path(run_dir), emit, stop_event or threading.Event(), resume, device, dist)
        finished = True
        return result
    except Exception as e:  # tell listeners (progress bar, page) why, then let the caller handle it
        emit(TrainEvent("error", message=f"{type(e).__name__}: {e}" if not isinstance(e, MedvizError) else str(e)))
        raise
    finally:
        dist.close(synchronise=finished)


def _train(task: TrainTask, cfg: TrainConfig, run_dir: Path, emit: _Emitter, stop_event: threading.Event,
           resume: bool, device: str, dist: Dist) -> TrainResult:
    import torch

    if device == "cuda" and dist.world > 1:
        device = f"cuda:{dist.local_rank}"
        torch.cuda.set_device(dist.local_rank)
    if cfg.batch_size < 1 or cfg.batch_size % dist.world:
        raise TrainingError(f"batch size {cfg.batch_size} must be a positive multiple of the {dist.world} processes")
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _clean_run_dir(run_dir, fresh=not resume)
    ckpt = load_checkpoint(run_dir / LAST) if resume else None
    if ckpt is not None and ckpt.get("task") not in (None, task.name):
        raise CheckpointError(f"{run_dir / LAST} belongs to task {ckpt.get('task')!r}, not {task.name!r}")

    data = task.build_data()
    if len(data.train) == 0 or len(data.val) == 0:
        raise TrainingError(f"Empty split: {len(data.train)} training and {len(data.val)} validation samples")

    torch.manual_seed(cfg.seed)
    model = task.build_model().to(device)
    channels_last = device.startswith("cuda") and getattr(task, "channels_last", True)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.scheduler, cfg.epochs))
    use_amp = cfg.amp and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best_metric, best_epoch, bad_epochs, done = 0, None, -1, 0, None
    history: list[dict[str, Any]] = []
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"], strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"Checkpoint {run_dir / LAST} does not fit this model: {e}") from e
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if use_amp and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best_metric, best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
        bad_epochs, history, done = ckpt.get("bad_epochs", 0), list(ckpt.get("history", [])), ckpt.get("done")

    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)
    sampler, loader, val_loader = make_loaders(data, cfg.batch_size, cfg.num_workers, device, dist, cfg.seed)
    steps_per_epoch = len(loader) if cfg.max_steps_per_epoch is None else min(len(loader), cfg.max_steps_per_epoch)

    better = (lambda a, b: a > b) if task.mode == "max" else (lambda a, b: a < b)
    t_run = time.perf_counter()
    samples, captions = sample_images(data) if dist.main else ([], [])
    emit(TrainEvent("start", epoch=start_epoch, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                    metrics={"summary": data.summary, "samples": samples, "sample_captions": captions,
                             "config": asdict(cfg),
                             "device": device, "world": dist.world, "resumed": resume, "history": list(history),
                             "task": task.name, "monitor": task.monitor, "mode": task.mode}))
    status = done or "completed"
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs if done is None else start_epoch):
        seed_epoch(data, cfg.seed, epoch, dist.rank)
        sampler.set_epoch(epoch)
        net.train()
        t_epoch, seen, loss_sum, n_steps, skipped = time.perf_counter(), 0, 0.0, 0, 0
        lr = optimizer.param_groups[0]["lr"]
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            if stop_event.is_set():
                status = "stopped"
                break
            loss = _step(task, net, model, batch, optimizer, scaler, cfg, device, channels_last, use_amp, dist,
                         epoch, step, run_dir)
            seen += task.batch_size(batch) * dist.world
            if loss is None:  # non-finite loss or gradients: no update (cfg.skip_nonfinite)
                skipped += 1
                total_skips = skipped + sum(h.get("skipped_steps", 0) for h in history)
                if total_skips > cfg.skip_nonfinite:
                    raise TrainingError(
                        f"{total_skips} optimiser steps with a non-finite loss or gradient (the last at epoch "
                        f"{epoch + 1}, step {step + 1}; --skip-nonfinite {cfg.skip_nonfinite}); lower the learning "
                        f"rate or check the data; the last good checkpoint is kept in {run_dir}")
                continue
            loss_sum += loss
            n_steps += 1
            emit(TrainEvent("step", epoch=epoch, step=step + 1, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                            metrics={"loss": loss}, lr=lr,
                            throughput=seen / max(time.perf_counter() - t_epoch, 1e-9),
                            memory_mb=memory_mb(device), elapsed_s=time.perf_counter() - t_run))
        if status == "stopped":
            break
        scheduler.step()

        # Validation, selection and checkpoint on rank 0; every rank learns whether to stop.
        should_stop = False
        if dist.main:
            model.eval()
            with torch.inference_mode():
                metrics = task.validate(model, val_loader, device)
            if task.monitor not in metrics:
                raise TrainingError(f"task {task.name!r} did not report its monitored metric {task.monitor!r} "
                                    f"(got {sorted(metrics)})")
            metrics = {"train_loss": loss_sum / max(n_steps, 1), **{k: float(v) for k, v in metrics.items()}}
            if skipped:
                metrics["skipped_steps"] = skipped
            current = metrics[task.monitor]
            if math.isfinite(current) and (best_metric is None or better(current, best_metric)):
                best_metric, best_epoch, bad_epochs = current, epoch, 0
                save_state_dict(model, run_dir / BEST)
            else:
                bad_epochs += 1
            should_stop = cfg.patience > 0 and bad_epochs >= cfg.patience
            epoch_time = time.perf_counter() - t_epoch
            history.append({"epoch": epoch + 1, "lr": lr, "seconds": epoch_time,
                            "throughput": seen / max(epoch_time, 1e-9), **metrics})
            atomic_torch_save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                 "epoch": epoch + 1, "best_metric": best_metric, "best_epoch": best_epoch,
                 "bad_epochs": bad_epochs, "history": history, "config": asdict(cfg), "task": task.name,
                 "done": "early_stopped" if should_stop else None},
                run_dir / LAST,
            )
            emit(TrainEvent("epoch", epoch=epoch, step=n_steps, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                            metrics=metrics, lr=lr, throughput=seen / max(epoch_time, 1e-9),
                            memory_mb=memory_mb(device), elapsed_s=time.perf_counter() - t_run))
        if dist.broadcast(should_stop):
            status = "early_stopped"
            break

    if (run_dir / BEST).exists():
        model.load_state_dict(load_state_dict(run_dir / BEST), strict=True)
    model.eval()
    message = {"completed": f"finished {cfg.epochs} epochs",
               "early_stopped": f"early stop after epoch {epoch + 1}",
               "stopped": f"stopped by request during epoch {epoch + 1}; resume restarts that epoch"}[status]
    emit(TrainEvent("stopped" if status == "stopped" else "end", epoch=epoch, epochs=cfg.epochs,
                    metrics={"best_epoch": best_epoch + 1, "best_metric": best_metric, "monitor": task.monitor},
                    elapsed_s=time.perf_counter() - t_run, message=message))
    return TrainResult(status=status, model=model, best_epoch=best_epoch + 1,
                       best_metric=float("nan") if best_metric is None else float(best_metric),
                       monitor=task.monitor, history=history, run_dir=run_dir)


def _step(task: TrainTask, net: Any, model: Any, batch: dict[str, Any], optimizer: Any, scaler: Any,
          cfg: TrainConfig, device: str, channels_last: bool, use_amp: bool, dist: Dist, epoch: int, step: int,
          run_dir: Path) -> float | None:
    """One optimiser step; returns the loss averaged over the processes, or None when the step was
    skipped because its loss or gradients were not finite (only with ``cfg.skip_nonfinite``)."""
    import torch

    try:
        batch = to_device(batch, device, channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            loss = task.training_loss(net, batch)
        mean_loss = dist.all_mean(loss.detach().float())  # every rank sees a NaN on any rank
        if not torch.isfinite(mean_loss).item():
            if cfg.skip_nonfinite:
                optimizer.zero_grad(set_to_none=True)
                return None
            raise TrainingError(
                f"loss became {mean_loss.item()} at epoch {epoch + 1}, step {step + 1}; lower the learning rate "
                f"or check the data; the last good checkpoint is kept in {run_dir}"
            )
        scaler.scale(loss).backward()
        if cfg.skip_nonfinite and not use_amp:  # (the AMP scaler skips Inf gradients itself)
            bad = any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in model.parameters())
            if dist.all_mean(torch.tensor(float(bad), device=device)).item() > 0:
                optimizer.zero_grad(set_to_none=True)
                return None
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
    except torch.OutOfMemoryError as e:
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        half = max(dist.world, cfg.batch_size // 2 // dist.world * dist.world)
        raise TrainingError(
            f"out of {'GPU' if device.startswith('cuda') else 'CPU'} memory at batch size {cfg.batch_size} "
            f"(epoch {epoch + 1}, step {step + 1}); try --batch-size {half}, a smaller image size, or --device cpu"
        ) from e
    return mean_loss.item()


def export_model(task: TrainTask, result: TrainResult, out_dir: Path, name: str, command: str,
                 register: bool = False) -> dict[str, Any]:
    """Write weights + model card via the task, add the sha256 (of each shard when the task split the
    weights: ``entry["shards"]`` = ``[{"file": ...}, ...]``, the first being ``entry["file"]``) and optionally register the model.

    Args:
        out_dir: folder receiving ``<name>.safetensors`` and ``<name>.md`` (e.g. ``weights/``).
        register: add/replace the entry in ``out_dir/manifest.json``.

    Returns:
        The manifest entry.
    """
    if result.best_epoch < 1:
        raise TrainingError("the run has no completed epoch: there are no selected weights to export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"best_epoch": result.best_epoch, "monitor": result.monitor, "best_val": result.best_metric,
               "epochs_run": len(result.history), "status": result.status}
    entry = task.export(result.model, out_dir, name, metrics, command)
    entry.setdefault("name", name)
    entry.setdefault("task", task.name)
    for shard in entry.get("shards") or []:
        shard["sha256"] = sha256_file(out_dir / shard["file"])
    entry["sha256"] = sha256_file(out_dir / entry["file"])
    if register:
        upsert_entry(entry, out_dir)
    return entry
