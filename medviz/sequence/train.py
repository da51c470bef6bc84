"""Sequence task: a bidirectional GRU over the slice features of each LGG stack, trained through the one
engine (``python -m medviz.train --task sequence``).

Data: the LGG folder's patient-level ``splits.json`` (train / val; the test split only at export, once).
Each stack's slice features come from the shipped segmenter (:mod:`medviz.sequence.encoder`), computed once
per run; the segmenter is frozen, so training updates the sequence network only. Stacks are padded to the
longest stack with their ``length`` carried along; the loss is the binary cross-entropy of every real slice
(slice label = mask not empty; no class weights: tumour slices are a third of the training slices).
Monitor: ``val_auprc`` (pooled average precision of the validation slices).

What the GRU reads (``--inputs``): ``features``, every standardised slice feature; or ``stacked`` (stacked
generalisation): the per-slice head is fitted first (the rule below) and frozen, and the GRU reads its logit
with the segmenter's maximum probability and positive fraction -- in training the head's **out-of-fold**
logits (:func:`out_of_fold_logits`, :data:`STACKING_FOLDS` folds of the training stacks), so that the head's
own fit to a stack never reaches the GRU's view of it; on val, test and the page, the head fitted on every
training stack. Out of fold for the head, not for the encoder: the shipped segmenter was trained on 34 of the
49 training stacks with their masks, so those stacks' features (and the two output features) are still more
confident than a new patient's. ``--members K`` trains a deep ensemble of K GRUs (:class:`~medviz.models.recurrent.GRUEnsemble`).

At export, fixed before training: the per-slice baseline head is fitted on the training features (before
training for ``stacked`` inputs)
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
from medviz.models.recurrent import INPUTS, Standardise
from medviz.models.registry import get_spec, list_models
from medviz.models.specs import SequenceSpec
from medviz.models.weights import load_model, save_state_dict
from medviz.options import option
from medviz.sequence import baselines
from medviz.sequence.card import bar_met, render_card
from medviz.sequence.data import default_data_dir, load_stack, split_cases
from medviz.sequence.encoder import FEATURES, SEG_MAX_PROB, slice_features
from medviz.sequence.evaluate import predict_cases, score
from medviz.sequence.infer import predict_features
from medviz.sequence.metrics import auprc, auroc, slice_metrics
from medviz.train.task import TaskData, TrainTask
from medviz.types import MedvizError

PER_SLICE_C = (0.001, 0.01, 0.1, 1.0)
#: Folds of the out-of-fold per-slice logits a stacked GRU is trained on.
STACKING_FOLDS = 5


@dataclass(frozen=True)
class SequenceTrainOptions:
    """Options of the sequence task (``python -m medviz.train --task sequence ...``)."""

    segmenter: str = option("lgg_unet", label="Slice encoder (registered segmentation model)",
                            help="registered segmentation model whose bottleneck and output give the slice features")
    hidden: int = option(32, label="GRU hidden units per direction", min=4, max=512)
    proj: int = option(32, label="Projection width before the GRU", min=4, max=1024)
    dropout: float = option(0.5, label="Dropout", min=0.0, max=0.9)
    inputs: str = option("features", label="What the GRU reads", choices=list(INPUTS),
                         help="features: every slice feature; stacked: the per-slice head's logit (out-of-fold in "
                              "training) and the segmenter's two output features")
    members: int = option(1, label="GRUs in the ensemble", min=1, max=16,
                          help="deep ensemble: this many GRUs, each initialised and trained on its own loss; "
                               "the model's probability is their mean")
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
        if self.options.inputs == "stacked":
            self._head = _per_slice_fit(ft, yt, fv, yv)
            self._oof = out_of_fold_logits(ft, yt, self._head.c, self._head.mean, self._head.std)
        summary = {"data": str(self.data_dir()), "segmenter": self.options.segmenter, "features": self.n_features,
                   "train_cases": len(ct), "val_cases": len(cv),
                   "train_slices": int(sum(map(len, yt))), "train_tumour_slices": int(sum(y.sum() for y in yt)),
                   "val_slices": int(sum(map(len, yv))), "val_tumour_slices": int(sum(y.sum() for y in yv)),
                   "longest_stack": t_max}
        train = _padded(ft, yt, t_max)
        if self.options.inputs == "stacked":  # the GRU learns from out-of-fold logits of the per-slice head
            for item, logits in zip(train, self._oof):
                item["per_slice_logits"] = np.zeros(t_max, np.float32)
                item["per_slice_logits"][:len(logits)] = logits
            summary["per_slice_c"] = self._head.c
        return TaskData(train=Dataset(train), val=Dataset(_padded(fv, yv, t_max)), summary=summary)

    # ------------------------------------------------------------------ model
    def arch(self) -> dict[str, Any]:
        o = self.options
        n = getattr(self, "n_features", FEATURES)
        return {"name": "SliceSequenceModel",
                "kwargs": {"n_features": n, "hidden": o.hidden, "proj": o.proj,
                           "dropout": o.dropout, "members": o.members, "inputs": o.inputs,
                           "context_features": [n - 2, n - 1] if o.inputs == "stacked" else []}}

    def build_model(self) -> Any:
        import torch

        model = build_network(self.arch())
        if hasattr(self, "_train_features"):
            stats = torch.from_numpy(self._train_features)
            if self.options.inputs == "stacked":
                self._head.copy_to(model.per_slice)  # its standardisation included
                model.per_slice.requires_grad_(False)  # fitted first, then frozen
                logits = np.concatenate(self._oof)
                with torch.no_grad():
                    model.gru.fit_standardise(model.stacked_inputs(stats, torch.from_numpy(logits)))
            else:
                model.per_slice.standardise.fit(stats)
                model.gru.fit_standardise(stats)
        return model

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch

        net = getattr(model, "module", model)  # the network under a DistributedDataParallel wrapper
        features = batch["features"].float()
        inputs = (net.stacked_inputs(features, batch["per_slice_logits"].float())  # a concatenation, no weights
                  if self.options.inputs == "stacked" else features)
        if self.options.feature_noise > 0:  # noise in standardised units: s.d. x the training inputs' s.d.
            inputs = inputs + self.options.feature_noise * net.gru.standardise.std * torch.randn_like(inputs)
        # (K, B, T), each member its own loss; through the model's forward (DDP)
        logits = model(features, batch["length"], gru_inputs=inputs, per_member=True)
        mask = batch["mask"] > 0
        labels = batch["labels"].float()[mask]
        return torch.stack([torch.nn.functional.binary_cross_entropy_with_logits(member[mask], labels)
                            for member in logits]).mean()

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
        if self.options.inputs == "stacked":  # the head the GRU was trained on stays as it is
            c = self._head.c
        else:
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
        earlier = earlier_test_looks(out_dir, name)  # also when skipping test: a replaced entry keeps its looks
        if earlier:
            entry["earlier_tests"] = earlier
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


def earlier_test_looks(out_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every test look of the model registered as ``name`` in ``out_dir`` before this export (its own
    record and the looks it carried), oldest first, so that a replaced model's test result stays in the card."""
    if name not in {e.name for e in list_models(weights_dir=out_dir)}:  # not registered there yet
        return []
    old = get_spec(name, weights_dir=out_dir)
    looks = [dict(t) for t in old.provenance.get("earlier_tests") or ()]
    test = old.metrics.get("test") if isinstance(old, SequenceSpec) else None
    if test is not None:
        looks.append({"created": old.provenance.get("created"), "sha256": old.sha256,
                      "command": old.provenance.get("command"), "auprc": test["auprc"], "log_loss": test["log_loss"],
                      "extent_error": test["extent_error"],
                      "baselines_auprc": {k: b["auprc"] for k, b in test["baselines"].items()},
                      "bar_met": bar_met(test)})
    return looks


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


@dataclass(frozen=True)
class PerSliceFit:
    """The per-slice head's logistic regression: ``coef (F,)`` and ``intercept`` on features standardised
    with the training features' ``mean (F,)`` and ``std (F,)``; ``c`` its regularisation."""

    c: float
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    std: np.ndarray

    def copy_to(self, head: Any) -> None:
        """Write the fit into a :class:`~medviz.models.recurrent.PerSliceHead` (standardisation included)."""
        import torch

        with torch.no_grad():
            head.standardise.mean.copy_(torch.from_numpy(self.mean.astype(np.float32)))
            head.standardise.std.copy_(torch.from_numpy(self.std.astype(np.float32)))
            head.linear.weight.copy_(torch.from_numpy(self.coef.astype(np.float32))[None])
            head.linear.bias.fill_(self.intercept)


def _standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training features' mean and std as :class:`~medviz.models.recurrent.Standardise` sets them (computed
    in float32, returned as float64)."""
    import torch

    s = Standardise(features.shape[1])
    s.fit(torch.from_numpy(features.astype(np.float32)))
    return s.mean.numpy().astype(np.float64), s.std.numpy().astype(np.float64)


def _per_slice_fit(ft: list[np.ndarray], yt: list[np.ndarray], fv: list[np.ndarray],
                   yv: list[np.ndarray]) -> PerSliceFit:
    """Logistic regression on the standardised training features, its regularisation ``C`` chosen on val by
    AUPRC from :data:`PER_SLICE_C` (ties: the smaller ``C``)."""
    from sklearn.linear_model import LogisticRegression

    train = np.concatenate(ft).astype(np.float32)
    mean, std = _standardisation(train)
    zt = ((train - mean) / std).astype(np.float32)
    zv = ((np.concatenate(fv).astype(np.float32) - mean) / std).astype(np.float32)
    y_train, y_val = np.concatenate(yt), np.concatenate(yv)
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(zt, y_train) for c in PER_SLICE_C}
    best = max(PER_SLICE_C, key=lambda c: (auprc(y_val, fits[c].predict_proba(zv)[:, 1]), -c))
    return PerSliceFit(float(best), fits[best].coef_[0].astype(np.float64), float(fits[best].intercept_[0]), mean, std)


def out_of_fold_logits(ft: list[np.ndarray], yt: list[np.ndarray], c: float, mean: np.ndarray, std: np.ndarray,
                       folds: int = STACKING_FOLDS) -> list[np.ndarray]:
    """The per-slice head's logit of every training slice from a logistic regression (regularisation ``c``)
    fitted on the other folds' stacks: stacks dealt round-robin into ``folds`` folds, so a stack's logits never
    come from a fit that saw it. Returns one ``(Z,)`` float32 array per stack."""
    from sklearn.linear_model import LogisticRegression

    z = [((f.astype(np.float32) - mean) / std).astype(np.float32) for f in ft]
    out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(ft)
    for k in range(min(folds, len(ft))):
        held = [i for i in range(len(ft)) if i % folds == k]
        rest = [i for i in range(len(ft)) if i % folds != k]
        if not rest:
            raise MedvizError("stacking needs at least two training stacks")
        fit = LogisticRegression(C=c, max_iter=5000).fit(np.concatenate([z[i] for i in rest]),
                                                          np.concatenate([yt[i] for i in rest]))
        for i in held:
            out[i] = fit.decision_function(z[i]).astype(np.float32)
    return out


def _fit_per_slice(model: Any, ft: list[np.ndarray], yt: list[np.ndarray], fv: list[np.ndarray],
                   yv: list[np.ndarray]) -> float:
    """Fit ``model.per_slice`` (:func:`_per_slice_fit`) into the model; returns the ``C`` used."""
    fit = _per_slice_fit(ft, yt, fv, yv)
    fit.copy_to(model.per_slice)
    return fit.c
