"""Manifest fields and model card of a classifier trained on the Kermany chest X-ray layout."""

from __future__ import annotations

from typing import Any

from medviz.classification import kermany
from medviz.classification.kermany_eval import AIM, BAR, BASELINE, REFERENCES
from medviz.classification.metrics import format_ci
from medviz.models.specs import ClassifierSpec

SOURCE = ("Kermany paediatric chest X-rays (Kermany et al., Cell 2018; Mendeley Data v2, doi:10.17632/rscbjbr9sj.2): "
          "the official test (624) and val (16) splits complete and 1,566 of the 5,216 official train images, "
          "grey, shorter side 256 px, JPEG q92 (../shared/data/MANIFEST.md section 12)")


def entry_fields(size: int, seed: int) -> dict[str, Any]:
    """The manifest fields that differ from a MedMNIST classifier's (data, input, preprocessing, references)."""
    return {
        "dataset": "Kermany paediatric chest X-rays", "dataset_key": kermany.KEY,
        "input": {"channels": 1, "size": size, "native_size": kermany.NATIVE_SIZE, "modality": "DX",
                  "modality_label": "chest X-ray (paediatric, frontal)", "intensity_range": [0, 255], "bit_depth": 8,
                  "aspect": kermany.ASPECT},
        "preprocessing": {"function": "medviz.classification.preprocess.preprocess_image",
                          "steps": ["8-bit intensities / 255 -> [0, 1] (other data: window or min-max first)",
                                    "colour -> grey (ITU-R 601 luma)",
                                    "centre crop to the short side (256 x ~364 -> 256 x 256)",
                                    f"resize to {size}x{size} (area)"]},
        "references": [dict(r) for r in REFERENCES],
        "data": {"source": SOURCE, "file": f"{kermany.FOLDER}/labels.csv", "license": "CC BY 4.0",
                 "split": f"validation = {kermany.VAL_FRACTION:.0%} of each class's train patients (patient_id), "
                          f"numpy default_rng({seed}); official val (16) reported as an extra check only"},
    }


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _cell(r: dict[str, Any], key: str) -> str:
    ci = r.get(f"{key}_ci95") or [None, None]
    return _num(r.get(key)) if None in ci else f"{_num(r.get(key))} {format_ci(ci)}"


def _row(label: str, r: dict[str, Any]) -> str:
    return (f"| {label} | {r['n']} | {_cell(r, 'auc')} | {_cell(r, 'acc')} | {_cell(r, 'sensitivity')} | "
            f"{_cell(r, 'specificity')} | {_num(r.get('acc_at_threshold'))} |")


HEADER = ("| images | n | AUC [95 % CI] | ACC (arg-max) | sensitivity | specificity | ACC at threshold |\n"
          "|---|---|---|---|---|---|---|")


def _test_section(spec: ClassifierSpec, test: dict[str, Any] | None) -> str:
    if not test:
        return "Not evaluated on the test split at export (`--skip-test`)."
    sub, base = test.get("subsets", {}), test.get("comparison", {}).get(BASELINE, {})
    rows = [_row("all test images", test)]
    rows += [_row(label, sub[k]) for k, label in (("without_person_flag", "without the 320 person-number-flagged"),
                                                  ("person_flag_only", "only the 320 flagged")) if k in sub]
    comp = [_row(f"**{spec.name}** ({spec.input.size} px, threshold {test['threshold']:.3f})", test)]
    if "auc" in base:
        comp.append(_row(f"`{BASELINE}` (28 px, threshold 0.5)", base))
        for k, label in (("without_person_flag", "without flagged"), ("person_flag_only", "flagged only")):
            if k in base.get("subsets", {}):
                comp.append(_row(f"`{BASELINE}`, {label}", base["subsets"][k]))
    else:
        comp.append(f"| `{BASELINE}` | {base.get('error', 'not evaluated')} | | | | | |")
    bar = test.get("bar") or {}
    verdict = ("**met**" if bar.get("met") else
               f"**NOT met** (accuracy {test['acc']:.3f} vs {BAR['acc']}, AUC {test['auc']:.3f} vs {BAR['auc']})")
    aim = test.get("aim") or {}
    refs = "\n".join(f"| {r['method']} | {r['auc']:.3f} | {r['acc']:.3f} | {r.get('sensitivity', float('nan')):.3f} | "
                     f"{r.get('specificity', float('nan')):.3f} |" for r in spec.references)
    return f"""Test look: {test.get('date', '?')}, computed once at export by `{test.get('command', '?')}`
(the test split was not read before; nothing was chosen on it). Reproduce with
`python -m medviz.evaluate --model {spec.name} --json`.

{HEADER}
{chr(10).join(rows)}

Bar (Kermany et al. 2018: accuracy >= {BAR['acc']} and AUC >= {BAR['auc']} on this test split): {verdict}.
Aim (accuracy >= {AIM['acc']}, AUC >= {AIM['auc']}): {'met' if aim.get('met') else 'not met'}.
ECE {test['ece']:.3f} -> {test['ece_calibrated']:.3f} after temperature.

### Side by side: what the resolution bought (same 624 test images)
The 28-px model gets each radiograph through the same `preprocess_image` at 28 px (centre crop, area resize),
as its card says.

{HEADER}
{chr(10).join(comp)}

### Published references (same test split; ../shared/docs/BENCHMARKS.md)
| method | AUC | ACC | sensitivity | specificity |
|---|---|---|---|---|
{refs}

These were trained on the full official train split (5,216 images, Kermany) or on PneumoniaMNIST (MedMNIST);
this model saw 1,338 of the 1,566 train images held here (30 % of the official train split), from scratch."""


def cxr_model_card(spec: ClassifierSpec) -> str:
    """Markdown card of a Kermany-layout classifier (every number from ``spec``, parsed from its manifest entry)."""
    m, rec, inp = spec.metrics, spec.provenance, spec.input
    val, sel = m["val"], m.get("selection", {})
    ov = val.get("official_val")
    ov_row = _row("official val (extra check, not used)", ov) if ov else ""
    return f"""# {spec.name}

Paediatric chest X-ray pneumonia classifier at {inp.size} px (2 classes: {', '.join(spec.classes)}).
Research and teaching use only; **not a medical device**.

## Data and licence
{rec['data']['source']}. File `{rec['data']['file']}` under `MEDVIZ_DATA_DIR` (another folder in the same layout:
`--data DIR`). Licence: {rec['data']['license']}; cite Kermany et al., Cell 2018;172(5):1122-1131 and the Mendeley
data set. Split: {rec['data']['split']}.

## Input and preprocessing
{inp.modality_label} (modality `{inp.modality}`), 1 channel, stored at {inp.native_size} px on the short side.
Preprocessing, the same function in training, evaluation and on the Classify page
(`{rec['preprocessing']['function']}`): {'; '.join(rec['preprocessing']['steps'])}.
Training augmentation, batched per sample (`ClassificationTask.augment`, MONAI `AffineTransform`): with
probability 0.8 an affine warp (rotation up to `--rotate` degrees, scale 0.9-1.1, shift +-8 %), flips as
`--flip` says (this recipe: none; never vertical), gamma 0.8-1.25 (30 %), Gaussian noise sigma 0.02 (20 %).
Class imbalance: {spec.loss.class_weights} class-weighted cross-entropy (inverse class frequency of the training part).

## Architecture
MONAI `{spec.arch.name}` (preset `{spec.arch_preset}`), kwargs `{spec.arch.kwargs}`, random initialisation
(no pretrained weights). Grad-CAM layer `{spec.cam_layer}` (14 x 14 at 224 px). Weights `{spec.file}`
({rec['weights_dtype']}; fp16 kept only if val AUC/ACC match fp32: {rec['fp16_check']}).

## Training (reproduce)
```
{rec['command']}
```
Selection rule (fixed before training): the epoch with the highest val AUC on the patient-level validation set
(val_select = AUC - 1e-4 x min(NLL, 10), the NLL term only breaks ties). Best epoch {sel.get('best_epoch')} of
{sel.get('epochs_run')} ({sel.get('status')}). Temperature scaling on val (LBFGS, NLL): T = {spec.temperature:.4f}
(val NLL {val['nll']:.4f} -> {val['nll_calibrated']:.4f}). Operating threshold on val: the calibrated pneumonia
probability maximising Youden's J (ties: closest to 0.5): **{spec.operating_threshold:.4f}**.

## Results
### Validation (selection; {val['n']} images)
{HEADER}
{_row('val (patient-level, selection)', val)}
{ov_row}

### Test (official split, 624 images: 234 normal, 390 pneumonia)
{_test_section(spec, m.get('test'))}

"Person-number-flagged": the 320 test pneumonia images whose `personN` number, read without the bacteria/virus
subtype, also occurs in train (`person_num_in_other_official_split` in labels.csv). In all 170 such numbers the
train files are bacterial and the test files viral; the paper states the test patients are independent, so this
is most likely a collision of two person counters, not leakage. The flagged subset holds pneumonia images only,
so its AUC and specificity are undefined (n/a).

## Intended use and limits
Demonstrates calibrated classification and Grad-CAM on real paediatric frontal chest radiographs in MedViz.
Not for diagnosis. Trained on 1,338 images from scratch on 2 CPU cores: far less data and compute than the
published models. Adult, lateral or non-chest images are out of scope; the Classify page warns on modality,
channels, size, intensity and aspect mismatches. 95 % CIs: percentile bootstrap, 1000 resamples, seed 0.
"""


def format_cxr_table(result: dict[str, Any]) -> str:
    """The table ``python -m medviz.evaluate --model NAME`` prints for a Kermany-layout classifier."""
    rows = [_row("all", result)] + [_row(k, v) for k, v in result.get("subsets", {}).items()]
    for name, r in result.get("comparison", {}).items():
        rows.append(_row(f"{name} (28 px)", r) if "auc" in r else f"| {name} | {r.get('error')} |")
    bar = result.get("bar")
    tail = "" if bar is None else f"\nBar (acc >= {bar['acc']}, AUC >= {bar['auc']}): {'met' if bar['met'] else 'NOT met'}"
    return (f"{result['model']} ({result['dataset']}), split {result['split']}, n = {result['n']}, "
            f"threshold {result['threshold']:.4f}\n{HEADER}\n" + "\n".join(rows) + tail)
