"""Segmentation task: a 2D MONAI UNet for FLAIR-abnormality masks on LGG-style folders.

Data, chosen by the folder layout (:func:`medviz.data.nifti_pairs.detect_layout`): ``pairs.csv`` ->
:mod:`medviz.data.lgg` (3-channel slices T1 / FLAIR / T1c, binary masks, patient-level
``splits.json``); ``images/`` + ``labels/`` or ``imagesTr/`` + ``labelsTr/`` ->
:mod:`medviz.data.nifti_pairs` (3D NIfTI volumes cut into axial slices; foreground ``label > 0`` or
``--label-value K``; the UNet's input channels follow the data, 1 for grey volumes). Both layouts
export (weights, manifest entry with the data folder, model card). Each case stack is normalised per channel
(:func:`normalise_stack`, 99th percentile), the same policy :mod:`medviz.segment` applies at
inference. Training samples are random 2D crops (``--crop``, tumour-centred with probability
``pos/(pos+neg)`` via ``RandCropByPosNegLabeld``) with flips, small affine warps and intensity
jitter; validation runs on whole slices (padded to a multiple of the UNet stride). The network is
fully convolutional with batch norm, so crop training and whole-slice inference share statistics.

Loss: ``DiceCELoss`` (sigmoid, batch Dice). Monitor: ``val_dice_patient``, the mean over
validation patients of the Dice of each patient's whole stack (threshold 0.5, no post-processing).
At export, the probability threshold and the minimum 3D component size are chosen on val, then the
test split is evaluated once with that choice and written into the model card.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path
from typing import Any

from medviz.train.tasks.base import TaskData, TrainTask

DATASET_DIR = "lgg_flair_mri_seg"
QUALITY_BAR = 0.80  # the project's bar: mean per-patient Dice on the LGG test patients


def default_data_dir() -> Path:
    from medviz.config import data_path

    return data_path(DATASET_DIR)


class SegmentationTask(TrainTask):
    name = "segmentation"
    monitor = "val_dice_patient"
    mode = "max"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--crop", type=int, default=128, help="training crop size in pixels (default 128)")
        parser.add_argument("--pos-neg", type=float, nargs=2, default=(2.0, 1.0), metavar=("POS", "NEG"),
                            help="tumour-centred vs background crop ratio (default 2 1)")
        parser.add_argument("--unet-channels", type=int, nargs="+", default=[16, 32, 64, 128, 256])
        parser.add_argument("--res-units", type=int, default=2)
        parser.add_argument("--dropout", type=float, default=0.1)
        parser.add_argument("--cache-rate", type=float, default=1.0)
        parser.add_argument("--skip-test", action="store_true",
                            help="export without touching the test split (candidate runs)")
        cls.add_init_arguments(parser)
        parser.add_argument("--label-value", type=int, default=None, metavar="K",
                            help="NIfTI pairs: foreground is label == K (default: label > 0)")

    # ------------------------------------------------------------------ data
    def data_dir(self) -> Path:
        return Path(self.args.data) if getattr(self.args, "data", None) else default_data_dir()

    def layout(self) -> str:
        """``"lgg"`` (pairs.csv) or ``"nifti"`` (images/+labels/ or imagesTr/+labelsTr/)."""
        from medviz.data.seg_folders import layout

        return layout(self.data_dir())

    def _samples(self, split: str) -> list[dict[str, Any]]:
        import numpy as np

        from medviz.data import seg_folders
        from medviz.data.lgg import normalise_stack

        root = self.data_dir()
        out = []
        for case in seg_folders.cases(root, split):
            image, mask = seg_folders.load_case(root, case, getattr(self.args, "label_value", None))
            x = normalise_stack(image)
            for k in range(x.shape[0]):
                out.append({"image": x[k], "label": mask[k][None].astype(np.float32), "case": case, "slice": k})
        return out

    def build_data(self) -> TaskData:
        from monai.data import CacheDataset, Dataset
        from monai.transforms import (Compose, DivisiblePadd, RandAdjustContrastd, EnsureTyped, RandAffined,
                                      RandCropByPosNegLabeld, RandFlipd, RandScaleIntensityd, RandShiftIntensityd,
                                      SpatialPadd)

        from medviz.types import MedvizError

        logging.getLogger("monai").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*Num foregrounds 0.*")
        a = self.args
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
            from medviz.data.nifti_pairs import split_source

            k = getattr(a, "label_value", None)
            summary.update({"layout": "NIfTI image/label pairs (axial slices, LPS+)",
                            "split": split_source(self.data_dir()),
                            "foreground": "label > 0" if k is None else f"label == {k}",
                            "normalisation": "per case and channel: (x - min) / p99(x > min), clip [0, 1.5]"})
        return TaskData(train=train_ds, val=val_ds, summary=summary)

    # ------------------------------------------------------------------ model
    def arch(self) -> dict[str, Any]:
        ch = list(self.args.unet_channels)
        return {"name": "UNet", "kwargs": {
            "spatial_dims": 2, "in_channels": getattr(self, "in_channels", 3), "out_channels": 1, "channels": ch,
            "strides": [2] * (len(ch) - 1), "num_res_units": self.args.res_units, "norm": "batch",
            "dropout": self.args.dropout}}

    def build_model(self) -> Any:
        from medviz.models.nets import build_network

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

        from medviz.seg_measure import dice_score

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
        """Choose post-processing and fp16 on val, evaluate test once (when the folder has a test
        split), write weights + card. Works for both folder layouts."""
        import copy

        from medviz.data.lgg import read_splits
        from medviz.data.seg_folders import cases
        from medviz.evaluation import segmentation as ev
        from medviz.models.weights import load_state_dict, save_state_dict
        from medviz.segment import TTA_FLIPS

        root, lgg_layout = self.data_dir(), self.layout() == "lgg"
        label_value = getattr(self.args, "label_value", None)
        model = model.cpu().eval()
        predict = lambda m, split, tta: ev.predict_cases(m, root, cases(root, split),  # noqa: E731
                                                         label_value=label_value, tta=tta)
        # Test-time augmentation and post-processing are chosen together on val (ties: no TTA).
        val_by_tta = {tta: predict(model, "val", tta) for tta in TTA_FLIPS}
        tuned = {tta: ev.tune(preds) for tta, preds in val_by_tta.items()}
        tta = max(tuned, key=lambda t: (round(tuned[t][2], 9), t == "none"))
        threshold, min_size, val_dice = tuned[tta]
        # fp16 weights only if they keep the val score (within 0.002 Dice).
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.safetensors"
        save_state_dict(model, path, half=True)
        half = copy.deepcopy(model)
        half.load_state_dict(load_state_dict(path))
        val16 = ev.score(predict(half, "val", tta), threshold, min_size, 0)
        use_half = abs(val16["dice_mean_per_patient"] - val_dice) <= 0.002
        if not use_half:
            save_state_dict(model, path, half=False)
        test = None
        if (read_splits(root) or {}).get("test") and not getattr(self.args, "skip_test", False):
            test = ev.score(predict(half if use_half else model, "test", tta), threshold, min_size)
        val_raw = ev.score(val_by_tta["none"], 0.5, 0, 0)["dice_mean_per_patient"]
        n_ch = int(self.arch()["kwargs"]["in_channels"])
        if lgg_layout:
            from medviz.data.lgg import CHANNELS

            dataset, channels, classes = "LGG FLAIR abnormality (lgg_flair_mri_seg)", list(CHANNELS), \
                ["background", "FLAIR abnormality"]
            spec = {"modality": "MR", "slice_size": [256, 256]}
        else:
            fg = "label > 0" if label_value is None else f"label == {label_value}"
            dataset, classes = f"NIfTI image/label pairs in {root.name}/ (foreground {fg})", ["background", "foreground"]
            channels = ["R", "G", "B"] if n_ch == 3 else ["image"] * n_ch
            spec = {}
        entry = {
            "name": name, "task": "segmentation", "dataset": dataset,
            # the evaluate command's default folder; the shared LGG set is found through MEDVIZ_DATA_DIR instead
            "data": None if root.resolve() == default_data_dir().resolve() else str(root.resolve()),
            "layout": self.layout(), "label_value": label_value,
            "file": path.name, "card": f"{name}.md", "arch": self.arch(), "classes": classes,
            "input": {"channels": channels, **spec,
                      "normalisation": "per channel over the whole stack: (x - min) / p99(x > min), clipped to [0, 1.5]"},
            "threshold": threshold, "min_size": min_size, "tta": tta,
            "val_dice_by_tta": {t: float(v[2]) for t, v in tuned.items()},
            "dtype": "float16" if use_half else "float32",
            "val_dice_patient": val_dice,
            "test_dice_patient": test["dice_mean_per_patient"] if test else None,
        }
        args = (name, entry, metrics, command, val_raw, val_dice, val16["dice_mean_per_patient"], test, self.args)
        card = _card(*args) if lgg_layout else _folder_card(*args, split=self._split_text())
        (out_dir / f"{name}.md").write_text(card)
        return entry

    def _split_text(self) -> str:
        from medviz.data.nifti_pairs import split_source
        from medviz.data.seg_folders import cases

        root = self.data_dir()
        n = {s: len(cases(root, s)) for s in ("train", "val", "test")}
        return f"{split_source(root)}: train {n['train']} / val {n['val']} / test {n['test']} cases"


SKIPPED_TEST = "Not computed: candidate run exported with `--skip-test` (the test split was not touched)."


def _test_section(name: str, test: dict[str, Any] | None, args: Any, lgg_layout: bool) -> str:
    """The ``## Test metrics`` section of either card: the one test evaluation, or why there is none."""
    if test is None:
        if getattr(args, "skip_test", False):
            return f"## Test metrics\n{SKIPPED_TEST}"
        return ("## Test metrics\nThe folder has no test split (no `test` list in splits.json), so there is no "
                "held-out result: evaluate on data the model never saw with\n"
                f"`python -m medviz.evaluate --model {name} --data DIR --json`.")
    lo, hi = test["dice_ci95"]
    mean = test["dice_mean_per_patient"]
    rows = "\n".join(f"| {c} | {d:.4f} |" for c, d in test["per_patient"].items())
    if not lgg_layout:
        return (f"## Test metrics\nMean per-patient Dice **{mean:.4f}** (95 % bootstrap CI over cases "
                f"{lo:.4f}-{hi:.4f}) on {test['n_patients']} test case(s), evaluated once at export.\n"
                f"False-positive rate on slices without foreground: {test['fp_rate_empty_slices']:.4f}.\n\n"
                f"| test case | Dice |\n|---|---|\n{rows}")
    return f"""## Test metrics ({test['n_patients']} test patients, evaluated once)
Mean per-patient Dice **{mean:.4f}** (95 % bootstrap CI over patients
{lo:.4f}-{hi:.4f}); median {test['dice_median_per_patient']:.4f}.
False-positive rate on slices without tumour: {test['fp_rate_empty_slices']:.4f}
({test['fp_slices']}/{test['empty_slices']} slices).
Project quality bar (mean per-patient test Dice >= {QUALITY_BAR:.2f}): **{'met' if mean >= QUALITY_BAR else 'NOT met'}**.

| test patient | Dice |
|---|---|
{rows}

Reproduce: `python -m medviz.evaluate --model {name} --json --split test`"""


def _tta_text(entry: dict[str, Any]) -> str:
    """The card's line on test-time augmentation, chosen on val together with the post-processing."""
    scores = entry.get("val_dice_by_tta") or {}
    what = {"none": "none", "lr_flip": "mean of the slice and its left-right mirror"}
    compared = ", ".join(f"{t} {v:.4f}" for t, v in scores.items())
    return (f"Test-time augmentation chosen on val: {what.get(entry.get('tta', 'none'), entry.get('tta'))} "
            f"(val mean Dice after tuned post-processing: {compared}).")


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


def _card(name: str, entry: dict[str, Any], metrics: dict[str, Any], command: str, val_raw: float,
          val_dice: float, val16: float, test: dict[str, Any] | None, args: Any) -> str:
    from medviz.evaluation.segmentation import PUBLISHED

    a = entry["arch"]["kwargs"]
    return f"""# {name}: LGG FLAIR-abnormality segmentation (2D MONAI UNet)

## Data and licence
LGG Segmentation Dataset (Buda / Mazurowski, TCGA-LGG via TCIA), 45-patient subset in
`lgg_flair_mri_seg/` with its patient-level `splits.json` (train 34 / val 5 / test 6 patients).
Licence of the Kaggle release believed CC BY-NC-SA 4.0 (non-commercial); TCIA data-usage policy.
Cite Buda et al., Comput Biol Med 2019;109:218-225 and TCIA TCGA-LGG.

## Preprocessing
Input 3 channels (pre-contrast T1, FLAIR, post-contrast T1), each divided by its 99th percentile
(of voxels above the minimum) over the patient's whole stack and clipped to [0, 1.5]. Training: random {args.crop}² crops (tumour-centred : background = {args.pos_neg[0]:g} : {args.pos_neg[1]:g}),
left-right flips, affine (±15°, ±10 % scale, ±8 px), per-channel intensity scale ±25 %, shift ±0.05,
gamma 0.7-1.5.
Inference on whole 256² slices{' averaged with their left-right mirror (test-time augmentation, below)' if entry.get('tta') == 'lr_flip' else ''}.

## Architecture
MONAI `UNet` 2D, channels {a['channels']}, strides {a['strides']}, {a['num_res_units']} residual units,
batch norm, dropout {a['dropout']}; 1 output channel (sigmoid). Loss DiceCELoss (batch Dice + BCE).
Weights stored as {entry['dtype']} (fp16 val Dice {val16:.4f} vs fp32 {val_dice:.4f}).

## Training command
```
{command}
```
{('Initialisation (`--init`): ' + args.init_note + chr(10)) if getattr(args, 'init_note', '') else ''}Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')} ({metrics.get('status')}), selected on
validation mean per-patient Dice (threshold 0.5, no post-processing): {metrics.get('best_val', float('nan')):.4f}
(re-computed at export: {val_raw:.4f}).
Post-processing chosen on val: threshold {entry['threshold']}, remove 3D components smaller than
{entry['min_size']} voxels -> val mean per-patient Dice {val_dice:.4f}.
{_tta_text(entry)}

{_test_section(name, test, args, True)}

## Published reference
{PUBLISHED['source']}: mean Dice {PUBLISHED['dice_mean']} ({PUBLISHED['note']}).

## Intended use and limits
Research and teaching demo of FLAIR-abnormality outlining on axial brain MR of lower-grade
glioma patients; not a medical device. Trained on 34 patients from 5 TCGA institutions, 2D slices
without spacing; expects skull-stripped-like LGG-style 256² axial slices with the three channels above.
Single-channel input is replicated to 3 channels (lower accuracy); other modalities are out of scope.
Small test set (6 patients): wide confidence interval.
"""


def _folder_card(name: str, entry: dict[str, Any], metrics: dict[str, Any], command: str, val_raw: float,
                 val_dice: float, val16: float, test: dict[str, Any] | None, args: Any, split: str) -> str:
    """Model card of a model trained on a user's NIfTI pair folder (no published reference)."""
    a = entry["arch"]["kwargs"]
    return f"""# {name}: 2D MONAI UNet segmentation trained on {Path(entry['data']).name}/

## Data
{entry['dataset']}; folder `{entry['data']}` ({entry['layout']} layout).
Split: {split}. Licence and provenance: those of the user's data.

## Preprocessing
{len(entry['input']['channels'])} input channel(s), each scaled over the case's whole stack: (x - min) / p99(x > min),
clipped to [0, 1.5]. Axial slices of the LPS+-reoriented volumes. Training: random {args.crop}² crops
(foreground-centred : background = {args.pos_neg[0]:g} : {args.pos_neg[1]:g}), flips, small affine warps,
intensity jitter. Inference on whole slices.

## Architecture
MONAI `UNet` 2D, channels {a['channels']}, strides {a['strides']}, {a['num_res_units']} residual units,
batch norm, dropout {a['dropout']}; 1 output channel (sigmoid). Loss DiceCELoss.
Weights stored as {entry['dtype']} (fp16 val Dice {val16:.4f} vs fp32 {val_dice:.4f}).

## Training command
```
{command}
```
Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')} ({metrics.get('status')}), selected on
validation mean per-case Dice (threshold 0.5): {metrics.get('best_val', float('nan')):.4f} (re-computed at export:
{val_raw:.4f}). Post-processing chosen on val: threshold {entry['threshold']}, 3D components smaller than
{entry['min_size']} voxels removed -> val Dice {val_dice:.4f}.
{_tta_text(entry)}

{_test_section(name, test, args, False)}

## Intended use and limits
Trained from the MedViz Training page or command line on the user's own data; not validated beyond the
numbers above and not a medical device. Inputs should look like the training data (same modality,
{len(entry['input']['channels'])} channel(s), similar field of view and intensity range).
"""
