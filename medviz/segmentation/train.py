"""Segmentation task: a 2D MONAI UNet for FLAIR-abnormality masks on LGG-style folders.

Data, chosen by the folder layout (:func:`medviz.segmentation.nifti_pairs.detect_layout`): ``pairs.csv`` ->
:mod:`medviz.datasets.lgg` (3-channel slices T1 / FLAIR / T1c, binary masks, patient-level
``splits.json``); ``images/`` + ``labels/`` or ``imagesTr/`` + ``labelsTr/`` ->
:mod:`medviz.segmentation.nifti_pairs` (3D NIfTI volumes cut into axial slices; foreground ``label > 0`` or
``--label-value K``; the UNet's input channels follow the data, 1 for grey volumes). Both layouts
export (weights, manifest entry with the data folder, model card). Each case stack is normalised per channel
(:func:`normalise_stack`, 99th percentile), the same policy :mod:`medviz.segmentation.infer` applies at
inference. Training samples are random 2D crops (``--crop``, tumour-centred with probability
``pos/(pos+neg)`` via ``RandCropByPosNegLabeld``) with flips, small affine warps and intensity
jitter; validation runs on whole slices (padded to a multiple of the UNet stride). The network is
fully convolutional with batch norm, so crop training and whole-slice inference share statistics.

Loss: ``DiceCELoss`` (sigmoid, batch Dice). Monitor: ``val_dice_patient``, the mean over
validation patients of the Dice of each patient's whole stack (threshold 0.5, no post-processing).
At export, the probability threshold and the minimum 3D component size are chosen on val, then the
test split is evaluated once with that choice and written into the model card.

Cross-validation (``--folds K --fold I``, :mod:`medviz.segmentation.folds`): the run trains on the other
folds of train + val and validates on fold ``I``; its export never touches test. ``--folds K --members RUN_0
... RUN_K-1`` trains nothing: it exports the probability-averaging ensemble of the K fold models
(:class:`medviz.models.ensemble.ProbabilityEnsemble`, sigmoid), with test-time augmentation and
post-processing chosen on the out-of-fold predictions (member ``i`` predicts fold ``i``, so every train/val
patient is predicted once by a model that never trained on it), the CV report (per fold and pooled) in the
manifest entry and card, and test scored once.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviz.constants import Task
from medviz.datasets.lgg import CHANNELS, read_splits
from medviz.imaging.intensity import normalise_stack
from medviz.models.nets import build_network
from medviz.models.specs import DEFAULT_SEG_CAM_LAYER, SegmenterSpec
from medviz.models.weights import load_member_runs, load_state_dict, save_state_dict, save_weights
from medviz.segmentation import data as seg_folders
from medviz.segmentation import evaluate as ev
from medviz.segmentation.card import folder_card, lgg_card
from medviz.segmentation.data import cases, default_data_dir, layout
from medviz.segmentation.folds import FoldError, folds_of, held_out
from medviz.segmentation.infer import TTA_FLIPS
from medviz.segmentation.measure import dice_score
from medviz.segmentation.nifti_pairs import split_source
from medviz.segmentation.options import SegmentationTrainOptions
from medviz.train.engine import TrainResult
from medviz.train.task import TaskData, TrainTask
from medviz.types import MedvizError


@dataclass(frozen=True)
class ValChoice:
    """What export chooses on the validation split: test-time augmentation, probability threshold, minimum
    3D component size (voxels), the val mean per-patient Dice with them (and without any: ``val_raw``,
    threshold 0.5), and the tuned val Dice of each TTA mode."""

    tta: str
    threshold: float
    min_size: int
    val_dice: float
    val_raw: float
    val_dice_by_tta: dict[str, float]


class SegmentationTask(TrainTask):
    name = Task.SEGMENTATION
    monitor = "val_dice_patient"
    mode = "max"

    Options = SegmentationTrainOptions

    # ------------------------------------------------------------------ data
    def data_dir(self) -> Path:
        return self.data_path or default_data_dir()

    def layout(self) -> str:
        """``"lgg"`` (pairs.csv) or ``"nifti"`` (images/+labels/ or imagesTr/+labelsTr/)."""
        return layout(self.data_dir())

    def folds(self) -> list[list[str]]:
        """The ``--folds`` folds of the data folder (read once per task; :func:`folds_of`)."""
        if "_folds" not in self.__dict__:
            self._folds = folds_of(self.data_dir(), self.options.folds, self.options.fold_seed)
        return self._folds

    def split_cases(self, split: str) -> list[str]:
        """The cases of ``split``: the folder's split, or with ``--folds`` the fold's train / val cases."""
        a = self.options
        if a.folds and split in ("train", "val"):
            return held_out(self.folds(), a.fold)[split]
        return seg_folders.cases(self.data_dir(), split)

    def _samples(self, split: str) -> list[dict[str, Any]]:
        import numpy as np

        root = self.data_dir()
        out = []
        for case in self.split_cases(split):
            image, mask = seg_folders.load_case(root, case, self.options.label_value)
            x = normalise_stack(image)
            for k in range(x.shape[0]):
                out.append({"image": x[k], "label": mask[k][None].astype(np.float32), "case": case, "slice": k})
        return out

    def build_data(self) -> TaskData:
        from monai.data import CacheDataset, Dataset
        from monai.transforms import (
            Compose,
            DivisiblePadd,
            EnsureTyped,
            RandAdjustContrastd,
            RandAffined,
            RandCropByPosNegLabeld,
            RandFlipd,
            RandScaleIntensityd,
            RandShiftIntensityd,
            SpatialPadd,
        )

        logging.getLogger("monai").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*Num foregrounds 0.*")
        a = self.options
        keys = ["image", "label"]
        train, val = self._samples("train"), self._samples("val")
        if not train or not val:
            raise MedvizError(f"{self.data_dir()}: empty train ({len(train)}) or val ({len(val)}) split")
        crop = (a.crop, a.crop)
        train_tf = Compose([
            EnsureTyped(keys=keys, track_meta=False),
            SpatialPadd(keys=keys, spatial_size=crop),
            RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=crop, pos=a.pos_neg[0],
                                   neg=a.pos_neg[1], num_samples=1, allow_smaller=True),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandAffined(keys=keys, prob=0.5, rotate_range=0.26, scale_range=0.1, translate_range=8,
                        mode=("bilinear", "nearest"), padding_mode="zeros"),
            RandScaleIntensityd(keys="image", factors=0.25, prob=0.5, channel_wise=True),
            RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
            RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), prob=0.3),
        ])
        self.in_channels = int(train[0]["image"].shape[0])
        # Whole-slice validation: pad to the largest slice (cases may differ in size) and to a multiple
        # of the UNet's total stride (no-op for the 256² LGG slices).
        size = [max(s["image"].shape[d] for s in val) for d in (1, 2)]
        val_tf = Compose([EnsureTyped(keys=keys, track_meta=False), SpatialPadd(keys=keys, spatial_size=size),
                          DivisiblePadd(keys=keys, k=2 ** (len(a.unet_channels) - 1))])
        train_ds = CacheDataset(train, transform=train_tf, cache_rate=a.cache_rate, progress=False)
        val_ds = Dataset(val, transform=val_tf)
        # RandCropByPosNegLabeld returns a list of num_samples dicts; unwrap for the default collate.
        train_ds = _Unwrap(train_ds)
        pos = lambda s: int(s["label"].max() > 0)  # noqa: E731
        summary = {
            "data": str(self.data_dir()),
            "train_slices": len(train), "train_tumour_slices": sum(map(pos, train)),
            "val_slices": len(val), "val_tumour_slices": sum(map(pos, val)),
            "train_cases": len({s["case"] for s in train}), "val_cases": len({s["case"] for s in val}),
            "crop": a.crop, "in_channels": self.in_channels,
        }
        if self.layout() == "nifti":
            k = a.label_value
            summary.update({"layout": "NIfTI image/label pairs (axial slices, LPS+)",
                            "split": split_source(self.data_dir()),
                            "foreground": "label > 0" if k is None else f"label == {k}",
                            "normalisation": "per case and channel: (x - min) / p99(x > min), clip [0, 1.5]"})
        return TaskData(train=train_ds, val=val_ds, summary=summary)

    # ------------------------------------------------------------------ model
    def arch(self) -> dict[str, Any]:
        ch = list(self.options.unet_channels)
        single = {"name": "UNet", "kwargs": {
            "spatial_dims": 2, "in_channels": getattr(self, "in_channels", 3), "out_channels": 1, "channels": ch,
            "strides": [2] * (len(ch) - 1), "num_res_units": self.options.res_units, "norm": "batch",
            "dropout": self.options.dropout}}
        members = self.options.members
        return {"name": "Ensemble", "kwargs": {"members": [single] * len(members), "activation": "sigmoid"}} \
            if members else single

    def cam_layer(self) -> str:
        """Grad-CAM layer(s) of the manifest entry: every member's for an ensemble."""
        members = self.options.members
        return ",".join(f"members.{i}.{DEFAULT_SEG_CAM_LAYER}" for i in range(len(members))) if members \
            else DEFAULT_SEG_CAM_LAYER

    def assembled_result(self) -> Any:
        """``--members``: the ensemble of the K fold runs' selected weights, scored on the out-of-fold
        predictions (threshold 0.5, no post-processing), as a :class:`~medviz.train.engine.TrainResult` for
        export; None (train) without ``--members``."""
        members, k = self.options.members, self.options.folds
        if not members:
            return None
        if not k:
            raise FoldError("--members needs --folds K: the number of folds the member runs were trained on")
        if len(members) != k:
            raise FoldError(f"--members needs the {k} fold runs of --folds {k} in fold order; got {len(members)}")
        root = self.data_dir()
        image, _ = seg_folders.load_case(root, self.folds()[0][0], self.options.label_value)
        self.in_channels = int(image.shape[-1])
        model = self.build_model()
        load_member_runs(model, members)
        model.eval()
        oof = ev.score(self._selection_predictions(model, "none"), 0.5, 0, 0)["dice_mean_per_patient"]
        history = [{"epoch": 1, "assembled_from": [str(m) for m in members], self.monitor: oof}]
        return TrainResult(status="assembled", model=model, best_epoch=1, best_metric=oof, monitor=self.monitor,
                           history=history)

    def build_model(self) -> Any:
        model = build_network(self.arch())
        self.load_init(model)
        return model

    def _loss(self) -> Any:
        if not hasattr(self, "_loss_fn"):
            from monai.losses import DiceCELoss

            self._loss_fn = DiceCELoss(sigmoid=True, batch=True)
        return self._loss_fn

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return self._loss()(model(batch["image"]), batch["label"])

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        import numpy as np
        import torch

        probs: dict[str, list[np.ndarray]] = {}
        labels: dict[str, list[np.ndarray]] = {}
        loss_sum, n = 0.0, 0
        for batch in loader:
            x, y = batch["image"].to(device), batch["label"].to(device)
            logits = model(x)
            loss_sum += self._loss()(logits, y).item() * x.shape[0]
            n += x.shape[0]
            p = torch.sigmoid(logits)[:, 0].float().cpu().numpy()
            for case, pk, yk in zip(batch["case"], p, y[:, 0].cpu().numpy()):
                probs.setdefault(case, []).append(pk)
                labels.setdefault(case, []).append(yk)
        dices = [dice_score(np.stack(probs[c]) > 0.5, np.stack(labels[c]) > 0) for c in probs]
        return {"val_loss": loss_sum / max(n, 1), "val_dice_patient": float(np.mean(dices))}

    # ------------------------------------------------------------------ export
    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        """Choose TTA and post-processing on val, decide fp16 on val, evaluate test once (when the folder has
        a test split), build the manifest entry and write the card: one step each. Works for both layouts."""
        model = model.cpu().eval()
        choice = self._choose_on_val(model)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.safetensors"
        shipped, use_half, val16 = self._write_weights(model, path, choice)
        files = save_weights(model, out_dir, name, half=use_half)  # shards beyond 16 MB (a fold ensemble)
        if files != [path.name]:
            path.unlink(missing_ok=True)
        test = self._score_test(shipped, choice)
        cv = self._cv_report(choice, shipped) if self.options.folds else None
        entry = self._manifest_entry(name, files, choice, use_half, test, cv)
        # the card is rendered from the parsed spec, so an entry that would not parse is never written
        args = (name, SegmenterSpec.from_entry(entry), metrics, command, choice.val_raw, choice.val_dice, val16, test,
                self.options)
        card = lgg_card(*args, split=self._patient_split_text()) if self.layout() == "lgg" else \
            folder_card(*args, split=self._split_text())
        (out_dir / f"{name}.md").write_text(card)
        return entry

    def _predict(self, model: Any, split: str, tta: str) -> dict[str, Any]:
        root = self.data_dir()
        return ev.predict_cases(model, root, self.split_cases(split), label_value=self.options.label_value, tta=tta)

    def _selection_predictions(self, model: Any, tta: str) -> dict[str, Any]:
        """What export chooses on: the val split's predictions, or for a fold ensemble the out-of-fold
        predictions (member ``i`` on fold ``i``; computed once per TTA mode and kept)."""
        if not self.options.members:
            return self._predict(model, "val", tta)
        cache = self.__dict__.setdefault("_oof", {})
        if (id(model), tta) not in cache:
            root, a = self.data_dir(), self.options
            preds: dict[str, Any] = {}
            for member, fold in zip(model.members, self.folds()):
                preds.update(ev.predict_cases(member, root, fold, label_value=a.label_value, tta=tta))
            cache[(id(model), tta)] = preds
        return cache[(id(model), tta)]

    def _choose_on_val(self, model: Any) -> ValChoice:
        """Test-time augmentation and post-processing chosen together on val, or on the out-of-fold
        predictions of a fold ensemble (ties: no TTA)."""
        val_by_tta = {tta: self._selection_predictions(model, tta) for tta in TTA_FLIPS}
        tuned = {tta: ev.tune(preds) for tta, preds in val_by_tta.items()}
        tta = max(tuned, key=lambda t: (round(tuned[t][2], 9), t == "none"))
        threshold, min_size, val_dice = tuned[tta]
        val_raw = ev.score(val_by_tta["none"], 0.5, 0, 0)["dice_mean_per_patient"]
        return ValChoice(tta, threshold, min_size, val_dice, val_raw, {t: float(v[2]) for t, v in tuned.items()})

    def _write_weights(self, model: Any, path: Path, choice: ValChoice) -> tuple[Any, bool, float]:
        """Write fp16 weights when they keep the val score (within 0.002 Dice), else fp32.

        Returns:
            ``(the model as shipped, fp16 used, val Dice of the fp16 copy)``.
        """
        save_state_dict(model, path, half=True)
        half = copy.deepcopy(model)
        half.load_state_dict(load_state_dict(path))
        val16 = ev.score(self._selection_predictions(half, choice.tta), choice.threshold, choice.min_size, 0)
        val16 = float(val16["dice_mean_per_patient"])
        use_half = abs(val16 - choice.val_dice) <= 0.002
        if not use_half:
            save_state_dict(model, path, half=False)
        return (half if use_half else model), use_half, val16

    def _score_test(self, shipped: Any, choice: ValChoice) -> dict[str, Any] | None:
        """The one test evaluation with the val choices (None without a test split, with ``skip_test``, and
        for a single fold run of a cross-validation)."""
        a = self.options
        if not (read_splits(self.data_dir()) or {}).get("test") or a.skip_test or (a.folds and not a.members):
            return None
        return ev.score(self._predict(shipped, "test", choice.tta), choice.threshold, choice.min_size)

    def _manifest_entry(self, name: str, files: list[str], choice: ValChoice, use_half: bool,
                        test: dict[str, Any] | None, cv: dict[str, Any] | None = None) -> dict[str, Any]:
        root, label_value = self.data_dir(), self.options.label_value
        n_ch = int(getattr(self, "in_channels", 3))
        if self.layout() == "lgg":
            dataset, channels, classes = "LGG FLAIR abnormality (lgg_flair_mri_seg)", list(CHANNELS), \
                ["background", "FLAIR abnormality"]
            spec = {"modality": "MR", "slice_size": [256, 256]}
        else:
            fg = "label > 0" if label_value is None else f"label == {label_value}"
            dataset, classes = f"NIfTI image/label pairs in {root.name}/ (foreground {fg})", ["background", "foreground"]
            channels = ["R", "G", "B"] if n_ch == 3 else ["image"] * n_ch
            spec = {}
        return {
            "name": name, "task": Task.SEGMENTATION, "dataset": dataset,
            # the evaluate command's default folder; the shared LGG set is found through MEDVIZ_DATA_DIR instead
            "data": None if root.resolve() == default_data_dir().resolve() else str(root.resolve()),
            "layout": self.layout(), "label_value": label_value,
            "file": files[0], **({"shards": [{"file": f} for f in files]} if len(files) > 1 else {}),
            "card": f"{name}.md", "arch": self.arch(), "classes": classes,
            "input": {"channels": channels, **spec,
                      "normalisation": "per channel over the whole stack: (x - min) / p99(x > min), clipped to [0, 1.5]"},
            "cam_layer": self.cam_layer(),
            "threshold": choice.threshold, "min_size": choice.min_size, "tta": choice.tta,
            "val_dice_by_tta": choice.val_dice_by_tta,
            "dtype": "float16" if use_half else "float32",
            "val_dice_patient": choice.val_dice,
            "test_dice_patient": test["dice_mean_per_patient"] if test else None,
            **({"cv": cv} if cv else {}),
        }

    def _cv_report(self, choice: ValChoice, shipped: Any) -> dict[str, Any]:
        """The cross-validation record of the manifest entry: folds, seed, and for a fold ensemble the
        out-of-fold scores with the chosen post-processing, pooled (mean, median, CI, false-positive rate)
        and per fold; for a single fold run, which fold it held out."""
        a = self.options
        report: dict[str, Any] = {"folds": a.folds, "fold_seed": a.fold_seed, "pool": sum(map(len, self.folds()))}
        if not a.members:
            return {**report, "fold": a.fold}
        preds = self._selection_predictions(shipped, choice.tta)  # the shipped weights' out-of-fold predictions
        pooled = ev.score(preds, choice.threshold, choice.min_size)
        per_fold = []
        for i, fold in enumerate(self.folds()):
            f = ev.score({c: preds[c] for c in fold}, choice.threshold, choice.min_size, 0)
            per_fold.append({"fold": i, "n_patients": f["n_patients"], "dice_mean_per_patient": f["dice_mean_per_patient"],
                             "fp_rate_empty_slices": f["fp_rate_empty_slices"]})
        keep = ("n_patients", "n_slices", "dice_mean_per_patient", "dice_median_per_patient", "dice_ci95",
                "fp_rate_empty_slices", "fp_slices", "empty_slices", "per_patient")
        return {**report, "members": [str(m) for m in a.members], "members_note": a.members_note,
                "per_fold": per_fold, **{k: pooled[k] for k in keep}}

    def _patient_split_text(self) -> str:
        """``"train 49 / val 10 / test 6 patients"`` from the folder's splits.json."""
        n = {sp: len(v) for sp, v in (read_splits(self.data_dir()) or {}).items() if sp in ("train", "val", "test")}
        return " / ".join(f"{sp} {k}" for sp, k in n.items()) + " patients" if n else "no splits.json: every case"

    def _split_text(self) -> str:
        root = self.data_dir()
        n = {s: len(cases(root, s)) for s in ("train", "val", "test")}
        return f"{split_source(root)}: train {n['train']} / val {n['val']} / test {n['test']} cases"


class _Unwrap:
    """Dataset view returning the single dict of a ``num_samples=1`` crop list."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds
        self.transform = getattr(ds, "transform", None)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.ds[i]
        return item[0] if isinstance(item, list) else item


