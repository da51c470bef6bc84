"""Out-of-distribution detection for the sequence model: abstain on stacks unlike its training stacks.

The scores are per slice, from the features the model itself reads (:func:`medviz.sequence.encoder.slice_features`:
the segmenter's bottleneck mean and maximum over the slice, 2 x 256 numbers, and its two probability features).
Each is the Mahalanobis distance to the nearest class mean (slices with and without FLAIR abnormality; one
Ledoit-Wolf-shrunk covariance; fitted on the **train** stacks), higher = less like training:

* ``mahalanobis``: all the features (514);
* ``mahalanobis_mean``: the 256 bottleneck means;
* ``mahalanobis_max``: the 256 bottleneck maxima.

The score kept and its threshold are chosen on **validation** data only, by the classifiers' criterion and
threshold rule (:func:`medviz.models.ood_stats.choose_score`, :func:`medviz.models.ood_stats.gap_threshold`):
in distribution, the slices of the val stacks; out of distribution, the slices of the validation families
(:data:`VALIDATION_FAMILIES`: an abdominal CT and an abdominal MR volume, and the Kermany val chest X-rays as
one-slice images), none of which is in the test look (:data:`EVALUATION_FAMILIES`).

The model reads a whole stack, so a stack is answered or not as a whole: it **abstains when its median slice
score is above the threshold**, or when its declared modality is not MR (the classifiers'
input check, :func:`modality_reason`; :func:`assess`). The
statistics live beside the weights (``<name>.ood.safetensors``) with the manifest entry's ``ood`` field.

Fit, then measure once on test and record the look in the card::

    python -m medviz.sequence.ood --model lgg_slice_gru
    python -m medviz.evaluate --model lgg_slice_gru --ood --json > RESULT.json
    python -m medviz.sequence.ood --model lgg_slice_gru --card RESULT.json
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.io.loader import LoadError, load_path
from medviz.models import ood_stats
from medviz.models.ood_record import (
    LOOKS_HEADING,
    OOD_HEADING,
    check_look,
    checked_arrays,
    data_dir,
    float32,
    record_look,
    run_cli,
    stats_out_dir,
    test_looks,
    unchanged_detector,
)
from medviz.models.ood_stats import OODError, abstention_rate, auroc, fit_gaussians, gap_threshold, mahalanobis_score
from medviz.models.registry import ModelEntry, sha256_file, upsert_entry, with_field
from medviz.sequence.data import default_data_dir, load_stack, split_cases
from medviz.sequence.encoder import BOTTLENECK_CHANNELS, FEATURES, slice_features
from medviz.sequence.infer import load_models, prepare_stack
from medviz.types import MedvizError

#: Candidate scores -> the feature columns each reads (in the order ties are broken).
SCORES = {"mahalanobis": slice(None),
          "mahalanobis_mean": slice(0, BOTTLENECK_CHANNELS),
          "mahalanobis_max": slice(BOTTLENECK_CHANNELS, 2 * BOTTLENECK_CHANNELS)}
#: How the score is chosen and thresholded, fixed before the test look.
CRITERION = ("the classifiers' criterion on slices: highest worst-family abstention rate at the val threshold (the "
             "smallest val-slice score whose one-sided 95 % Clopper-Pearson upper bound on the val abstention rate "
             "is at most 5 %) over the validation OOD families (abdominal CT and MR NIfTI volumes, Kermany val "
             "chest X-rays), ties broken by the higher mean val AUROC, then in the order mahalanobis, "
             "mahalanobis_mean, mahalanobis_max; threshold: the midpoint between that val threshold and the lowest "
             "1st percentile of the validation families' slice scores when that is higher; a stack abstains when "
             "its median slice score is above the threshold, or when its declared modality is not MR (the "
             "classifiers' input check; added after the first test look, where CT and ultrasound stacks were answered)")
#: Out-of-distribution data the score is chosen on: family -> paths under the data folder (never in the test look).
VALIDATION_FAMILIES = {
    "ct_abdomen": ("abdominal CT volume (NIfTI, 112 slices)", ("ct_abdomen_3d_totalsegmentator/example_ct.nii.gz",)),
    "mr_abdomen": ("abdominal MR volume (NIfTI, 20 slices)", ("ct_abdomen_3d_totalsegmentator/example_mr_sm.nii.gz",)),
    "kermany_cxr": ("Kermany val chest X-rays (one-slice images)", ("cxr_pneumonia_kermany/val",)),
}
#: Out-of-distribution stacks of the one test look: family -> (what, paths under the data folder).
EVALUATION_FAMILIES = {
    "ct_series": ("CT DICOM series, 20 slices (TotalSegmentator example)", ("dicom_series_ct_totalsegmentator",)),
    "mr_prostate": ("MR prostate ADC DICOM series, 20 slices (QIN-PROSTATE)", ("dicom_series_mr_prostate_adc_qin",)),
    "ct_liver": ("CT, 3 slices with a liver SEG", ("dicom_ct_3slice_with_liver_seg",)),
    "ultrasound": ("ultrasound multi-frame DICOM", ("dicom_single_files/OBXXXX1A_rle_2frame.dcm",)),
}
#: The sequence model reads at least this many slices.
MIN_SLICES = 2


@dataclass(frozen=True)
class SequenceOOD:
    """The fitted detector (read from ``<name>.ood.safetensors``).

    Attributes:
        score: the chosen score name (a key of :data:`SCORES`).
        threshold: a slice scores above it = unlike the training slices.
        means: ``(2, D)`` class means of the chosen feature columns on the train slices.
        precision: ``(D, D)`` shared precision matrix.
        val_scores: the chosen score of every val slice, sorted (the in-distribution range).
        val_abstention: fraction of val stacks that abstain at the threshold.
    """

    score: str
    threshold: float
    means: np.ndarray
    precision: np.ndarray
    val_scores: np.ndarray
    val_abstention: float

    def slice_scores(self, features: np.ndarray) -> np.ndarray:
        """The score of every slice of ``(Z, F)`` features -> ``(Z,)``."""
        f = np.asarray(features, dtype=np.float64)[:, SCORES[self.score]]
        return mahalanobis_score(f[None], self.means[None], self.precision[None])


@dataclass(frozen=True)
class StackOOD:
    """Whether the sequence model abstains on one stack.

    Attributes:
        score_name: the score.
        slice_scores: ``(Z,)`` every slice's score.
        threshold: slices above it are unlike the training slices.
        val_range: ``(min, median, max)`` of the val slices' scores.
        reasons: why the model abstains, in words (empty: it does not).
    """

    score_name: str
    slice_scores: np.ndarray
    threshold: float
    val_range: tuple[float, float, float]
    reasons: list[str]

    @property
    def abstain(self) -> bool:
        return bool(self.reasons)

    @property
    def fraction_above(self) -> float:
        return float(np.mean(self.slice_scores > self.threshold))


def stack_abstains(slice_scores: np.ndarray, threshold: float) -> bool:
    """The median slice score is above ``threshold``: more than half of an odd number of slices are above it;
    of an even number, half may be, when the two middle scores average above it."""
    return bool(np.median(np.asarray(slice_scores, dtype=np.float64)) > threshold)


def modality_reason(modality: str | None) -> str | None:
    """The input check that abstains on its own: a declared modality other than MR (``OT``/None: unknown, as a
    NIfTI, PNG or JPEG until the user sets it)."""
    m = (modality or "OT").upper()
    return None if m in ("MR", "OT") else f"its modality {m} is not the model's (brain MR)"


def assess(stats: SequenceOOD, features: np.ndarray, modality: str | None = None) -> StackOOD:
    """The abstention decision of one stack's ``(Z, F)`` features and declared ``modality``."""
    s = stats.slice_scores(features)
    v = stats.val_scores
    why = modality_reason(modality)
    reasons = [why] if why else []
    if stack_abstains(s, stats.threshold):
        reasons.append(f"{np.mean(s > stats.threshold):.0%} of its slices score above the threshold "
                       f"{stats.threshold:.3g} of the {stats.score} score (median {np.median(s):.3g}; the model's "
                       f"validation slices range {v[0]:.3g}–{v[-1]:.3g})")
    return StackOOD(stats.score, s, stats.threshold, (float(v[0]), float(np.median(v)), float(v[-1])), reasons)


# ---- data ----------------------------------------------------------------------------------------


def family_stacks(root: Path, paths: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray, str]]:
    """``(label, (Z, 3, H, W) stack, modality)`` of every series under ``paths`` (a file, a DICOM series folder, or a folder
    of PNG/JPEG images: one one-slice stack each), read as the app reads an upload and prepared as the sequence
    strip prepares it (:func:`medviz.sequence.infer.prepare_stack`).

    Raises:
        OODError: a path is missing or cannot be read (named, in words).
    """
    for rel in paths:
        path = root / rel
        if not path.exists():
            raise OODError(f"{path} not found")
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else []
        for f in images or [path]:
            try:
                result = load_path(f)
            except (LoadError, MedvizError) as e:
                raise OODError(f"{f}: {e}") from e
            for series in result.series:
                yield (f"{f.relative_to(root)}:{series.key}", prepare_stack(series.volume, min_slices=1)[0],
                       series.volume.modality)


#: Files of a folder read one by one (each a one-slice image); any other folder is read as a DICOM series.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# ---- fitting -------------------------------------------------------------------------------------


def lgg_root(data: Path | None) -> Path:
    """The LGG folder: ``<data>/lgg_flair_mri_seg`` with ``data``, else the shared one."""
    return default_data_dir() if data is None else Path(data) / default_data_dir().name


def split_features(segmenter: Any, lr_flip: bool, root: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per stack of the LGG ``split``: ``(features [(Z, F)...], slice labels [(Z,)...])``."""
    cases, named = split_cases(root, split)
    if named != split:  # without splits.json every case is in every split, test included
        raise OODError(f"{root} has no splits.json: the OOD detector needs its patient split (train, val, test)")
    feats, labels = [], []
    for case in cases:
        stack = load_stack(root, case)
        feats.append(slice_features(segmenter, stack.x, lr_flip=lr_flip))
        labels.append(stack.labels)
    return feats, labels


def candidate_scores(features: np.ndarray, fitted: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every candidate's score of ``(N, F)`` slice features: name -> ``(N,)``."""
    f = np.asarray(features, dtype=np.float64)
    return {name: mahalanobis_score(f[None, :, SCORES[name]], mu[None], p[None]) for name, (mu, p) in fitted.items()}


def fit(entry: ModelEntry, data: Path | None = None, device: str = "cpu", out_dir: Path | None = None,
        register: bool = True) -> dict[str, Any]:
    """Fit the detector of sequence model ``entry`` on its train stacks, choose and threshold the score on val
    (:data:`CRITERION`), write ``<name>.ood.safetensors`` and (``register``) the manifest's ``ood`` field.
    No test image is read.

    Returns:
        The manifest ``ood`` field written.
    """
    from safetensors.numpy import save_file

    _, segmenter, entry = load_models(entry.name, device=device, weights_dir=entry.weights_dir)
    spec = entry.spec
    root, lgg = data_dir(data), lgg_root(data)
    f_train, y_train = split_features(segmenter, spec.lr_flip, lgg, "train")
    f_all, y_all = np.concatenate(f_train), np.concatenate(y_train)
    fitted, shrinkage = {}, {}
    for name, cols in SCORES.items():
        mu, p, a = fit_gaussians(f_all[:, cols], y_all, 2)
        fitted[name], shrinkage[name] = (float32(mu), float32(p)), float(a)
    f_val, _ = split_features(segmenter, spec.lr_flip, lgg, "val")
    id_val = candidate_scores(np.concatenate(f_val), fitted)
    ood_val = {}
    for fam, (_, paths) in VALIDATION_FAMILIES.items():
        stacks = [slice_features(segmenter, x, lr_flip=spec.lr_flip) for _, x, _ in family_stacks(root, paths)]
        ood_val[fam] = candidate_scores(np.concatenate(stacks), fitted)
    best, record = ood_stats.choose_score(id_val, ood_val, tuple(SCORES))
    threshold, cp_threshold, quantile = gap_threshold(id_val[best], {f: v[best] for f, v in ood_val.items()})
    per_stack = np.split(id_val[best], np.cumsum([len(f) for f in f_val])[:-1])
    layers = [f"{spec.segmenter} bottleneck and output"]
    out_dir = stats_out_dir(out_dir, register, entry.weights_dir)
    file = f"{spec.name}.ood.safetensors"
    mu, p = fitted[best]
    save_file({"means": mu.astype(np.float32), "precision": p.astype(np.float32),
               **{f"val_{n}": v.astype(np.float64) for n, v in id_val.items()},
               **{f"oodval_{f}": v[best].astype(np.float64) for f, v in ood_val.items()}}, str(out_dir / file),
              metadata={"model": spec.name, "model_sha256": str(spec.sha256)})
    ood = {"file": file, "sha256": sha256_file(out_dir / file), "score": best, "threshold": threshold,
           "val_abstention": float(np.mean([stack_abstains(s, threshold) for s in per_stack])),
           "layers": layers, "criterion": CRITERION,
           "threshold_rule": "val-slice threshold and validation-family gap as in the criterion; the val_abstention "
                             "is the fraction of val stacks that abstain",
           "val_threshold": cp_threshold, "ood_val_quantile": quantile,
           "val_slice_abstention": abstention_rate(id_val[best], threshold),
           "ood_val_abstention": {f: abstention_rate(v[best], threshold) for f, v in ood_val.items()},
           "candidates": record,
           "fitted_on": f"train stacks ({len(f_train)} patients, {len(y_all)} slices)",
           "shrinkage": [shrinkage[best]], "command": f"python -m medviz.sequence.ood --model {spec.name}",
           "created": datetime.date.today().isoformat(),
           **test_looks(spec.ood, unchanged_detector(spec.ood, best, threshold, layers, [shrinkage[best]], CRITERION))}
    if register:
        upsert_entry(with_field(entry, "ood", value=ood), out_dir)
    return ood


def load_stats(entry: ModelEntry) -> SequenceOOD | None:
    """The fitted detector of ``entry`` (None when none is registered).

    Raises:
        OODError: the statistics file is missing, fails its checksum or does not fit the manifest.
    """
    o = getattr(entry.spec, "ood", None)
    if o is None:
        return None
    path = entry.weights_dir / o.file
    arrays = checked_arrays(path, o.sha256)
    if o.score not in SCORES or not {"means", "precision", f"val_{o.score}"} <= set(arrays):
        raise OODError(f"{path.name} does not hold the {o.score} score of {entry.name}")
    width = len(range(FEATURES)[SCORES[o.score]])
    means, precision = arrays["means"].astype(np.float64), arrays["precision"].astype(np.float64)
    if means.shape != (2, width) or precision.shape != (width, width):
        raise OODError(f"{path.name} holds statistics of {means.shape[-1]} features; the {o.score} score reads {width}")
    return SequenceOOD(o.score, o.threshold, means, precision, np.sort(arrays[f"val_{o.score}"]), o.val_abstention)


# ---- the test look -------------------------------------------------------------------------------


def _rates(stacks: list[np.ndarray], modalities: list[str | None], threshold: float) -> dict[str, Any]:
    """Slice and stack figures of a family's per-stack slice scores and modalities (stacks of one slice count
    as slices only): stacks abstaining by the shipped rule (score or input check), by the score alone."""
    scores = np.concatenate(stacks)
    real = [(s, m) for s, m in zip(stacks, modalities) if len(s) >= MIN_SLICES]
    return {"n_slices": int(scores.size), "n_stacks": len(real),
            "slice_abstention": abstention_rate(scores, threshold),
            "stacks_abstaining": int(sum(stack_abstains(s, threshold) or modality_reason(m) is not None
                                         for s, m in real)),
            "stacks_abstaining_score_only": int(sum(stack_abstains(s, threshold) for s, _ in real))}


def evaluate_ood(entry: ModelEntry, data: Path | None = None, device: str = "cpu",
                 families: dict[str, tuple[str, tuple[str, ...]]] | None = None) -> dict[str, Any]:
    """``python -m medviz.evaluate --model NAME --ood``: the LGG test stacks (in distribution) against every
    family of :data:`EVALUATION_FAMILIES`; slice AUROC (out of distribution positive), the share of slices
    above the threshold, and how many stacks abstain.

    Bar (the classifiers' bar read at the level the model answers): slice AUROC >= 0.95 for every family,
    every out-of-distribution stack abstains and at most 5 % of the test stacks do."""
    stats = load_stats(entry)
    if stats is None:
        raise OODError(f"{entry.name} has no fitted OOD detector (python -m medviz.sequence.ood --model {entry.name})")
    _, segmenter, entry = load_models(entry.name, device=device, weights_dir=entry.weights_dir)
    lr_flip = entry.spec.lr_flip
    root = data_dir(data)
    f_test, _ = split_features(segmenter, lr_flip, lgg_root(data), "test")
    in_scores = [stats.slice_scores(f) for f in f_test]
    id_all = np.concatenate(in_scores)
    rows, pooled = [], []
    for fam, (what, paths) in (families or EVALUATION_FAMILIES).items():
        read = list(family_stacks(root, paths))
        stacks = [stats.slice_scores(slice_features(segmenter, x, lr_flip=lr_flip)) for _, x, _ in read]
        rows.append({"family": fam, "what": what, "auroc": auroc(id_all, np.concatenate(stacks)),
                     **_rates(stacks, [m for _, _, m in read], stats.threshold)})
        pooled += stacks
    idr = {"what": f"LGG test stacks ({len(in_scores)} patients)",
           **_rates(in_scores, ["MR"] * len(in_scores), stats.threshold)}
    failing = [f"{r['family']}: slice AUROC {r['auroc']:.3f} < 0.95" for r in rows if r["auroc"] < 0.95]
    failing += [f"{r['family']}: {r['n_stacks'] - r['stacks_abstaining']} of {r['n_stacks']} stacks answered"
                for r in rows if r["stacks_abstaining"] < r["n_stacks"]]
    if idr["stacks_abstaining"] > 0.05 * idr["n_stacks"]:
        failing.append(f"{idr['stacks_abstaining']} of {idr['n_stacks']} test stacks abstain")
    return {"model": entry.name, "task": entry.task, "ood": True, "ood_sha256": entry.spec.ood.sha256,
            "score": stats.score, "threshold": stats.threshold, "val_abstention": stats.val_abstention,
            "in_distribution": idr, "families": rows,
            "pooled": {"n_slices": int(sum(len(s) for s in pooled)), "auroc": auroc(id_all, np.concatenate(pooled))},
            "bar": {"met": not failing, "failing": failing}}


def format_ood_table(result: dict[str, Any]) -> str:
    """The table of :func:`evaluate_ood`, printed by the command and written into the model card."""
    idr = result["in_distribution"]
    lines = [f"{result['model']}: {result['score']} slice score, threshold {result['threshold']:.4g}; a stack "
             "abstains when its median slice score is above it or its declared modality is not MR", "",
             "| family | stacks | slices | slice AUROC | slices above | stacks abstaining | by the score alone |",
             "|---|---|---|---|---|---|---|"]

    def row(name: str, r: dict[str, Any], au: str) -> str:
        alone = r.get("stacks_abstaining_score_only", r["stacks_abstaining"])
        return (f"| {name} | {r['n_stacks']} | {r['n_slices']} | {au} | {r['slice_abstention']:.1%} | "
                f"{r['stacks_abstaining']} of {r['n_stacks']} | {alone} of {r['n_stacks']} |")

    lines.append(row(f"in distribution: {idr['what']}", idr, ""))
    lines += [row(f"{r['family']}: {r['what']}", r, f"{r['auroc']:.3f}") for r in result["families"]]
    lines.append(f"| pooled | | {result['pooled']['n_slices']} | {result['pooled']['auroc']:.3f} | | | |")
    bar = result["bar"]
    lines.append("\nBar (slice AUROC >= 0.95 for every family, every out-of-distribution stack abstains, at most 5 % "
                 "of the test stacks do): " + ("met." if bar["met"] else "NOT met: " + "; ".join(bar["failing"]) + "."))
    return "\n".join(lines)


def _look_line(look: dict[str, Any]) -> str:
    bar = "bar met" if look.get("bar_met") else "bar not met: " + "; ".join(look.get("failing", []))
    return (f"- {look.get('date', '')}: {look.get('score', '')} score, threshold {look.get('threshold', 0):.4g}, "
            f"{look.get('test_stacks_abstaining', 0)} test stacks abstaining, pooled slice AUROC "
            f"{look.get('pooled_auroc', 0):.3f}; {bar} (the superseded section above).")


def record_test(entry: ModelEntry, result: dict[str, Any]) -> None:
    """Append the OOD section (fit, choice, the test look's table) to the card and the look's summary to the
    manifest's ``ood.test``. Refused when this detector's look is already recorded: it is computed once, or when
    the entry has no card."""
    check_look(entry, result)
    o = entry.spec.ood
    date = datetime.date.today().isoformat()
    earlier = [_look_line(t) for t in o.record.get("earlier_tests", ())]
    only = "this rule's only look" if earlier else "the only look"
    looks = "\n".join([*earlier, f"- {date}: the table above ({only})."])
    cands = "; ".join(f"{n}: worst-family val slice abstention {c['worst_abstention']:.1%}, mean val AUROC "
                      f"{c['mean_auroc']:.3f}" for n, c in o.record.get("candidates", {}).items())
    fams = "; ".join(f"{f} {r:.1%}" for f, r in (o.record.get("ood_val_abstention") or {}).items())
    section = f"""{OOD_HEADING}
The Segment page's sequence strip abstains (no probabilities unless asked for with "show anyway") when the
median of a stack's slice scores is above {o.threshold:.4g} on the {o.score} score, or when the stack's declared
modality is not MR. Fitted with
`{o.record.get('command', '')}` on the {o.record.get('fitted_on', 'train stacks')}: class means (slices with and
without abnormality) and one Ledoit-Wolf-shrunk covariance of the slice features the model reads, statistics in
`{o.file}`. Chosen on validation data only by the rule fixed before the test look: {o.record.get('criterion', '')}.
Validation (each candidate at its own val threshold): {cands}. Threshold used {o.threshold:.4g} (the chosen
score's val threshold {o.record.get('val_threshold', 0):.4g}); at it {o.record.get('val_slice_abstention', 0):.1%} of
the val slices and {o.val_abstention:.0%} of the val stacks are above it, and of the validation families' slices:
{fams}.

Test look ({date}, computed once with `python -m medviz.evaluate --model {entry.name} --ood --json`):

{format_ood_table(result)}

{LOOKS_HEADING}
{looks}
"""
    record_look(entry, section, "rule", {"pooled_auroc": result["pooled"]["auroc"],
                                         "test_stacks_abstaining": result["in_distribution"]["stacks_abstaining"],
                                         "bar_met": result["bar"]["met"], "failing": result["bar"]["failing"]}, date)


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, "python -m medviz.sequence.ood", "sequence model", fit, record_test)


if __name__ == "__main__":
    raise SystemExit(main())
