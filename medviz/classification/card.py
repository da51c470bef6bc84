"""The model card (markdown) of a classifier, written from its manifest entry at export."""

from __future__ import annotations

from typing import Any

from medviz.classification.metrics import format_ci
from medviz.models.specs import ClassifierSpec


def _arch_text(spec: ClassifierSpec) -> str:
    arch = spec.arch
    if not arch.is_ensemble:
        return f"MONAI `{arch.name}` (preset `{spec.arch_preset}`), kwargs `{arch.kwargs}`."
    members = arch.members
    return (f"Ensemble of {len(members)} MONAI `{members[0].name}` (preset `{spec.arch_preset}`) trained with "
            f"different seeds; output = log of the members' mean softmax probabilities "
            f"(`medviz.models.ensemble`). Member kwargs `{members[0].kwargs}`.")


def _loss_text(spec: ClassifierSpec) -> str:
    """The training loss as recorded at export (older entries: the spec's default class-weighted loss)."""
    loss = spec.loss
    weights = {"balanced": "class-weighted (inverse frequency)", "sqrt": "class-weighted (square root of inverse "
               "frequency)", "none": "unweighted"}.get(loss.class_weights, loss.class_weights)
    smoothing = f", label smoothing {loss.label_smoothing:g}" if loss.label_smoothing else ""
    return f"{weights} cross-entropy{smoothing}"


def _weights_text(spec: ClassifierSpec) -> str:
    if not spec.shards:
        return f"Weights `{spec.file}`"
    names = [s.file for s in spec.shards]
    return f"Weights in {len(names)} shards ({', '.join('`' + n + '`' for n in names)}; each file <= 16 MB)"


def _selection_text(spec: ClassifierSpec, sel: dict[str, Any]) -> str:
    if not spec.arch.is_ensemble:
        return (f"Selected on validation AUC: best epoch {sel.get('best_epoch')} of {sel.get('epochs_run')} "
                f"({sel.get('status')}).")
    return ("Assembled (no further training) from the selected weights of the member runs "
            f"{', '.join('`' + m + '`' for m in spec.provenance.get('members', []))}. Members trained with:\n\n"
            f"{spec.provenance.get('members_note') or '(not recorded)'}")


def model_card(spec: ClassifierSpec) -> str:
    """Markdown model card of a classifier (every number comes from ``spec``, parsed from its manifest entry)."""
    inp, m, rec = spec.input, spec.metrics, spec.provenance
    test, val = m.get("test"), m["val"]
    rows = ["| split | n | AUC | 95% CI | ACC | 95% CI | ECE raw -> calibrated |", "|---|---|---|---|---|---|---|"]
    if test:
        rows.append(f"| test | {test['n']} | {test['auc']:.3f} | {format_ci(test['ci95']['auc'])} | {test['acc']:.3f} | "
                    f"{format_ci(test['ci95']['acc'])} | {test['ece']:.3f} -> {test['ece_calibrated']:.3f} |")
    rows.append(f"| val (selection) | {val['n']} | {val['auc']:.3f} | | {val['acc']:.3f} | | "
                f"{val['ece']:.3f} -> {val['ece_calibrated']:.3f} |")
    refs = "\n".join(f"| {r['method']} | {r['auc']:.3f} | {r['acc']:.3f} |" for r in spec.references)
    sel = m.get("selection", {})
    name = spec.name
    return f"""# {name}

{spec.dataset} classifier ({spec.n_classes} classes: {', '.join(spec.classes)}).
Research and teaching use only; **not a medical device**.

## Data and licence
{rec['data']['source']}. File `{rec['data']['file']}` under `MEDVIZ_DATA_DIR`. Licence: {rec['data']['license']}
(cite MedMNIST v2, Yang et al., Sci. Data 2023, and the source data set).

## Input and preprocessing
{inp.modality_label} (modality `{inp.modality}`), {inp.channels} channel(s), square images; trained on
{inp.native_size or 'folder'}-pixel 8-bit images. Preprocessing (`{rec['preprocessing']['function']}`):
{'; '.join(rec['preprocessing']['steps'])}. Training augmentation, batched per sample
(`ClassificationTask.augment`): random affine warp with MONAI's `AffineTransform` layer (rotation, 0.9-1.1 scale,
+-8 % shift), flips, gamma 0.8-1.25, Gaussian noise; loss: {_loss_text(spec)}.

## Architecture
{_arch_text(spec)}
Grad-CAM layer `{spec.cam_layer}`. {_weights_text(spec)} ({rec['weights_dtype']}; fp16 kept only if
val AUC/ACC match fp32: {rec['fp16_check']}).

## Training (reproduce)
```
OMP_NUM_THREADS=1 {rec['command']}
```
{_selection_text(spec, sel)}
Temperature scaling fitted on val (torch LBFGS, NLL): T = {spec.temperature:.4f}
(val NLL {val['nll']:.4f} -> {val['nll_calibrated']:.4f}).

## Results
{chr(10).join(rows)}

95 % CIs: percentile bootstrap, 1000 resamples of the test cases, seed 0. Reproduce with
`python -m medviz.evaluate --model {name}` (AUC: {'class-1 ROC AUC' if spec.n_classes == 2 else 'macro one-vs-rest'}; ACC: arg-max).

Published references (test split, ../shared/docs/BENCHMARKS.md):

| method | AUC | ACC |
|---|---|---|
{refs}

## Intended use and limits
Demonstrates calibrated classification and Grad-CAM on {inp.native_size or ''}-pixel thumbnails in MedViz.
Not for diagnosis. Inputs far from the training data (other modality, views, adult vs paediatric, high-resolution
detail lost at 28 px) are out of scope; the Classify page warns on modality, channels, size, intensity and aspect
mismatches. Small test sets make AUC/ACC uncertain (see CIs). Temperature is fitted on a small validation split.
"""
