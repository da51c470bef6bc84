"""Sequence task: a bidirectional GRU over the slice features of each LGG stack, trained through the one
engine (``python -m medviz.train --task sequence``).

Data: the LGG folder's patient-level ``splits.json`` (train / val; the test split only at export, once).
Each stack's slice features come from the shipped segmenter (:mod:`medviz.sequence.encoder`), computed once
per run; the segmenter is frozen, so training updates the sequence network only. Stacks are padded to the
longest stack with their ``length`` carried along; the loss is the binary cross-entropy of every real slice
(slice label = mask not empty; no class weights: tumour slices are a third of the training slices).
Monitor: ``val_auprc`` (pooled average precision of the validation slices).

At export, fixed before training: the per-slice baseline head is fitted on the training features
(logistic regression, its regularisation chosen on val by AUPRC from :data:`PER_SLICE_C`); both rolling-mean
windows are tuned on val (:func:`medviz.sequence.baselines.tune_window`); the position prior is counted on
the training labels; then the test split is scored once for the GRU and every baseline and written into
the card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import get_settings
from medviz.constants import Task
from medviz.models.nets import build_network
from medviz.models.specs import SequenceSpec
from medviz.models.weights import load_model, save_state_dict
from medviz.options import option
from medviz.sequence import baselines
from medviz.sequence.card import render_card
from medviz.sequence.data import default_data_dir, load_stack, split_cases
from medviz.sequence.encoder import FEATURES, SEG_MAX_PROB, slice_features
from medviz.sequence.evaluate import predict_cases, score
from medviz.sequence.infer import predict_features
from medviz.sequence.metrics import auprc, auroc, slice_metrics
from medviz.train.task import TaskData, TrainTask
from medviz.types import MedvizError

PER_SLICE_C = (0.001, 0.01, 0.1, 1.0)


@dataclass(frozen=True)
class SequenceTrainOptions:
    """Options of the sequence task (``python -m medviz.train --task sequence ...``)."""

    segmenter: str = option("lgg_unet", label="Slice encoder (registered segmentation model)",
                            help="registered segmentation model whose bottleneck and output give the slice features")
    hidden: int = option(32, label="GRU hidden units per direction", min=4, max=512)
    proj: int = option(32, label="Projection width before the GRU", min=4, max=1024)
    dropout: float = option(0.5, label="Dropout", min=0.0, max=0.9)
    feature_noise: float = option(0.5, label="Feature noise (training augmentation)", min=0.0, max=5.0,
                                  help="s.d. of Gaussian noise added to the standardised slice features in training")
    selection_note: str = option("", label="How the recipe was chosen (for the model card)",
                                 help="the candidates compared on val before this run, written into the model card")
    skip_test: bool = option(False, label="Skip the test split",
                             help="export without touching the test split (candidate runs)")


class SequenceTask(TrainTask):
    name = Task.SEQUENCE
    monitor = "val_auprc"
    mode = "max"
    channels_last = False

    Options = SequenceTrainOptions

    def data_dir(self) -> Path:
        return self.data_path or default_data_dir()

    # ------------------------------------------------------------------ data
    def _segmenter(self) -> tuple[Any, Any]:
        if not hasattr(self, "_seg"):
            self._seg = load_model(self.options.segmenter)
        return self._seg

    def stacks(self, split: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
        """``(features (Z, F) per case, labels (Z,) per case, case ids)`` of one split (computed once)."""
        cache = self.__dict__.setdefault("_stacks", {})
        if split not in cache:
            seg, entry = self._segmenter()
            root = self.data_dir()
            ids, _ = split_cases(root, split)
            feats, labels = [], []
            for case in ids:
                f, y = _case_features(seg, entry.spec.sha256, entry.spec.tta == "lr_flip", root, case)
                feats.append(f)
                labels.append(y)
            cache[split] = (feats, labels, ids)
        return cache[split]

    def build_data(self) -> TaskData:
        from monai.data import Dataset

        (ft, yt, ct), (fv, yv, cv) = self.stacks("train"), self.stacks("val")
        if not ft or not fv:
            raise MedvizError(f"{self.data_dir()}: empty train ({len(ft)}) or val ({len(fv)}) split")
        t_max = max(len(f) for f in ft + fv)
        self._train_features = np.concatenate(ft)
        self.n_features = int(self._train_features.shape[1])
        summary = {"data": str(self.data_dir()), "segmenter": self.options.segmenter, "features": self.n_features,
                   "train_cases": len(ct), "val_cases": len(cv),
                   "train_slices": int(sum(map(len, yt))), "train_tumour_slices": int(sum(y.sum() for y in yt)),
                   "val_slices": int(sum(map(len, yv))), "val_tumour_slices": int(sum(y.sum() for y in yv)),
                   "longest_stack": t_max}
        return TaskData(train=Dataset(_padded(ft, yt, t_max)), val=Dataset(_padded(fv, yv, t_max)), summary=summary)

    # ------------------------------------------------------------------ model
    def arch(self) -> dict[str, Any]:
        o = self.options
        return {"name": "SliceSequenceModel",
                "kwargs": {"n_features": getattr(self, "n_features", FEATURES), "hidden": o.hidden, "proj": o.proj,
                           "dropout": o.dropout}}

    def build_model(self) -> Any:
        import torch

        model = build_network(self.arch())
        if hasattr(self, "_train_features"):
            stats = torch.from_numpy(self._train_features)
            model.gru.standardise.fit(stats)
            model.per_slice.standardise.fit(stats)
        return model

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch

        features = batch["features"].float()
        if self.options.feature_noise > 0:  # noise in standardised units: s.d. x the training features' s.d.
            std = model.gru.standardise.std
            features = features + self.options.feature_noise * std * torch.randn_like(features)
        logits = model(features, batch["length"])
        mask = batch["mask"] > 0
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], batch["labels"].float()[mask])

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        import torch

        ys, ps, loss_sum, n = [], [], 0.0, 0
        for batch in loader:
            logits = model(batch["features"].to(device).float(), batch["length"].to(device))
            mask = batch["mask"].to(device) > 0
            y = batch["labels"].to(device).float()
            loss_sum += float(torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], y[mask],
                                                                                   reduction="sum"))
            n += int(mask.sum())
            ys.append(y[mask].cpu().numpy())
            ps.append(torch.sigmoid(logits[mask]).float().cpu().numpy())
        y, p = np.concatenate(ys), np.concatenate(ps)
        return {"val_auprc": auprc(y, p), "val_auroc": auroc(y, p), "val_loss": loss_sum / max(n, 1)}

    # ------------------------------------------------------------------ export
    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        model = model.cpu().eval()
        c = _fit_per_slice(model, *self.stacks("train")[:2], *self.stacks("val")[:2])
        choice = self._choose_on_val(model)
        val = choice.pop("val_metrics")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.safetensors"
        save_state_dict(model, path)
        seg_entry = self._segmenter()[1]
        entry: dict[str, Any] = {
            "name": name, "task": Task.SEQUENCE, "file": path.name, "card": f"{name}.md",
            "dataset": "LGG FLAIR abnormality slices (lgg_flair_mri_seg)", "arch": self.arch(),
            "segmenter": seg_entry.name, "segmenter_sha256": seg_entry.spec.sha256,
            "lr_flip": seg_entry.spec.tta == "lr_flip", "per_slice_c": c, **choice,
            "command": command, "created": dt.date.today().isoformat(),
        }
        if self.options.selection_note:
            entry["selection_note"] = self.options.selection_note
        test = None
        if not self.options.skip_test and split_cases(self.data_dir(), "test")[1] == "test":
            spec = SequenceSpec.from_entry(entry)
            root = self.data_dir()
            test = score(predict_cases(model, self._segmenter()[0], spec, root, split_cases(root, "test")[0]))
        entry["metrics"] = {"val": val, "test": test, "selection": metrics}
        splits = {s: len(split_cases(self.data_dir(), s)[0]) for s in ("train", "val", "test")}
        (out_dir / f"{name}.md").write_text(render_card(SequenceSpec.from_entry(entry), splits,
                                                         skipped_test=self.options.skip_test))
        return entry

    def _choose_on_val(self, model: Any) -> dict[str, Any]:
        """Smoothing windows tuned on val, the position prior from the training labels, and the val metrics of
        every method with those choices."""
        fv, yv, _ = self.stacks("val")
        preds = [predict_features(model, f) for f in fv]
        gru, per = [g for g, _ in preds], [p for _, p in preds]
        seg = [f[:, SEG_MAX_PROB].astype(np.float64) for f in fv]
        w_per, w_seg = baselines.tune_window(yv, per), baselines.tune_window(yv, seg)
        prior = baselines.fit_position_prior(self.stacks("train")[1])
        val = {"gru": slice_metrics(yv, gru), "per_slice": slice_metrics(yv, per),
               "per_slice_smoothed": slice_metrics(yv, [baselines.rolling_mean(p, w_per) for p in per]),
               "segmenter_smoothed": slice_metrics(yv, [baselines.rolling_mean(p, w_seg) for p in seg]),
               "position_prior": slice_metrics(yv, [baselines.position_prior(prior, len(y)) for y in yv])}
        return {"per_slice_window": w_per, "segmenter_window": w_seg, "position_prior": prior.tolist(),
                "val_metrics": val}


FEATURE_CACHE_DIR = "sequence-features"


def _case_features(segmenter: Any, segmenter_sha256: str, lr_flip: bool, root: Path,
                   case: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features (Z, F), labels (Z,))`` of one case of a public data folder. The features depend only on
    the segmenter's weights, ``lr_flip`` and the case's normalised stack, so they are kept on disk under
    ``MEDVIZ_RUNS_DIR/sequence-features/<segmenter sha256>-<lr|no>/<case>-<digest of the stack>.npy`` and
    reused by later runs; another folder's case of the same name, or changed files, get their own entry."""
    stack = load_stack(root, case)
    digest = hashlib.blake2b(np.ascontiguousarray(stack.x).tobytes(), digest_size=12).hexdigest()
    folder = get_settings().runs_dir / FEATURE_CACHE_DIR / f"{segmenter_sha256[:16]}-{'lr' if lr_flip else 'no'}"
    path = folder / f"{case}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False), stack.labels
    feats = slice_features(segmenter, stack.x, lr_flip=lr_flip)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats, stack.labels


def _padded(features: list[np.ndarray], labels: list[np.ndarray], t_max: int) -> list[dict[str, Any]]:
    """One dict per stack: ``features (t_max, F)``, ``labels (t_max,)``, ``mask (t_max,)`` and ``length``."""
    items = []
    for f, y in zip(features, labels):
        n = len(y)
        fp = np.zeros((t_max, f.shape[1]), np.float32)
        fp[:n] = f
        yp, mp = np.zeros(t_max, np.float32), np.zeros(t_max, np.float32)
        yp[:n], mp[:n] = y, 1.0
        items.append({"features": fp, "labels": yp, "mask": mp, "length": n})
    return items


def _fit_per_slice(model: Any, ft: list[np.ndarray], yt: list[np.ndarray], fv: list[np.ndarray],
                   yv: list[np.ndarray]) -> float:
    """Fit ``model.per_slice`` (logistic regression on the standardised features) on train, its
    regularisation ``C`` chosen on val by AUPRC; returns the ``C`` used."""
    import torch
    from sklearn.linear_model import LogisticRegression

    head = model.per_slice
    with torch.no_grad():
        zt = head.standardise(torch.from_numpy(np.concatenate(ft))).numpy()
        zv = head.standardise(torch.from_numpy(np.concatenate(fv))).numpy()
    y_train, y_val = np.concatenate(yt), np.concatenate(yv)
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(zt, y_train) for c in PER_SLICE_C}
    best = max(PER_SLICE_C, key=lambda c: (auprc(y_val, fits[c].predict_proba(zv)[:, 1]), -c))
    with torch.no_grad():
        head.linear.weight.copy_(torch.from_numpy(fits[best].coef_.astype(np.float32)))
        head.linear.bias.copy_(torch.from_numpy(fits[best].intercept_.astype(np.float32)))
    return float(best)
