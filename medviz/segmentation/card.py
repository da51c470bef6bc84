"""Model cards of segmentation models (markdown): the LGG card and the card of a model trained on a
user's NIfTI pair folder, with the test section rendered in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medviz.models.specs import SegmenterSpec
from medviz.segmentation.evaluate import PUBLISHED
from medviz.segmentation.options import SegmentationTrainOptions

QUALITY_BAR = 0.80  # the project's bar: mean per-patient Dice on the LGG test patients


SKIPPED_TEST = "Not computed: candidate run exported with `--skip-test` (the test split was not touched)."


def _test_section(name: str, test: dict[str, Any] | None, options: SegmentationTrainOptions, lgg_layout: bool) -> str:
    """The ``## Test metrics`` section of either card: the one test evaluation, or why there is none."""
    if test is None:
        if options.skip_test:
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


def cv_section(spec: SegmenterSpec) -> str:
    """The ``## Cross-validation`` section: the fold ensemble's out-of-fold scores (pooled and per fold), or
    which fold a single fold run held out; "" for a model trained on the folder's train/val split."""
    cv = spec.provenance.get("cv")
    if not cv:
        return ""
    head = (f"## Cross-validation\n{cv['folds']} patient-level folds over the {cv['pool']} train + val patients "
            f"(`medviz.segmentation.folds`, fold seed {cv['fold_seed']}); the test patients are in no fold.\n")
    if "per_fold" not in cv:
        return (head + f"This is the fold-{cv['fold']} model: trained on the other folds, selected on fold {cv['fold']}; "
                "it is a member candidate, its export never touched test.\n\n")
    lo, hi = cv["dice_ci95"]
    rows = "\n".join(f"| {f['fold']} | {f['n_patients']} | {f['dice_mean_per_patient']:.4f} | "
                     f"{f['fp_rate_empty_slices']:.4f} |" for f in cv["per_fold"])
    note = f"\nHow the fold models were trained: {cv['members_note']}\n" if cv.get("members_note") else ""
    return (head + "The shipped model is the probability-averaging ensemble of the fold models (mean of their "
            "sigmoid outputs, as nnU-Net combines its folds). Every train/val patient was predicted once by the "
            "fold model that never trained on it; test-time augmentation and post-processing were chosen on "
            "these out-of-fold predictions, not on test.\n"
            f"Out-of-fold mean per-patient Dice **{cv['dice_mean_per_patient']:.4f}** (95 % bootstrap CI over "
            f"patients {lo:.4f}-{hi:.4f}; median {cv['dice_median_per_patient']:.4f}; {cv['n_patients']} patients), "
            f"false-positive rate on tumour-free slices {cv['fp_rate_empty_slices']:.4f} "
            f"({cv['fp_slices']}/{cv['empty_slices']}).\n\n"
            f"| fold | patients | out-of-fold Dice | FP rate |\n|---|---|---|---|\n{rows}\n{note}\n")


def _training_text(spec: SegmenterSpec, metrics: dict[str, Any], val_raw: float, val_dice: float) -> str:
    """How the weights were selected and the post-processing chosen (val split, or out-of-fold)."""
    cv = spec.provenance.get("cv") or {}
    if "per_fold" in cv:
        return (f"Assembled from the {cv['folds']} fold runs (no training in this command), each selected on its "
                f"own held-out fold. Out-of-fold mean per-patient Dice at threshold 0.5 without post-processing: "
                f"{val_raw:.4f}. Post-processing chosen on the out-of-fold predictions: threshold {spec.threshold}, "
                f"remove 3D components smaller than {spec.min_size} voxels -> {val_dice:.4f}.")
    return (f"Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')} ({metrics.get('status')}), "
            "selected on\nvalidation mean per-patient Dice (threshold 0.5, no post-processing): "
            f"{metrics.get('best_val', float('nan')):.4f}\n(re-computed at export: {val_raw:.4f}).\n"
            f"Post-processing chosen on val: threshold {spec.threshold}, remove 3D components smaller than\n"
            f"{spec.min_size} voxels -> val mean per-patient Dice {val_dice:.4f}.")


def _tta_text(spec: SegmenterSpec) -> str:
    """The card's line on test-time augmentation, chosen on val together with the post-processing."""
    scores = spec.val_dice_by_tta
    what = {"none": "none", "lr_flip": "mean of the slice and its left-right mirror"}
    compared = ", ".join(f"{t} {v:.4f}" for t, v in scores.items())
    return (f"Test-time augmentation chosen on val: {what.get(spec.tta, spec.tta)} "
            f"(val mean Dice after tuned post-processing: {compared}).")


def lgg_card(name: str, spec: SegmenterSpec, metrics: dict[str, Any], command: str, val_raw: float,
             val_dice: float, val16: float, test: dict[str, Any] | None,
             options: SegmentationTrainOptions, split: str) -> str:
    """The LGG card; ``split`` describes the folder's patient-level split (e.g. "train 49 / val 10 / test 6
    patients")."""
    members = spec.arch.kwargs.get("members")
    a = spec.network_kwargs
    what = f"ensemble of {len(members)} fold models, each a " if members else ""
    return f"""# {name}: LGG FLAIR-abnormality segmentation (2D MONAI UNet)

## Data and licence
LGG Segmentation Dataset (Buda / Mazurowski, TCGA-LGG via TCIA), subset in
`lgg_flair_mri_seg/` with its patient-level `splits.json` ({split}).
Licence of the Kaggle release believed CC BY-NC-SA 4.0 (non-commercial); TCIA data-usage policy.
Cite Buda et al., Comput Biol Med 2019;109:218-225 and TCIA TCGA-LGG.

## Preprocessing
Input 3 channels (pre-contrast T1, FLAIR, post-contrast T1), each divided by its 99th percentile
(of voxels above the minimum) over the patient's whole stack and clipped to [0, 1.5]. Training: random {options.crop}² crops (tumour-centred : background = {options.pos_neg[0]:g} : {options.pos_neg[1]:g}),
left-right flips, affine (±15°, ±10 % scale, ±8 px), per-channel intensity scale ±25 %, shift ±0.05,
gamma 0.7-1.5.
Inference on whole 256² slices{' averaged with their left-right mirror (test-time augmentation, below)' if spec.tta == 'lr_flip' else ''}.

## Architecture
{what}MONAI `UNet` 2D, channels {a['channels']}, strides {a['strides']}, {a['num_res_units']} residual units,
batch norm, dropout {a['dropout']}; 1 output channel (sigmoid). Loss DiceCELoss (batch Dice + BCE).
Weights stored as {spec.provenance['dtype']} (fp16 val Dice {val16:.4f} vs fp32 {val_dice:.4f}).

## Training command
```
{command}
```
{('Initialisation (`--init`): ' + options.init_note + chr(10)) if options.init_note else ''}{_training_text(spec, metrics, val_raw, val_dice)}
{_tta_text(spec)}

{cv_section(spec)}{_test_section(name, test, options, True)}

## Published reference
{PUBLISHED['source']}: mean Dice {PUBLISHED['dice_mean']} ({PUBLISHED['note']}).

## Intended use and limits
Research and teaching demo of FLAIR-abnormality outlining on axial brain MR of lower-grade
glioma patients; not a medical device. Trained on the patients above (TCGA institutions), 2D slices
without spacing; expects skull-stripped-like LGG-style 256² axial slices with the three channels above.
Single-channel input is replicated to 3 channels (lower accuracy); other modalities are out of scope.
Small test set (6 patients): wide confidence interval.
"""


def folder_card(name: str, spec: SegmenterSpec, metrics: dict[str, Any], command: str, val_raw: float,
                 val_dice: float, val16: float, test: dict[str, Any] | None,
                options: SegmentationTrainOptions, split: str) -> str:
    """Model card of a model trained on a user's NIfTI pair folder (no published reference)."""
    a = spec.network_kwargs
    return f"""# {name}: 2D MONAI UNet segmentation trained on {Path(spec.data).name}/

## Data
{spec.dataset}; folder `{spec.data}` ({spec.layout} layout).
Split: {split}. Licence and provenance: those of the user's data.

## Preprocessing
{len(spec.input.channels)} input channel(s), each scaled over the case's whole stack: (x - min) / p99(x > min),
clipped to [0, 1.5]. Axial slices of the LPS+-reoriented volumes. Training: random {options.crop}² crops
(foreground-centred : background = {options.pos_neg[0]:g} : {options.pos_neg[1]:g}), flips, small affine warps,
intensity jitter. Inference on whole slices.

## Architecture
MONAI `UNet` 2D, channels {a['channels']}, strides {a['strides']}, {a['num_res_units']} residual units,
batch norm, dropout {a['dropout']}; 1 output channel (sigmoid). Loss DiceCELoss.
Weights stored as {spec.provenance['dtype']} (fp16 val Dice {val16:.4f} vs fp32 {val_dice:.4f}).

## Training command
```
{command}
```
Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs_run')} ({metrics.get('status')}), selected on
validation mean per-case Dice (threshold 0.5): {metrics.get('best_val', float('nan')):.4f} (re-computed at export:
{val_raw:.4f}). Post-processing chosen on val: threshold {spec.threshold}, 3D components smaller than
{spec.min_size} voxels removed -> val Dice {val_dice:.4f}.
{_tta_text(spec)}

{_test_section(name, test, options, False)}

## Intended use and limits
Trained from the MedViz Training page or command line on the user's own data; not validated beyond the
numbers above and not a medical device. Inputs should look like the training data (same modality,
{len(spec.input.channels)} channel(s), similar field of view and intensity range).
"""
