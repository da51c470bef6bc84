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
from medviz.options import option
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
from medviz.train.task import TaskData, TrainTask
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

    epochs: int = option(20, label="Epochs", min=1, max=100_000, help="maximum number of epochs")
    batch_size: int = option(32, label="Batch size", min=1, max=65_536,
                             help="global batch size (split across torchrun processes)")
    lr: float = option(1e-3, label="Learning rate", min=0.0, max=10.0, help="peak learning rate of AdamW")
    weight_decay: float = option(1e-4, label="Weight decay", min=0.0, max=10.0, advanced=True,
                                 help="AdamW weight decay")
    scheduler: str = option("cosine", label="Learning-rate schedule", choices=("cosine", "step", "none"),
                            help="cosine: per-epoch cosine to 1 % of the learning rate; step: x0.1 at 50 % and 75 %")
    patience: int = option(0, label="Early-stop patience (epochs, 0: off)", min=0,
                           help="early stopping patience in epochs (0: off)")
    seed: int = option(0, label="Seed", min=0, max=2**32 - 1, help="base seed; epoch e is seeded with seed + e")
    device: str = option("auto", label="Device", choices=("auto", "cpu", "cuda"))
    amp: bool = option(True, label="Mixed precision on CUDA", advanced=True,
                       help="mixed precision on CUDA, ignored on CPU")
    num_workers: int = option(0, label="Data-loader workers", min=0, max=256, advanced=True,
                              help="DataLoader worker processes (0: load in the training process)")
    max_steps_per_epoch: int | None = option(None, label="Max steps per epoch (empty: all)", min=1,
                                             help="cap on optimiser steps per epoch (default: the whole data set)")
    grad_clip: float | None = option(None, label="Gradient-norm clip (empty: off)", min=0.0, advanced=True,
                                     help="clip the gradient norm (default: off)")
    skip_nonfinite: int = option(0, label="Non-finite steps to skip", min=0, metavar="N", advanced=True,
                                 help="skip up to N optimiser steps with a NaN/Inf loss or gradient instead of "
                                      "failing (default 0)")


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


@dataclass
class _Run:
    """The state of one training run, shared by the phases of :func:`_train`.

    ``model`` is the bare network (checkpoints, validation, export); ``net`` is what the loss is
    computed through (``model`` itself, or its ``DistributedDataParallel`` wrapper under ``torchrun``).
    ``best_epoch`` is 0-based (-1: none yet); ``done`` is the final status of a finished run that was
    resumed (nothing left to train).
    """

    task: TrainTask
    cfg: TrainConfig
    run_dir: Path
    emit: _Emitter
    stop_event: threading.Event
    device: str
    dist: Dist
    data: TaskData
    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    channels_last: bool
    use_amp: bool
    net: Any = None
    sampler: Any = None
    loader: Any = None
    val_loader: Any = None
    steps_per_epoch: int = 0
    start_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    done: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    t_run: float = 0.0

    def better(self, current: float) -> bool:
        """Whether ``current`` improves on the best monitored value so far (NaN never does)."""
        if not math.isfinite(current):
            return False
        if self.best_metric is None:
            return True
        return current > self.best_metric if self.task.mode == "max" else current < self.best_metric

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_run


@dataclass
class _EpochStats:
    """What the training half of one epoch produced."""

    lr: float
    t_start: float
    seen: int = 0
    loss_sum: float = 0.0
    n_steps: int = 0
    skipped: int = 0
    stopped: bool = False
    parts: dict[str, float] = field(default_factory=dict)  # sums of the task's step metrics

    def part_means(self) -> dict[str, float]:
        """The epoch means of the task's step metrics, as ``train_<name>``."""
        return {f"train_{k}": v / max(self.n_steps, 1) for k, v in self.parts.items()}

    def seconds(self) -> float:
        return time.perf_counter() - self.t_start


def _train(task: TrainTask, cfg: TrainConfig, run_dir: Path, emit: _Emitter, stop_event: threading.Event,
           resume: bool, device: str, dist: Dist) -> TrainResult:
    run = _setup(task, cfg, run_dir, emit, stop_event, resume, device, dist)
    _announce(run, resume)
    status = run.done or "completed"
    epoch = run.start_epoch
    for epoch in range(run.start_epoch, cfg.epochs if run.done is None else run.start_epoch):
        stats = _train_epoch(run, epoch)
        if stats.stopped:
            status = "stopped"
            break
        run.scheduler.step()
        # Validation, selection and checkpoint on rank 0; every rank learns whether to stop.
        should_stop = _validate_select_checkpoint(run, epoch, stats) if dist.main else False
        if dist.broadcast(should_stop):
            status = "early_stopped"
            break
    return _finish(run, status, epoch)


def _setup(task: TrainTask, cfg: TrainConfig, run_dir: Path, emit: _Emitter, stop_event: threading.Event,
           resume: bool, device: str, dist: Dist) -> _Run:
    """Check the configuration, prepare the run folder, build data, model, optimiser and loaders,
    and restore them from ``last.pt`` when resuming."""
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
    optimizer = torch.optim.AdamW(task.parameter_groups(model, cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.startswith("cuda")
    run = _Run(task=task, cfg=cfg, run_dir=run_dir, emit=emit, stop_event=stop_event, device=device, dist=dist,
               data=data, model=model, optimizer=optimizer,
               scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.scheduler, cfg.epochs)),
               scaler=torch.amp.GradScaler("cuda", enabled=use_amp), channels_last=channels_last, use_amp=use_amp)
    if ckpt is not None:
        _restore(run, ckpt)

    run.net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        run.net = DDP(model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)
    run.sampler, run.loader, run.val_loader = make_loaders(data, cfg.batch_size, cfg.num_workers, device, dist,
                                                           cfg.seed)
    run.steps_per_epoch = len(run.loader) if cfg.max_steps_per_epoch is None else min(len(run.loader),
                                                                                       cfg.max_steps_per_epoch)
    return run


def _restore(run: _Run, ckpt: dict[str, Any]) -> None:
    """Load weights, optimiser, schedule, scaler and selection state from a ``last.pt`` checkpoint."""
    try:
        run.model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"Checkpoint {run.run_dir / LAST} does not fit this model: {e}") from e
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if run.use_amp and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    run.start_epoch, run.best_metric, run.best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
    run.bad_epochs, run.history, run.done = ckpt.get("bad_epochs", 0), list(ckpt.get("history", [])), ckpt.get("done")


def _announce(run: _Run, resume: bool) -> None:
    """Start the clock and send the ``start`` event (data summary, samples, configuration)."""
    run.t_run = time.perf_counter()
    samples, captions = sample_images(run.data) if run.dist.main else ([], [])
    run.emit(TrainEvent("start", epoch=run.start_epoch, epochs=run.cfg.epochs, steps_per_epoch=run.steps_per_epoch,
                        metrics={"summary": run.data.summary, "samples": samples, "sample_captions": captions,
                                 "config": asdict(run.cfg),
                                 "device": run.device, "world": run.dist.world, "resumed": resume,
                                 "history": list(run.history),
                                 "task": run.task.name, "monitor": run.task.monitor, "mode": run.task.mode}))


def _train_epoch(run: _Run, epoch: int) -> _EpochStats:
    """The optimiser steps of one epoch (seeded by ``seed + epoch``); ``stopped`` on a stop request."""
    cfg, dist = run.cfg, run.dist
    seed_epoch(run.data, cfg.seed, epoch, dist.rank)
    run.sampler.set_epoch(epoch)
    run.net.train()
    stats = _EpochStats(lr=run.optimizer.param_groups[0]["lr"], t_start=time.perf_counter())
    for step, batch in enumerate(run.loader):
        if step >= run.steps_per_epoch:
            break
        if run.stop_event.is_set():
            stats.stopped = True
            break
        loss = _step(run, batch, epoch, step)
        stats.seen += run.task.batch_size(batch) * dist.world
        if loss is None:  # non-finite loss or gradients: no update (cfg.skip_nonfinite)
            stats.skipped += 1
            total_skips = stats.skipped + sum(h.get("skipped_steps", 0) for h in run.history)
            if total_skips > cfg.skip_nonfinite:
                raise TrainingError(
                    f"{total_skips} optimiser steps with a non-finite loss or gradient (the last at epoch "
                    f"{epoch + 1}, step {step + 1}; --skip-nonfinite {cfg.skip_nonfinite}); lower the learning "
                    f"rate or check the data; the last good checkpoint is kept in {run.run_dir}")
            continue
        stats.loss_sum += loss
        stats.n_steps += 1
        parts = {k: float(v) for k, v in run.task.step_metrics().items()}
        for k, v in parts.items():
            stats.parts[k] = stats.parts.get(k, 0.0) + v
        run.emit(TrainEvent("step", epoch=epoch, step=step + 1, steps_per_epoch=run.steps_per_epoch,
                            epochs=cfg.epochs, metrics={"loss": loss, **parts}, lr=stats.lr,
                            throughput=stats.seen / max(stats.seconds(), 1e-9),
                            memory_mb=memory_mb(run.device), elapsed_s=run.elapsed()))
    return stats


def _validate_select_checkpoint(run: _Run, epoch: int, stats: _EpochStats) -> bool:
    """Rank 0 after an epoch: validate, keep the best weights, append the history, write ``last.pt``
    and send the ``epoch`` event. Returns whether early stopping ends the run now."""
    import torch

    task, cfg = run.task, run.cfg
    run.model.eval()
    with torch.inference_mode():
        metrics = task.validate(run.model, run.val_loader, run.device)
    if task.monitor not in metrics:
        raise TrainingError(f"task {task.name!r} did not report its monitored metric {task.monitor!r} "
                            f"(got {sorted(metrics)})")
    metrics = {"train_loss": stats.loss_sum / max(stats.n_steps, 1), **stats.part_means(),
               **{k: float(v) for k, v in metrics.items()}}
    if stats.skipped:
        metrics["skipped_steps"] = stats.skipped
    current = metrics[task.monitor]
    if run.better(current):
        run.best_metric, run.best_epoch, run.bad_epochs = current, epoch, 0
        save_state_dict(run.model, run.run_dir / BEST)
    else:
        run.bad_epochs += 1
    should_stop = cfg.patience > 0 and run.bad_epochs >= cfg.patience
    epoch_time = stats.seconds()
    run.history.append({"epoch": epoch + 1, "lr": stats.lr, "seconds": epoch_time,
                        "throughput": stats.seen / max(epoch_time, 1e-9), **metrics})
    atomic_torch_save(
        {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
         "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict() if run.use_amp else None,
         "epoch": epoch + 1, "best_metric": run.best_metric, "best_epoch": run.best_epoch,
         "bad_epochs": run.bad_epochs, "history": run.history, "config": asdict(cfg),
         "task": str(task.name),  # a plain str (not an enum), so weights_only loading accepts it
         "done": "early_stopped" if should_stop else None},
        run.run_dir / LAST,
    )
    run.emit(TrainEvent("epoch", epoch=epoch, step=stats.n_steps, steps_per_epoch=run.steps_per_epoch,
                        epochs=cfg.epochs, metrics=metrics, lr=stats.lr,
                        throughput=stats.seen / max(epoch_time, 1e-9),
                        memory_mb=memory_mb(run.device), elapsed_s=run.elapsed()))
    return should_stop


def _finish(run: _Run, status: str, epoch: int) -> TrainResult:
    """Load the best weights into the model (eval mode), send the final event, build the result."""
    if (run.run_dir / BEST).exists():
        run.model.load_state_dict(load_state_dict(run.run_dir / BEST), strict=True)
    run.model.eval()
    message = {"completed": f"finished {run.cfg.epochs} epochs",
               "early_stopped": f"early stop after epoch {epoch + 1}",
               "stopped": f"stopped by request during epoch {epoch + 1}; resume restarts that epoch"}[status]
    run.emit(TrainEvent("stopped" if status == "stopped" else "end", epoch=epoch, epochs=run.cfg.epochs,
                        metrics={"best_epoch": run.best_epoch + 1, "best_metric": run.best_metric,
                                 "monitor": run.task.monitor},
                        elapsed_s=run.elapsed(), message=message))
    return TrainResult(status=status, model=run.model, best_epoch=run.best_epoch + 1,
                       best_metric=float("nan") if run.best_metric is None else float(run.best_metric),
                       monitor=run.task.monitor, history=run.history, run_dir=run.run_dir)


def _step(run: _Run, batch: dict[str, Any], epoch: int, step: int) -> float | None:
    """One optimiser step; returns the loss averaged over the processes, or None when the step was
    skipped because its loss or gradients were not finite (only with ``cfg.skip_nonfinite``)."""
    import torch

    cfg, dist, device, optimizer, scaler = run.cfg, run.dist, run.device, run.optimizer, run.scaler
    try:
        batch = to_device(batch, device, run.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=run.use_amp):
            loss = run.task.training_loss(run.net, batch)
        mean_loss = dist.all_mean(loss.detach().float())  # every rank sees a NaN on any rank
        if not torch.isfinite(mean_loss).item():
            if cfg.skip_nonfinite:
                optimizer.zero_grad(set_to_none=True)
                return None
            raise TrainingError(
                f"loss became {mean_loss.item()} at epoch {epoch + 1}, step {step + 1}; lower the learning rate "
                f"or check the data; the last good checkpoint is kept in {run.run_dir}"
            )
        scaler.scale(loss).backward()
        if cfg.skip_nonfinite and not run.use_amp:  # (the AMP scaler skips Inf gradients itself)
            bad = any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in run.model.parameters())
            if dist.all_mean(torch.tensor(float(bad), device=device)).item() > 0:
                optimizer.zero_grad(set_to_none=True)
                return None
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
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
        out_dir: folder receiving ``<name>.safetensors`` and ``<name>.md`` (``weights/`` only for the shipped
            models the maintainers train from the command line; the Training page promotes into the user
            models folder, see :meth:`medviz.train.jobs.JobManager.promote`).
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
