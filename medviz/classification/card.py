"""The model card (markdown) of a classifier, written from its manifest entry at export."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from medviz.classification.metrics import format_ci
from medviz.models.ood_record import LOOKS_HEADING, OOD_HEADING, check_look, record_look
from medviz.models.registry import ModelEntry, RegistryError
from medviz.models.specs import ClassifierSpec

#: The heading an earlier detector's section gets when a refitted detector's test look is recorded.
OOD_SUPERSEDED = f"{OOD_HEADING}: an earlier detector, superseded"
#: What the stage scores read (:data:`medviz.classification.ood.STAGE_SCORES`).
STAGE_FEATURES = "the spatial mean of each residual stage's output"


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


def ood_table(result: dict[str, Any]) -> str:
    """The table of a ``python -m medviz.evaluate --ood`` result (:mod:`medviz.classification.ood_eval`),
    printed by the command and written into the model card's OOD section."""
    idr = result["in_distribution"]
    lines = [f"{result['model']}: {result['score']} score, threshold {result['threshold']:.4g} "
             f"(val abstention {result['val_abstention']:.1%})", "",
             "| family | n | AUROC | FPR at 95 % TPR | abstains | score only | input checks only |",
             "|---|---|---|---|---|---|---|",
             f"| in distribution: {idr['what']} | {idr['n']} | | | {idr['abstention']:.1%} | "
             f"{idr['abstention_score_only']:.1%} | {idr['abstention_input_checks']:.1%} |"]
    for r in result["families"]:
        if not r["n"]:
            lines.append(f"| {r['family']}: {r['what']} | 0 | | | | | |")
            continue
        mark = "" if r["in_bar"] else " (not in the bar)"
        lines.append(f"| {r['family']}{mark}: {r['what']} | {r['n']} | {r['auroc']:.3f} | {r['fpr_at_95_tpr']:.3f} | "
                     f"{r['abstention']:.1%} | {r['abstention_score_only']:.1%} | {r['abstention_input_checks']:.1%} |")
    p, bar = result["pooled"], result["bar"]
    lines.append(f"| pooled (families in the bar) | {p['n']} | {p['auroc']:.3f} | {p['fpr_at_95_tpr']:.3f} | | | |")
    verdict = "met" if bar["met"] else "NOT met: " + "; ".join(bar["failing"])
    lines.append(f"\nBar (pooled AUROC >= {bar['auroc_min']}, abstention >= {bar['abstention_min']:.0%} on every "
                 f"family in the bar, <= {bar['id_abstention_max']:.0%} on the test split): {verdict}.")
    if bar["families_auroc_below_bar"]:
        lines.append(f"Families with AUROC below {bar['auroc_min']}: {', '.join(bar['families_auroc_below_bar'])}.")
    return "\n".join(lines)


def _look_line(look: Mapping[str, Any]) -> str:
    bar = "bar met" if look.get("bar_met") else "bar not met: " + "; ".join(look.get("failing", []))
    return (f"- {look.get('date', '')}: {look.get('score', '')} score, threshold {look.get('threshold', 0):.4g}, "
            f"test-split abstention {look.get('test_abstention', 0):.1%}, pooled AUROC "
            f"{look.get('pooled_auroc', 0):.3f}; {bar} (the superseded section above).")


def _rule(ood: Any) -> str:
    rule = ood.record.get("threshold_rule")
    if not rule:
        return ""
    q = ood.record.get("ood_val_quantile")
    at = ood.record.get("ood_val_abstention") or {}
    fams = "; ".join(f"{f} {r:.1%}" for f, r in at.items())
    return (f"; placed by the rule {rule} (val threshold {ood.record.get('val_threshold', 0):.4g}, lowest 1st "
            f"percentile of a validation OOD family {'none' if q is None else f'{q:.4g}'}). The candidates' "
            "validation figures above are at their val thresholds; at the threshold used, the validation OOD "
            f"families abstain: {fams or 'not recorded'}")


def ood_section(spec: ClassifierSpec, result: dict[str, Any], date: str) -> str:
    """The model card's OOD section: how the detector was fitted and chosen, its test look, and the looks of
    the detectors before it."""
    ood = spec.ood
    cands = ood.record.get("candidates", {})
    val = "; ".join(f"{n}: worst-family val abstention {c['worst_abstention']:.1%}, mean val AUROC "
                    f"{c['mean_auroc']:.3f}" for n, c in cands.items())
    staged = not ood.layers[0].endswith("fc")
    features = (f"one Gaussian per residual stage and member ({STAGE_FEATURES}: {', '.join(ood.layers)}; class "
                "means and one shared covariance each, distances standardised by their train mean and spread)"
                if staged else "class means and one shared covariance of the penultimate features")
    earlier = [_look_line(t) for t in ood.record.get("earlier_tests", ())]
    only = "this detector's only look" if earlier else "the only look"
    looks = "\n".join([*earlier, f"- {date}: the table above ({only})."])
    return f"""{OOD_HEADING}
The Classify page and `python -m medviz.predict` abstain when the image's {ood.score} score is above
{ood.threshold:.4g} or an input check fails (declared modality, blank image, grey/colour mismatch).
Fitted with `{ood.record.get('command', '')}` on the {ood.record.get('fitted_on', 'train split')}: {features}
(Ledoit-Wolf shrinkage {', '.join(f'{a:.3g}' for a in ood.record.get('shrinkage', []))}), statistics in
`{ood.file}`. Score chosen on validation data only by the rule fixed before the test look:
{ood.record.get('criterion', '')}. Validation: {val}. Threshold: val abstention {ood.val_abstention:.1%}{_rule(ood)}.

Test look ({date}, computed once with `python -m medviz.evaluate --model {spec.name} --ood --json`; AUROC with
out-of-distribution as positive; FPR at 95 % TPR = share of a family kept when 95 % of the test split is kept;
"abstains" = the shipped rule):

{ood_table(result)}

{LOOKS_HEADING}
{looks}
"""


def record_ood_test(entry: ModelEntry, result: dict[str, Any]) -> None:
    """Append the OOD section (:func:`ood_section`) to the model card and the look's summary to the manifest's
    ``ood.test``. Refused when this detector's look is already recorded: it is computed once. A section of an
    earlier detector stays in the card, headed as superseded."""
    check_look(entry, result)
    date = datetime.date.today().isoformat()
    record_look(entry, ood_section(entry.spec, result, date), "detector",
                {"pooled_auroc": result["pooled"]["auroc"], "test_abstention": result["in_distribution"]["abstention"],
                 "bar_met": result["bar"]["met"], "failing": result["bar"]["failing"]}, date)


def note_unchanged_refit(entry: ModelEntry, date: str, change: str) -> None:
    """Add to the card's list of OOD test looks that a refit on ``date`` after ``change`` (in words: what changed
    in the validation data or rule) chose the same detector, so that its test look stands and no new look was
    taken."""
    ood = entry.spec.ood
    path = entry.card_path
    if ood is None or not path or not path.exists():
        raise RegistryError(f"{entry.spec.name!r} has no OOD detector or no model card to note the refit in")
    text = path.read_text()
    if f"refitted after {change};" in text:  # a rerun of the same refit: noted once
        return
    fams = "; ".join(f"{f} {r:.1%}" for f, r in (ood.record.get("ood_val_abstention") or {}).items())
    line = (f"- {date}: refitted after {change}; it chose the same {ood.score} score, threshold {ood.threshold:.4g} "
            f"and statistics, so the look above stands and no new look was taken. At that threshold the validation "
            f"OOD families abstain: {fams or 'not recorded'}.")
    path.write_text(text.rstrip() + "\n" + line + "\n")
