"""A tqdm progress bar listener for the command line."""

from __future__ import annotations

from medviz.train.events import TrainEvent


class ProgressBar:
    """Shows one bar per epoch with loss, throughput and ETA, and a line of metrics per epoch."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, e: TrainEvent) -> None:
        from tqdm import tqdm

        if e.kind == "start":
            s = e.metrics.get("summary", {})
            resumed = f", resumed at epoch {e.epoch + 1}" if e.metrics.get("resumed") else ""
            tqdm.write(f"device {e.metrics.get('device')} x{e.metrics.get('world')}{resumed}; data: {s}")
        elif e.kind == "step":
            if self.bar is None:
                self.bar = tqdm(total=e.steps_per_epoch, desc=f"epoch {e.epoch + 1}/{e.epochs}", leave=False)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{e.metrics['loss']:.4f}", ips=f"{e.throughput:.0f}")
        elif e.kind == "epoch":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            m = " ".join(f"{k}={v:.4f}" for k, v in e.metrics.items() if isinstance(v, float))
            tqdm.write(f"epoch {e.epoch + 1}/{e.epochs} {m} lr={e.lr:.2e} {e.throughput:.0f} samples/s")
        elif e.kind in ("end", "stopped", "error"):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if e.kind == "error":
                tqdm.write(f"error: {e.message}")
                return
            tqdm.write(f"{e.kind}: {e.message} (best {e.metrics.get('monitor')}={e.metrics.get('best_metric')} "
                       f"at epoch {e.metrics.get('best_epoch')})")
