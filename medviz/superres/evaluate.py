"""Evaluate a super-resolution model against its baselines on held-out patients.

``python -m medviz.evaluate --model lgg_flair_sr4_gan --json [--data DIR] [--split test] [--record]``

Arms: A bicubic, B the pixel-loss generator, C the GAN. A pixel-loss model (B) is compared with A; a GAN (C)
with A and with its pixel-loss twin B (``spec.twin``, from the same registry folder, else the shipped one). Every arm reads
the same input.

Protocol (the same for every arm):

* Cases: ``medviz.datasets.lgg.cases(root, split)``; a ``--data`` folder without ``splits.json`` gives
  every case (reported as split ``all``). Patients are processed one at a time.
* Every slice of a stack is scaled to ``[0, 1]`` by its maximum (:func:`medviz.superres.data.scale_to_max`),
  degraded (:func:`medviz.superres.degrade.degrade`, ``scale`` x area average) and super-resolved by every arm.
* PSNR (dB), SSIM and HFEN: per **brain slice** (:func:`~medviz.superres.data.is_brain_slice` of the real
  slice) inside :func:`~medviz.superres.data.brain_mask` of the real slice; the headline is the mean over
  all brain slices of all patients. A slice where a metric is not finite for some arm (an infinite PSNR of
  a perfect estimate of a constant slice, a NaN HFEN) is left out of that metric for every arm, so the arms
  stay paired (counted in ``left_out_slices``).
* Tumour PSNR (dB): per slice whose expert mask is not empty, the PSNR over that slice's tumour pixels (the
  mean squared error pooled over its tumour pixels); the headline is the mean over those slices.
* In-house Fréchet distance (``fid_inhouse``): :func:`~medviz.superres.metrics.frechet_distance` of the
  segmenter's bottleneck features (:func:`~medviz.superres.features.encoder_features`) of the arm's brain
  slices against those of the real brain slices, each slice's segmenter input being the whole stack with
  its FLAIR replaced by the arm's output (:func:`~medviz.superres.features.segmenter_input`). Not comparable
  with published FIDs (see :mod:`medviz.superres.features`).
* Downstream Dice: the segmenter (``spec.segmenter``, from the same registry folder or else the shipped one, with its own TTA,
  threshold and smallest component) on the arm's stack; 3D Dice per patient against the expert mask
  (:func:`medviz.segmentation.measure.dice_score`: both empty gives 1), mean over patients.
* False-positive components: :func:`~medviz.superres.features.false_positive_components`, summed over
  patients. The segmenter on the real FLAIR is reported as ``reference``.
* Differences (B − A, and C − B for a GAN): the headline difference on all patients, with a 95 % percentile
  interval from a paired patient bootstrap: patients are resampled with replacement (seed :data:`SEED`), the
  same resamples for every arm and metric, and each statistic is recomputed on the resampled patients'
  slices (for the Fréchet distance too, on the first ``fid_bootstrap`` resamples: each costs a 256 x 256
  matrix square root per arm).
* ``seconds_per_slice``: the arm's forward time (wall clock, on ``device``) per slice of a stack, median over
  patients.

The ``bar`` of the issue is computed from these numbers by :func:`medviz.superres.results.compute_bar`.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medviz.config import select_device
from medviz.constants import Task
from medviz.datasets.lgg import cases, load_case, read_splits
from medviz.models.errors import RegistryError
from medviz.models.weights import load_model
from medviz.options import EvalOptions, describe, non_default, option
from medviz.segmentation.measure import dice_score
from medviz.sequence.encoder import BOTTLENECK_CHANNELS
from medviz.superres import card
from medviz.superres.data import FLAIR_CHANNEL, brain_mask, default_root, is_brain_slice, scale_to_max
from medviz.superres.degrade import SuperResError
from medviz.superres.features import encoder_features, false_positive_components, segment, segmenter_input
from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS, bicubic_batch, degrade_batch, super_resolve
from medviz.superres.metrics import frechet_distance, hfen, psnr, ssim
from medviz.superres.results import compute_bar, store_result

#: Seed of the patient resamples.
SEED = 0
#: Per-slice image metrics inside the brain mask (headline: mean over brain slices).
SLICE_METRICS = ("psnr", "ssim", "hfen")
#: Metrics whose paired differences get bootstrap intervals, besides the Fréchet distance.
DIFFERENCE_METRICS = (*SLICE_METRICS, "tumour_psnr", "downstream_dice", "false_positive_components")
#: The reference "arm": the real FLAIR, for the segmenter's numbers.
REAL = "real"


@dataclass(frozen=True)
class SuperResEvalOptions(EvalOptions):
    """``python -m medviz.evaluate --model NAME`` options for a super-resolution model."""

    bootstrap: int = option(2000, label="Bootstrap resamples", min=0,
                            help="patient-bootstrap resamples for the 95 % intervals of the paired differences")
    fid_bootstrap: int = option(200, label="Bootstrap resamples of the Fréchet distance", min=0,
                                help="the first N of those resamples also recompute the in-house Fréchet "
                                     "distance (each costs a 256 x 256 matrix square root per arm)")
    record: bool = option(False, label="Record the result", flag="--record",
                          help="store the result beside the weights (<name>.results.json) and rewrite the card")

    def quick(self) -> SuperResEvalOptions:
        return replace(self, bootstrap=200, fid_bootstrap=20)


OPTIONS = SuperResEvalOptions


@dataclass
class PatientScores:
    """What one patient contributes to every arm (arm name -> value).

    Attributes:
        case: the case id.
        n_slices: slices of the stack.
        slice_values: arm -> metric (:data:`SLICE_METRICS`) -> ``(n_brain,)`` float64 per brain slice.
        tumour_psnr: arm -> ``(n_tumour,)`` float64 dB per slice with tumour.
        features: arm or :data:`REAL` -> ``(n_brain, 256)`` float32 bottleneck features.
        dice: arm or :data:`REAL` -> the patient's 3D Dice.
        false_positives: arm or :data:`REAL` -> false-positive components.
        seconds_per_slice: arm -> forward wall time / slices of the stack.
    """

    case: str
    n_slices: int
    slice_values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    tumour_psnr: dict[str, np.ndarray] = field(default_factory=dict)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    dice: dict[str, float] = field(default_factory=dict)
    false_positives: dict[str, int] = field(default_factory=dict)
    seconds_per_slice: dict[str, float] = field(default_factory=dict)

    @property
    def n_brain_slices(self) -> int:
        return len(self.features[REAL])

    @property
    def n_tumour_slices(self) -> int:
        return len(next(iter(self.tumour_psnr.values())))


def real_flair(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, H, W)`` float32 FLAIR slices of a ``(Z, H, W, 3)`` stack, each in ``[0, 1]``, and their ``(Z,)`` maxima."""
    scaled = [scale_to_max(stack[k, ..., FLAIR_CHANNEL]) for k in range(stack.shape[0])]
    return np.stack([x for x, _ in scaled]).astype(np.float32), np.asarray([m for _, m in scaled], np.float32)


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def arm_outputs(generators: dict[str, tuple[Any, Any]], low_res: np.ndarray,
                scale: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Bicubic and every generator on ``(Z, h, w)`` low-resolution slices: ``({arm: (Z, H, W)}, {arm: seconds})``."""
    outputs, seconds = {}, {}
    outputs[BICUBIC], seconds[BICUBIC] = _timed(lambda: bicubic_batch(low_res, scale))
    for arm, (generator, spec) in generators.items():
        outputs[arm], seconds[arm] = _timed(lambda g=generator, s=spec: super_resolve(g, low_res, s.scale, s.residual))
    return outputs, seconds


def _features(segmenter: Any, x: np.ndarray, brain: np.ndarray) -> np.ndarray:
    if not brain.any():
        return np.zeros((0, BOTTLENECK_CHANNELS), np.float32)
    return encoder_features(segmenter, x[brain])


def score_patient(root: Path, case: str, generators: dict[str, tuple[Any, Any]], segmenter: Any, seg_spec: Any,
                  scale: int) -> PatientScores:
    """Every arm's numbers for one patient (see the module docstring).

    Args:
        generators: arm name (:data:`PIXEL_LOSS`, :data:`GAN`) -> ``(generator, its SuperResSpec)``.
        segmenter, seg_spec: the segmentation network and its :class:`~medviz.models.specs.SegmenterSpec`.
    """
    stack, truth = load_case(root, case)
    real, maxima = real_flair(stack)
    outputs, seconds = arm_outputs(generators, degrade_batch(real, scale), scale)
    brain = np.array([is_brain_slice(x) for x in real], bool)
    masks = {k: brain_mask(real[k]) for k in np.flatnonzero(brain)}
    tumour = [k for k in range(len(real)) if truth[k].any()]
    scores = PatientScores(case=case, n_slices=len(real))
    x_real = segmenter_input(stack)
    scores.features[REAL] = _features(segmenter, x_real, brain)
    mask = segment(segmenter, seg_spec, x_real)
    scores.dice[REAL], scores.false_positives[REAL] = dice_score(mask, truth), false_positive_components(mask, truth)
    for arm, out in outputs.items():
        scores.slice_values[arm] = {
            name: np.array([metric(real[k], out[k], m) for k, m in masks.items()], np.float64)
            for name, metric in (("psnr", psnr), ("ssim", ssim), ("hfen", hfen))}
        scores.tumour_psnr[arm] = np.array([psnr(real[k], out[k], truth[k] > 0) for k in tumour], np.float64)
        scores.seconds_per_slice[arm] = seconds[arm] / len(real)
        x_arm = segmenter_input(stack, out, maxima)
        scores.features[arm] = _features(segmenter, x_arm, brain)
        mask = segment(segmenter, seg_spec, x_arm)
        scores.dice[arm], scores.false_positives[arm] = dice_score(mask, truth), false_positive_components(mask, truth)
    return scores


def fid_or_nan(features: np.ndarray, real_features: np.ndarray) -> float:
    """:func:`frechet_distance` of ``(N, 256)`` against ``(M, 256)`` features; NaN with fewer than 2 of either
    or when MONAI finds the covariance product too far from real. MONAI's note on a singular product goes
    to stderr, never into the JSON on stdout."""
    if len(features) < 2 or len(real_features) < 2:
        return float("nan")
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy's sqrtm(disp=...) as MONAI calls it
        try:
            return frechet_distance(features, real_features)
        except ValueError:
            return float("nan")


class PatientStatistics:
    """Each arm's statistics on all patients and on patient resamples (the paired bootstrap).

    Args:
        patients: one :class:`PatientScores` per patient.
        arms: the arms to compare (keys of the patients' values).
        resamples: ``(R, P)`` int patient indices, one row per resample (shared by every arm and metric).
    """

    def __init__(self, patients: list[PatientScores], arms: list[str], resamples: np.ndarray) -> None:
        self.patients = patients
        self.arms = arms
        self.resamples = resamples

    def _mean(self, values: list[np.ndarray]) -> tuple[float, np.ndarray]:
        sums = np.array([v.sum() for v in values], np.float64)
        counts = np.array([len(v) for v in values], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (float(sums.sum() / counts.sum()) if counts.sum() else float("nan"),
                    sums[self.resamples].sum(1) / counts[self.resamples].sum(1))

    def paired_slice_means(self, values: Callable[[PatientScores, str], np.ndarray]
                           ) -> tuple[dict[str, tuple[float, np.ndarray]], int]:
        """The mean over slices of every patient of a per-slice metric, for each arm, on the same slices.

        Args:
            values: ``(patient, arm) -> (n,)`` the metric per slice.

        Returns:
            ``({arm: (mean on all patients, (R,) means on the resamples)}, slices left out)``: a slice whose
            value is not finite for some arm (an infinite PSNR of a perfect estimate of a constant slice, a NaN
            HFEN of a reference without high frequencies) is left out for every arm.
        """
        kept: dict[str, list[np.ndarray]] = {arm: [] for arm in self.arms}
        left_out = 0
        for p in self.patients:
            by_arm = {arm: values(p, arm) for arm in self.arms}
            finite = np.all([np.isfinite(v) for v in by_arm.values()], axis=0)
            left_out += int((~finite).sum())
            for arm, v in by_arm.items():
                kept[arm].append(v[finite])
        return {arm: self._mean(v) for arm, v in kept.items()}, left_out

    def patient_mean(self, values: Callable[[PatientScores], float]) -> tuple[float, np.ndarray]:
        """``(mean over patients, (R,) on the resamples)`` of a per-patient value."""
        v = np.array([values(p) for p in self.patients], np.float64)
        return float(v.mean()), v[self.resamples].mean(1)

    def patient_sum(self, values: Callable[[PatientScores], int]) -> tuple[int, np.ndarray]:
        """``(sum over patients, (R,) on the resamples)`` of a per-patient count."""
        v = np.array([values(p) for p in self.patients], np.int64)
        return int(v.sum()), v[self.resamples].sum(1)

    def fid(self, arm: str, n_resamples: int) -> tuple[float, np.ndarray]:
        """``(in-house Fréchet distance on all patients, (n_resamples,) on the first resamples)``."""
        feats = [p.features[arm] for p in self.patients]
        real = [p.features[REAL] for p in self.patients]
        whole = fid_or_nan(np.concatenate(feats), np.concatenate(real))
        boot = [fid_or_nan(np.concatenate([feats[i] for i in pick]), np.concatenate([real[i] for i in pick]))
                for pick in self.resamples[:n_resamples]]
        return whole, np.asarray(boot, np.float64)


def difference(a: tuple[float, np.ndarray], b: tuple[float, np.ndarray]) -> dict[str, Any]:
    """``{"mean": b - a on all patients, "ci": [2.5, 97.5] percentiles of b - a over the resamples]}``
    (``ci`` None without finite resamples)."""
    diffs = b[1][: len(a[1])] - a[1][: len(b[1])]
    diffs = diffs[np.isfinite(diffs)]
    ci = [float(v) for v in np.percentile(diffs, [2.5, 97.5])] if len(diffs) else None
    return {"mean": float(b[0] - a[0]), "ci": ci}


def patient_resamples(n_patients: int, n_resamples: int, seed: int = SEED) -> np.ndarray:
    """``(n_resamples, n_patients)`` patient indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n_patients, size=(n_resamples, n_patients))


def summarise(patients: list[PatientScores], arms: list[str], n_boot: int, n_fid_boot: int) -> dict[str, Any]:
    """Each arm's headline numbers, the reference and the paired differences of consecutive arms.

    Returns:
        ``{"arms": {arm: metrics}, "reference": {...}, "differences": {"<b>_minus_<a>": {metric: {"mean", "ci"}}},
        "left_out_slices": {metric: slices left out for every arm}}``.
    """
    stats = PatientStatistics(patients, arms, patient_resamples(len(patients), n_boot))
    per_arm: dict[str, dict[str, tuple[float, np.ndarray]]] = {arm: {} for arm in arms}
    left_out = {}
    for name in SLICE_METRICS:
        means, left_out[name] = stats.paired_slice_means(lambda p, arm, name=name: p.slice_values[arm][name])
        for arm in arms:
            per_arm[arm][name] = means[arm]
    means, left_out["tumour_psnr"] = stats.paired_slice_means(lambda p, arm: p.tumour_psnr[arm])
    for arm in arms:
        per_arm[arm]["tumour_psnr"] = means[arm]
        per_arm[arm]["downstream_dice"] = stats.patient_mean(lambda p, arm=arm: p.dice[arm])
        per_arm[arm]["false_positive_components"] = stats.patient_sum(lambda p, arm=arm: p.false_positives[arm])
        per_arm[arm]["fid_inhouse"] = stats.fid(arm, min(n_fid_boot, n_boot))
    headline = {arm: {k: v[0] for k, v in values.items()} for arm, values in per_arm.items()}
    for arm in arms:
        headline[arm]["seconds_per_slice"] = float(np.median([p.seconds_per_slice[arm] for p in patients]))
    differences = {}
    for a, b in zip(arms, arms[1:]):
        differences[f"{b}_minus_{a}"] = {k: difference(per_arm[a][k], per_arm[b][k])
                                         for k in (*DIFFERENCE_METRICS, "fid_inhouse")}
    reference = {"downstream_dice": float(np.mean([p.dice[REAL] for p in patients])),
                 "false_positive_components": int(sum(p.false_positives[REAL] for p in patients))}
    return {"arms": headline, "reference": reference, "differences": differences, "left_out_slices": left_out}


def load_companion(name: str, entry: Any, device: str) -> tuple[Any, Any]:
    """``(model, entry)`` of a model the evaluated one relies on (its segmenter, a GAN's twin): from the evaluated
    model's registry folder, else from the shipped registry (a Training-page run registers only itself)."""
    try:
        return load_model(name, device=device, weights_dir=entry.weights_dir)
    except RegistryError as e:
        if "No model named" not in str(e):
            raise
        return load_model(name, device=device)


def load_arms(entry: Any, device: str) -> dict[str, tuple[Any, Any, Any]]:
    """arm -> ``(generator, its SuperResSpec, its registry entry)``: the model and, for a GAN, its pixel-loss twin
    (:func:`load_companion`).

    Raises:
        SuperResError: the twin is not a pixel-loss model of the same scale.
    """
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    spec = entry.spec
    if spec.mode == "pixel":
        return {PIXEL_LOSS: (model, spec, entry)}
    twin, twin_entry = load_companion(spec.twin, entry, device)
    if twin_entry.task != Task.SUPERRES or twin_entry.spec.mode != "pixel" or twin_entry.spec.scale != spec.scale:
        raise SuperResError(f"{entry.name}'s twin {spec.twin} must be a {spec.scale}x pixel-loss super-resolution "
                            "model")
    return {PIXEL_LOSS: (twin, twin_entry.spec, twin_entry), GAN: (model, spec, entry)}


def command_line(entry: Any, options: SuperResEvalOptions) -> str:
    """The ``python -m medviz.evaluate`` command that gives ``options`` (no time stamp, no local defaults)."""
    changed = non_default(options)
    words = ["python -m medviz.evaluate", "--model", entry.name]
    for o in describe(options):
        if o.name not in changed:
            continue
        value = changed[o.name]
        if o.type is bool and o.container is None:
            words.append(o.flag)
        else:
            words += [o.flag, *(map(str, value) if o.container else [str(value)])]
    return " ".join(words)


def evaluate(entry: Any, options: SuperResEvalOptions) -> dict[str, Any]:
    """The evaluate contract of a super-resolution model (see the module docstring)."""
    spec = entry.spec
    device = select_device(options.device)
    loaded = load_arms(entry, device)
    segmenter, seg_entry = load_companion(spec.segmenter, entry, device)
    root = Path(options.data) if options.data else default_root()
    split = options.split if read_splits(root) is not None else "all"
    case_ids = cases(root, options.split if split != "all" else None)
    generators = {arm: (g, s) for arm, (g, s, _) in loaded.items()}
    patients = [score_patient(root, case, generators, segmenter, seg_entry.spec, spec.scale) for case in case_ids]
    arms = [BICUBIC, *generators]
    summary = summarise(patients, arms, options.bootstrap, options.fid_bootstrap)
    model_arm = PIXEL_LOSS if spec.mode == "pixel" else GAN
    baselines = {arm: summary["arms"][arm] for arm in arms if arm != model_arm}
    for arm in baselines:
        if arm in loaded:
            baselines[arm] = {"model": loaded[arm][2].name, "sha256": loaded[arm][1].sha256, **baselines[arm]}
    result: dict[str, Any] = {
        "model": entry.name, "task": Task.SUPERRES, "mode": spec.mode, "sha256": spec.sha256, "data": str(root),
        "split": split, "device": device, "scale": spec.scale, "degradation": spec.degradation,
        "n_patients": len(patients), "n_slices": int(sum(p.n_slices for p in patients)),
        "n_brain_slices": int(sum(p.n_brain_slices for p in patients)),
        "n_tumour_slices": int(sum(p.n_tumour_slices for p in patients)),
        "left_out_slices": summary["left_out_slices"],
        **summary["arms"][model_arm],
        "baselines": baselines,
        "reference": summary["reference"],
        "segmenter": {"name": seg_entry.name, "sha256": seg_entry.spec.sha256, "tta": seg_entry.spec.tta,
                      "threshold": seg_entry.spec.threshold, "min_size": seg_entry.spec.min_size},
        "differences": summary["differences"],
        "bootstrap": options.bootstrap, "fid_bootstrap": min(options.fid_bootstrap, options.bootstrap),
        "bootstrap_unit": "patient", "bootstrap_seed": SEED,
        "bar": compute_bar(spec.mode, summary["arms"]),
    }
    if options.record:
        store_result(entry, result, command_line(entry, options), card.render_card)
    return result


def format_table(result: dict[str, Any]) -> str:
    """Human-readable tables: the arms' metrics, the paired differences with their intervals, the bar."""
    columns = (("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".4f"), ("hfen", "HFEN", ".4f"),
               ("tumour_psnr", "tumourPSNR", ".2f"), ("fid_inhouse", "FD", ".3f"),
               ("downstream_dice", "Dice", ".4f"), ("false_positive_components", "FP", ".0f"))
    rows = [(name, r) for name, r in result["baselines"].items()] + [(f"{result['model']} (model)", result)]
    lines = [f"{result['model']} on {result['data']} ({result['split']}): {result['n_patients']} patients, "
             f"{result['n_slices']} slices ({result['n_brain_slices']} brain, {result['n_tumour_slices']} tumour), "
             f"{result['scale']}x",
             f"{'arm':<28}" + "".join(f"{t:>12}" for _, t, _ in columns) + f"{'s/slice':>10}"]
    for name, r in rows:
        lines.append(f"{name:<28}" + "".join(f"{format(r[k], f):>12}" for k, _, f in columns)
                     + f"{r['seconds_per_slice']:>10.4f}")
    ref = result["reference"]
    lines.append(f"{'real FLAIR (reference)':<28}" + "".join(
        f"{format(ref[k], f) if k in ref else '':>12}" for k, _, f in columns))
    lines.append(f"paired differences, 95 % patient-bootstrap intervals ({result['bootstrap']} resamples, "
                 f"{result['fid_bootstrap']} for FD):")
    for name, diff in result["differences"].items():
        cells = []
        for k, t, f in columns:
            d = diff[k]
            ci = "" if d["ci"] is None else f" [{format(d['ci'][0], '+' + f)}, {format(d['ci'][1], '+' + f)}]"
            cells.append(f"{t} {format(d['mean'], '+' + f)}{ci}")
        lines.append(f"  {name}: " + "; ".join(cells))
    bar = result["bar"]
    lines.append(f"bar ({bar['mode']}): {'met' if bar['met'] else 'NOT met'} ("
                 + "; ".join(f"{k} {'met' if c['met'] else 'NOT met'}" for k, c in bar["checks"].items()) + ")")
    return "\n".join(lines)
