"""The model card (markdown) of a classifier, written from its manifest entry at export."""

from __future__ import annotations

from typing import Any

from medviz.classification.metrics import format_ci


def _arch_text(entry: dict[str, Any]) -> str:
    arch = entry["arch"]
    if arch["name"] != "Ensemble":
        return f"MONAI `{arch['name']}` (preset `{entry['arch_preset']}`), kwargs `{arch['kwargs']}`."
    members = arch["kwargs"]["members"]
    return (f"Ensemble of {len(members)} MONAI `{members[0]['name']}` (preset `{entry['arch_preset']}`) trained with "
            f"different seeds; output = log of the members' mean softmax probabilities "
            f"(`medviz.models.ensemble`). Member kwargs `{members[0]['kwargs']}`.")


def _loss_text(entry: dict[str, Any]) -> str:
    """The training loss as recorded at export (older entries: the default class-weighted loss)."""
    loss = entry.get("loss") or {"class_weights": "balanced", "label_smoothing": 0.0}
    weights = {"balanced": "class-weighted (inverse frequency)", "sqrt": "class-weighted (square root of inverse "
               "frequency)", "none": "unweighted"}.get(loss["class_weights"], loss["class_weights"])
    smoothing = f", label smoothing {loss['label_smoothing']:g}" if loss.get("label_smoothing") else ""
    return f"{weights} cross-entropy{smoothing}"


def _weights_text(entry: dict[str, Any]) -> str:
    shards = entry.get("shards")
    if not shards:
        return f"Weights `{entry['file']}`"
    names = [s["file"] for s in shards]
    return f"Weights in {len(names)} shards ({', '.join('`' + n + '`' for n in names)}; each file <= 16 MB)"


def _selection_text(entry: dict[str, Any], sel: dict[str, Any]) -> str:
    if entry["arch"]["name"] != "Ensemble":
        return (f"Selected on validation AUC: best epoch {sel.get('best_epoch')} of {sel.get('epochs_run')} "
                f"({sel.get('status')}).")
    return ("Assembled (no further training) from the selected weights of the member runs "
            f"{', '.join('`' + m + '`' for m in entry.get('members', []))}. Members trained with:\n\n"
            f"{entry.get('members_note') or '(not recorded)'}")


def model_card(entry: dict[str, Any]) -> str:
    """Markdown model card of a classifier manifest entry (every number comes from ``entry``)."""
    inp, m = entry["input"], entry["metrics"]
    test, val = m.get("test"), m["val"]
    rows = ["| split | n | AUC | 95% CI | ACC | 95% CI | ECE raw -> calibrated |", "|---|---|---|---|---|---|---|"]
    if test:
        rows.append(f"| test | {test['n']} | {test['auc']:.3f} | {format_ci(test['ci95']['auc'])} | {test['acc']:.3f} | "
                    f"{format_ci(test['ci95']['acc'])} | {test['ece']:.3f} -> {test['ece_calibrated']:.3f} |")
    rows.append(f"| val (selection) | {val['n']} | {val['auc']:.3f} | | {val['acc']:.3f} | | "
                f"{val['ece']:.3f} -> {val['ece_calibrated']:.3f} |")
    refs = "\n".join(f"| {r['method']} | {r['auc']:.3f} | {r['acc']:.3f} |" for r in entry.get("references", []))
    sel = m.get("selection", {})
    name = entry["name"]
    return f"""# {name}

{entry['dataset']} classifier ({len(entry['classes'])} classes: {', '.join(entry['classes'])}).
Research and teaching use only; **not a medical device**.

## Data and licence
{entry['data']['source']}. File `{entry['data']['file']}` under `MEDVIZ_DATA_DIR`. Licence: {entry['data']['license']}
(cite MedMNIST v2, Yang et al., Sci. Data 2023, and the source data set).

## Input and preprocessing
{inp['modality_label']} (modality `{inp['modality']}`), {inp['channels']} channel(s), square images; trained on
{inp.get('native_size') or 'folder'}-pixel 8-bit images. Preprocessing (`{entry['preprocessing']['function']}`):
{'; '.join(entry['preprocessing']['steps'])}. Training augmentation, batched per sample
(`ClassificationTask.augment`): random affine warp with MONAI's `AffineTransform` layer (rotation, 0.9-1.1 scale,
+-8 % shift), flips, gamma 0.8-1.25, Gaussian noise; loss: {_loss_text(entry)}.

## Architecture
{_arch_text(entry)}
Grad-CAM layer `{entry['cam_layer']}`. {_weights_text(entry)} ({entry['weights_dtype']}; fp16 kept only if
val AUC/ACC match fp32: {entry['fp16_check']}).

## Training (reproduce)
```
OMP_NUM_THREADS=1 {entry['command']}
```
{_selection_text(entry, sel)}
Temperature scaling fitted on val (torch LBFGS, NLL): T = {entry['temperature']:.4f}
(val NLL {val['nll']:.4f} -> {val['nll_calibrated']:.4f}).

## Results
{chr(10).join(rows)}

95 % CIs: percentile bootstrap, 1000 resamples of the test cases, seed 0. Reproduce with
`python -m medviz.evaluate --model {name}` (AUC: {'class-1 ROC AUC' if len(entry['classes']) == 2 else 'macro one-vs-rest'}; ACC: arg-max).

Published references (test split, ../shared/docs/BENCHMARKS.md):

| method | AUC | ACC |
|---|---|---|
{refs}

## Intended use and limits
Demonstrates calibrated classification and Grad-CAM on {inp.get('native_size') or ''}-pixel thumbnails in MedViz.
Not for diagnosis. Inputs far from the training data (other modality, views, adult vs paediatric, high-resolution
detail lost at 28 px) are out of scope; the Classify page warns on modality, channels, size, intensity and aspect
mismatches. Small test sets make AUC/ACC uncertain (see CIs). Temperature is fitted on a small validation split.
"""
