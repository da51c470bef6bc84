"""The model card (markdown) of a sequence model, written from its manifest entry at export."""

from __future__ import annotations

from typing import Any

from medviz.models.specs import SequenceSpec

METHOD_NAMES = {"position_prior": "position prior (no pixels)", "per_slice": "per-slice head (same features)",
                "per_slice_smoothed": "per-slice head + rolling mean", "segmenter_smoothed": "segmenter max prob + rolling mean"}


def _metric_rows(result: dict[str, Any]) -> str:
    rows = [f"| **GRU (this model)** | {result['auprc']:.4f} | {result['auroc']:.4f} | {result['log_loss']:.4f} | "
            f"{result['extent_error']:.2f} | | |"]
    for name, b in result["baselines"].items():
        d, ll = b["gru_minus_baseline"]["auprc"], b["gru_minus_baseline"]["log_loss"]
        rows.append(f"| {METHOD_NAMES.get(name, name)} | {b['auprc']:.4f} | {b['auroc']:.4f} | {b['log_loss']:.4f} | "
                    f"{b['extent_error']:.2f} | {d['difference']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}] | "
                    f"{ll['difference']:+.4f} [{ll['ci95_low']:+.4f}, {ll['ci95_high']:+.4f}] |")
    return ("| method | AUPRC | AUROC | log loss | extent error (slices) | GRU − method, AUPRC [95 % CI] | "
            "GRU − method, log loss [95 % CI] |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))


def _bar_parts(test: dict[str, Any]) -> tuple[bool, bool]:
    beats = all(test["auprc"] > b["auprc"] for b in test["baselines"].values())
    return beats, test["log_loss"] <= test["baselines"]["per_slice_smoothed"]["log_loss"]


def bar_met(test: dict[str, Any]) -> bool:
    """The bar: GRU test AUPRC above every baseline's and log loss not worse than ``per_slice_smoothed``."""
    return all(_bar_parts(test))


def bar_status(test: dict[str, Any]) -> str:
    """Whether the test result meets the bar (:func:`bar_met`), in words; and whether the paired intervals
    exclude 0."""
    beats, ll_ok = _bar_parts(test)
    sure = [n for n, b in test["baselines"].items() if b["gru_minus_baseline"]["auprc"]["ci95_low"] > 0]
    unsure = [n for n in test["baselines"] if n not in sure]
    verdict = "**met**" if beats and ll_ok else "**NOT met**"
    text = (f"Bar (GRU test AUPRC above every baseline's, log loss not worse than per_slice_smoothed): {verdict} "
            f"(AUPRC above every baseline: {'yes' if beats else 'no'}; log loss: {'yes' if ll_ok else 'no'}). ")
    text += (f"The paired 95 % interval of the AUPRC difference excludes 0 for: {', '.join(sure) or 'none'}; "
             f"it includes 0 for: {', '.join(unsure) or 'none'} — with {test['n_patients']} test patients those "
             "differences are not established.")
    return text + (" Aim (extent error <= 1 slice): " + ("met." if test["extent_error"] <= 1 else "not met."))


#: What is known of each encoder's training data, for the card (a segmenter not listed gets a generic line).
ENCODER_CAVEATS = {
    "lgg_unet": ("Caveat: that segmenter was trained on 34 of the 49 training patients (with their masks) and "
                 "selected on 5 of the\n10 validation patients, so its features are more confident on those patients "
                 "than on new ones; the val and test\nnumbers below are on patients whose role is as stated, but the "
                 "encoder is not independent of the training masks."),
}


def _encoder_caveat(segmenter: str) -> str:
    return ENCODER_CAVEATS.get(segmenter, f"Check `{segmenter}`'s card for which patients it was trained and "
                                          "selected on: the encoder may have seen this model's training masks.")


def _earlier_looks(spec: SequenceSpec) -> str:
    looks = spec.provenance.get("earlier_tests") or []
    if not looks:
        return ""
    rows = "\n".join(
        f"| {t.get('created')} | `{str(t.get('sha256'))[:12]}…` | {t['auprc']:.4f} | "
        f"{max(t['baselines_auprc'].values()):.4f} | {t['log_loss']:.4f} | {t['extent_error']:.2f} | "
        f"{'met' if t['bar_met'] else 'not met'} |" for t in looks)
    return ("\n\n### Earlier test looks (models this one replaced; each scored the test split once)\n"
            "| exported | weights | GRU AUPRC | best baseline AUPRC | log loss | extent error | bar |\n"
            f"|---|---|---|---|---|---|---|\n{rows}\n\nThis model's look above is test look {len(looks) + 1} "
            "of the sequence task. Its recipe was chosen on val only (see the training section), but the "
            "candidates\nit was chosen from were written after the earlier look(s) had failed the bar, so this "
            "look is not an independent\nconfirmation; with a margin this small, read it with the intervals.")


def _gru_width(arch_kwargs: dict[str, Any]) -> int:
    if arch_kwargs.get("inputs", "features") == "stacked":
        return 1 + len(arch_kwargs.get("context_features") or ())
    return int(arch_kwargs["n_features"])


def _inputs_text(arch_kwargs: dict[str, Any]) -> str:
    if arch_kwargs.get("inputs", "features") != "stacked":
        return ("Standardised features, their differences to the previous and next slice and the normalised "
                "slice position")
    return ("Stacked inputs (stacked generalisation): the per-slice head's logit -- in training the out-of-fold "
            "logit of\na 5-fold fit over the training stacks, so that the head's own fit to a stack does not reach "
            "the GRU; the head is\nfitted first and frozen -- and the segmenter's maximum probability and "
            "positive fraction, standardised, with\ntheir differences to the previous and next slice and the "
            "normalised slice position. Out of fold for the head, not for the\nencoder: the segmenter saw the "
            "masks of most training stacks (see the caveat above), so their features and\nlogits are still more "
            "confident than a new patient's")


def _ensemble_text(arch_kwargs: dict[str, Any]) -> str:
    k = int(arch_kwargs.get("members", 1))
    if k == 1:
        return ""
    return (f"\nDeep ensemble of {k} such GRUs (Lakshminarayanan et al., NeurIPS 2017): each member is initialised "
            "on its own and trained on its own\nloss (the mean of the members' losses is minimised); the model's "
            "probability is the members' mean probability.")


def render_card(spec: SequenceSpec, splits: dict[str, int], skipped_test: bool = False) -> str:
    """The card of the parsed manifest entry ``spec``; ``splits``: patients per split of the data folder."""
    a = spec.arch.kwargs
    m = spec.metrics
    note = spec.provenance.get("selection_note")
    val, test = m["val"], m["test"]
    sel = m.get("selection") or {}
    val_rows = "\n".join(f"| {n} | {v['auprc']:.4f} | {v['auroc']:.4f} | {v['log_loss']:.4f} | {v['extent_error']:.2f} |"
                         for n, v in val.items())
    if test is None:
        test_text = ("Not computed: candidate run exported with `--skip-test` (the test split was not touched)."
                     if skipped_test else "The data folder has no test split.")
    else:
        test_text = (f"{test['n_patients']} test patients, {test['n_slices']} slices, computed once at export.\n\n"
                     f"{_metric_rows(test)}\n\n{bar_status(test)}\n\n"
                     f"Reproduce: `python -m medviz.evaluate --model {spec.name} --json`{_earlier_looks(spec)}")
    return f"""# {spec.name}: tumour slices of an MR stack (slice features + bidirectional GRU)

## Task
For every axial slice of an LGG-style MR stack (channels T1, FLAIR, T1c), the probability that it shows
FLAIR abnormality (slice label: the reference mask is not empty). Research and teaching demo; not a medical device.

## Data and licence
LGG Segmentation Dataset (Buda / Mazurowski, TCGA-LGG via TCIA), `lgg_flair_mri_seg/` with its patient-level
`splits.json` (train {splits['train']} / val {splits['val']} / test {splits['test']} patients). Licence of the Kaggle release believed CC BY-NC-SA 4.0
(non-commercial); TCIA data-usage policy. Cite Buda et al., Comput Biol Med 2019;109:218-225 and TCIA TCGA-LGG.

## Slice encoder
The shipped segmentation model `{spec.segmenter}` (sha256 `{str(spec.segmenter_sha256)[:12]}…`), frozen:
global mean and maximum of its 256-channel bottleneck, its maximum output probability and the fraction of pixels
above 0.5 ({a['n_features']} features per slice{'; output averaged with the left-right mirror' if spec.lr_flip else ''}).
{_encoder_caveat(spec.segmenter)}

## Architecture
{_inputs_text(a)} ->
Linear({3 * _gru_width(a) + 1}, {a['proj']}) + ReLU + dropout {a['dropout']} -> `torch.nn.GRU` bidirectional,
{a['hidden']} units per direction (MONAI has no recurrent layers) -> Linear -> one logit per slice. Variable
stack lengths are padded and packed. Loss: binary cross-entropy over real slices (no class weights).{_ensemble_text(a)}

## Training command
```
{spec.provenance.get('command', '')}
```
Selected on validation AUPRC: best epoch {sel.get('best_epoch')} ({sel.get('status')}), val AUPRC
{sel.get('best_val', float('nan')):.4f}.
{('Recipe chosen on val before this run: ' + note) if note else ''}

## Baselines (rule fixed before training)
- `position_prior`: tumour frequency in 10 bins of normalised slice position, counted on the training labels.
- `per_slice`: logistic regression on the same standardised features (no context), C = {spec.per_slice_c:g}
  chosen on val by AUPRC.
- `per_slice_smoothed`: `per_slice` + centred rolling mean over {spec.per_slice_window} slice(s) (window tuned on val).
- `segmenter_smoothed`: the segmenter's maximum probability per slice + rolling mean over
  {spec.segmenter_window} slice(s) (window tuned on val).

## Validation (used for every choice above)
| method | AUPRC | AUROC | log loss | extent error |
|---|---|---|---|---|
{val_rows}

## Test
{test_text}

## Intended use and limits
Axial 3-channel LGG-style MR stacks of 256² slices (other inputs: lower accuracy or meaningless); a slice
probability, not a diagnosis. Small test set (6 patients): wide intervals.
"""
