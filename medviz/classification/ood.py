"""Out-of-distribution detection for classifiers: abstain on images unlike the model's training images.

Two scores from the model's own network, higher = less like the training images:

* ``mahalanobis``: the Mahalanobis distance of the penultimate features (the input of the final linear
  layer) to the nearest class mean, with class-conditional means and one shared covariance fitted on the
  model's **train** split, shrunk towards a scaled identity by the Ledoit-Wolf estimate (Lee et al.,
  NeurIPS 2018);
* ``energy``: ``-logsumexp(logits)`` (Liu et al., NeurIPS 2020);
* ``mahalanobis_stages`` and ``mahalanobis_layer1..3``: the feature ensemble of Lee et al. -- a Mahalanobis
  distance per residual stage (the spatial mean of ``layer1`` ... ``layer4``'s output, one Gaussian per stage
  and member fitted on train as above), each standardised by its mean and spread over the train images, and
  averaged over the stages (``stages``: all four) or over the members (``layerK``: that stage alone). Early
  stages see intensity and texture statistics that the final features of a 28-pixel model discard.

An ensemble (:mod:`medviz.models.ensemble`) is scored member by member (each member's own features and
logits; the ensemble's output is a log-probability whose ``logsumexp`` is always 0) and the members'
scores are averaged; a third candidate, ``mahalanobis_joint``, fits one Gaussian to the members'
concatenated features.

The score kept is chosen on **validation** data only, by a criterion fixed before any test image is
scored (:data:`CRITERION`). Its val threshold (:func:`medviz.models.ood_stats.val_threshold`) is the smallest val
score whose one-sided :data:`~medviz.models.ood_stats.CONFIDENCE` Clopper-Pearson upper bound on the abstention rate
is at most :data:`~medviz.models.ood_stats.MAX_VAL_ABSTENTION` -- a val split of 78 or 120 images cannot pin a 95th percentile, so the plain
5 % quantile let 7.5-8.3 % of the test images abstain (the first test looks, in the cards). The threshold
used (:func:`medviz.models.ood_stats.gap_threshold`, :data:`THRESHOLD_RULE`) is the midpoint between that val threshold and the lowest
1st percentile of the validation OOD families when that is higher (else the val threshold), because the val threshold alone still let 5.3-7.7 % of two
test splits abstain (the second looks). The model abstains when the score is above the threshold or an
input check fails on its own (:func:`medviz.classification.preprocess.input_abstain_reasons`: declared
modality, blank, grey/colour). Fitted statistics live beside the weights (``<name>.ood.safetensors``)
with the manifest entry's ``ood`` field (:class:`medviz.models.specs.OODSpec`).

Fit (writes the statistics file and the manifest field)::

    python -m medviz.classification.ood --model pneumonia_resnet

Every forward pass runs inside :func:`medviz.models.runtime.using`; the forward hooks that read the
features are removed before the guard is left, so the shared model is left exactly as found.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification import kermany
from medviz.classification.card import note_unchanged_refit, record_ood_test
from medviz.classification.data import DataError, load_npz_split, look_up_dataset, resolve_npz
from medviz.classification.ood_data import family_inputs, validation_families
from medviz.classification.preprocess import PreparedInput, input_abstain_reasons, preprocess_batch
from medviz.models import ood_stats
from medviz.models.ood_record import checked_arrays, float32, run_cli, stats_out_dir, test_looks, unchanged_detector
from medviz.models.ood_stats import (
    OODError,
    abstention_rate,
    fit_gaussians,
    gap_threshold,
    mahalanobis_score,
)
from medviz.models.registry import ModelEntry, get_entry, sha256_file, upsert_entry, with_field
from medviz.models.runtime import model_device, using
from medviz.models.specs import ClassifierSpec, OODSpec
from medviz.models.weights import load_model

SCORES = OODSpec.SCORES
#: The seed of the patient-level train/val split of the Kermany models (``numpy default_rng(0)`` in their cards).
KERMANY_SPLIT_SEED = 0
#: Where the threshold is placed, fixed on validation data before the third detector's test look (2026-12-02).
THRESHOLD_RULE = ("the midpoint between the val threshold (the smallest val score whose one-sided 95 % "
                  "Clopper-Pearson upper bound on the val abstention rate is at most 5 %) and the lowest 1st "
                  "percentile of the validation OOD families' scores, when that percentile is higher (else the val "
                  "threshold): both sides of the bar have a margin, as far as val can show one. The second "
                  "detectors' thresholds sat at the val threshold and let 7.7 % (breast_resnet) and 5.3 % "
                  "(pneumonia_resnet) of their test splits abstain, beyond their val images")
#: The residual stages whose pooled outputs the stage scores read.
STAGES = ("layer1", "layer2", "layer3", "layer4")
#: Stage scores -> the stages each averages.
STAGE_SCORES = {"mahalanobis_stages": STAGES, "mahalanobis_layer3": ("layer3",),
                "mahalanobis_layer2": ("layer2",), "mahalanobis_layer1": ("layer1",)}
#: The last change to the validation data or rules, in words (noted in the card of a refit that it leaves as is).
LAST_CHANGE = ("the LGG validation OOD family grew from the 10 val patients to the 59 train and val patients "
               "(no classifier was trained on them), to show the spread between patients")
#: How the score is chosen, fixed before any test image was scored (second detector, 2026-12-02; the LGG family
#: grew from the 10 val patients to the 59 train and val patients before retina_resnet's fourth look).
CRITERION = ("highest worst-family abstention rate at the val threshold (the smallest val score whose one-sided "
             "95 % Clopper-Pearson upper bound on the val abstention rate is at most 5 %) over the validation OOD "
             "families (other classifiers' val splits, LGG slices of the 59 train and val patients, which no "
             "classifier was trained on, Kermany val chest X-rays where out "
             "of domain); ties broken by the higher mean val AUROC, then in the order mahalanobis, "
             "mahalanobis_joint (ensembles only), mahalanobis_stages, mahalanobis_layer3, mahalanobis_layer2, "
             "mahalanobis_layer1, energy")




# ---- features ------------------------------------------------------------------------------------


def _members(spec: ClassifierSpec) -> tuple[str, ...]:
    """The module-name prefix of each member: ``""`` for one network, ``"members.i."`` for an ensemble."""
    return tuple(f"members.{i}." for i in range(len(spec.arch.members))) if spec.arch.is_ensemble else ("",)


def feature_layers(spec: ClassifierSpec) -> tuple[str, ...]:
    """The final linear layer of each member (``fc`` of a MONAI ResNet; ``members.i.fc`` of an ensemble):
    its input is the penultimate feature vector, its output the member's logits."""
    return tuple(f"{p}fc" for p in _members(spec))


def stage_layers(spec: ClassifierSpec, stages: tuple[str, ...] = STAGES) -> tuple[str, ...]:
    """The residual stages ``stages`` of every member, member by member (``members.0.layer1``, ...)."""
    return tuple(f"{p}{s}" for p in _members(spec) for s in stages)


def _hooked_forward(model: Any, x: np.ndarray, layers: tuple[str, ...], read: Any, batch_size: int) -> list[list]:
    """Run ``x`` ``(N, C, S, S)`` through ``model`` in batches with a forward hook on each of ``layers`` that
    appends ``read(input, output)`` to that layer's list. The hooks are registered inside
    :func:`medviz.models.runtime.using` (the model's lock, eval and inference mode) and removed before it is
    left, also on errors."""
    import torch

    if len(x) == 0:
        raise OODError("no images to score")
    device = model_device(model)
    out: list[list] = [[] for _ in layers]
    with using(model) as m:
        handles = []
        try:
            for i, name in enumerate(layers):
                def hook(_module: Any, inp: Any, o: Any, i: int = i) -> None:
                    out[i].append(read(inp, o))

                handles.append(m.get_submodule(name).register_forward_hook(hook))
            for s in range(0, len(x), batch_size):
                m(torch.as_tensor(np.ascontiguousarray(x[s:s + batch_size]), dtype=torch.float32, device=device))
        except AttributeError as e:
            raise OODError(f"the network has no layer {e}") from e
        finally:
            for h in handles:
                h.remove()
    return out


def stage_features(model: Any, x: np.ndarray, layers: tuple[str, ...], batch_size: int = 256) -> list[np.ndarray]:
    """The spatial mean of each layer's output for a preprocessed stack ``(N, C, S, S)`` (the model is left as
    found, :func:`_hooked_forward`).

    Returns:
        One ``(N, C_l)`` float64 array per layer (``C_l`` = that layer's channels).
    """
    def pooled(_inp: Any, o: Any) -> np.ndarray:
        return o.float().mean(dim=tuple(range(2, o.ndim))).cpu().numpy()

    return [np.concatenate(f).astype(np.float64) for f in _hooked_forward(model, x, layers, pooled, batch_size)]


def features_and_logits(model: Any, x: np.ndarray, layers: tuple[str, ...],
                        batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (the input of ``layers``) and logits (their output) of every member for a
    preprocessed stack ``(N, C, S, S)`` (the model is left as found, :func:`_hooked_forward`).

    Returns:
        ``(features, logits)``: ``(M, N, D)`` and ``(M, N, K)`` float64, ``M`` = ``len(layers)``.
    """
    def both(inp: Any, o: Any) -> tuple[np.ndarray, np.ndarray]:
        return inp[0].float().cpu().numpy(), o.float().cpu().numpy()

    got = _hooked_forward(model, x, layers, both, batch_size)
    return (np.stack([np.concatenate([f for f, _ in per]) for per in got]).astype(np.float64),
            np.stack([np.concatenate([z for _, z in per]) for per in got]).astype(np.float64))


# ---- statistics ----------------------------------------------------------------------------------








def energy_score(logits: np.ndarray) -> np.ndarray:
    """``-logsumexp`` of each member's logits ``(M, N, K)``, averaged over members -> ``(N,)``."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=-1, keepdims=True)
    lse = top[..., 0] + np.log(np.exp(z - top).sum(axis=-1))
    return np.mean(-lse, axis=0)












def stage_distances(pooled: list[np.ndarray], gaussians: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mahalanobis distance to the nearest class mean of each layer's pooled features: ``pooled`` one
    ``(N, C_l)`` per layer, ``gaussians`` one ``(means (K, C_l), precision (C_l, C_l))`` per layer -> ``(L, N)``."""
    return np.stack([mahalanobis_score(f[None], mu[None], p[None]) for f, (mu, p) in zip(pooled, gaussians)])


def stage_score(distances: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """The mean over layers of ``(distance - centre) / spread``: distances ``(L, N)``, norm ``(L, 2)`` -> ``(N,)``."""
    return np.mean((distances - norm[:, :1]) / norm[:, 1:], axis=0)


@dataclass(frozen=True)
class OODStats:
    """The fitted detector of one classifier (read from ``<name>.ood.safetensors``).

    Attributes:
        score: the chosen score name.
        threshold: abstain above it.
        layers: the layers read: the final linear layer of each member (``mahalanobis``, ``energy``) or the
            residual stages of a stage score.
        means: ``(M, K, D)`` class means of the train features (final-layer scores; else one per stage).
        precision: ``(M, D, D)`` shared precision matrices (final-layer scores; else one per stage).
        val_scores: the chosen score on every val image, sorted (the in-distribution range).
        val_abstention: fraction of val images above the threshold.
        norm: ``(L, 2)`` centre and spread of each stage's train distances (stage scores only).
    """

    score: str
    threshold: float
    layers: tuple[str, ...]
    means: Any
    precision: Any
    val_scores: np.ndarray
    val_abstention: float
    norm: np.ndarray | None = None

    def scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The chosen final-layer score of features ``(M, N, D)`` / logits ``(M, N, K)`` -> ``(N,)``."""
        if self.score in STAGE_SCORES:
            raise OODError(f"the {self.score} score reads the residual stages, not the final features")
        if self.score == "energy":
            return energy_score(logits)
        return mahalanobis_score(joint(features) if self.score == "mahalanobis_joint" else features,
                                 self.means, self.precision)

    def score_images(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The chosen score of a preprocessed stack ``(N, C, S, S)`` -> ``(N,)`` (the model is left as found)."""
        if self.score in STAGE_SCORES:
            pooled = stage_features(model, x, self.layers)
            return stage_score(stage_distances(pooled, list(zip(self.means, self.precision))), self.norm)
        return self.scores(*features_and_logits(model, x, self.layers))

    def percentile(self, value: float) -> float:
        """Percentage of the val images whose score is below ``value``."""
        return 100.0 * float(np.mean(self.val_scores < value))


def joint(features: np.ndarray) -> np.ndarray:
    """The members' features side by side: ``(M, N, D)`` -> ``(1, N, M * D)``."""
    return np.concatenate(list(features), axis=-1)[None]


def candidate_scores(features: np.ndarray, logits: np.ndarray,
                     fitted: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every final-layer candidate score of the same forward pass: ``energy``, and ``mahalanobis`` /
    ``mahalanobis_joint`` for each entry of ``fitted`` (name -> ``(means, precision)``)."""
    out = {"energy": energy_score(logits)}
    for name, (means, precision) in fitted.items():
        out[name] = mahalanobis_score(joint(features) if name == "mahalanobis_joint" else features, means, precision)
    return out


@dataclass(frozen=True)
class StageFit:
    """The per-stage Gaussians of a model (:func:`fit_stages`).

    Attributes:
        layers: every member's residual stages (:func:`stage_layers`).
        gaussians: ``(means (K, C_l), precision (C_l, C_l))`` per layer, stored as float32.
        norm: ``(L, 2)`` mean and standard deviation of each layer's distances over the train images.
        shrinkage: the Ledoit-Wolf shrinkage of each layer.
    """

    layers: tuple[str, ...]
    gaussians: list[tuple[np.ndarray, np.ndarray]]
    norm: np.ndarray
    shrinkage: list[float]

    def subset(self, score: str) -> list[int]:
        """Indices into :attr:`layers` of the stages that ``score`` averages."""
        keep = STAGE_SCORES[score]
        return [i for i, name in enumerate(self.layers) if name.rsplit(".", 1)[-1] in keep]

    def scores(self, pooled: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Every stage candidate's score of the pooled features of :attr:`layers` -> name -> ``(N,)``."""
        d = stage_distances(pooled, self.gaussians)
        return {name: stage_score(d[self.subset(name)], self.norm[self.subset(name)]) for name in STAGE_SCORES}


def fit_stages(model: Any, x_train: np.ndarray, y_train: np.ndarray, spec: ClassifierSpec) -> StageFit:
    """One Gaussian per residual stage and member on the train images, and the centre/spread of its distances."""
    layers = stage_layers(spec)
    pooled = stage_features(model, x_train, layers)
    per = [fit_gaussians(f, y_train, spec.n_classes) for f in pooled]
    gaussians = [(float32(m), float32(p)) for m, p, _ in per]
    d = stage_distances(pooled, gaussians)
    norm = float32(np.stack([d.mean(axis=1), np.maximum(d.std(axis=1), 1e-12)], axis=1))
    return StageFit(layers, gaussians, norm, [float(a) for _, _, a in per])


def stats_path(entry: ModelEntry) -> Path | None:
    spec = entry.spec
    return None if getattr(spec, "ood", None) is None else entry.weights_dir / spec.ood.file


def load_stats(entry: ModelEntry) -> OODStats | None:
    """The fitted detector of a classifier entry, None when it has no ``ood`` field.

    Raises:
        OODError: the file is missing, fails its sha256 or does not fit the model.
    """
    path = stats_path(entry)
    if path is None:
        return None
    return _read_stats(path, entry.spec.ood.sha256, entry.spec.ood.score, entry.spec.ood.threshold,
                       entry.spec.ood.layers, entry.spec.ood.val_abstention)


@lru_cache(maxsize=16)
def _read_stats(path: Path, sha256: str, score: str, threshold: float, layers: tuple[str, ...],
                val_abstention: float) -> OODStats:
    arrays = checked_arrays(path, sha256)
    try:
        val = np.sort(arrays[f"val_{score}"].astype(np.float64))
        if score in STAGE_SCORES:
            means = tuple(arrays[f"stage{i}_means"].astype(np.float64) for i in range(len(layers)))
            precision = tuple(arrays[f"stage{i}_precision"].astype(np.float64) for i in range(len(layers)))
            norm = arrays["stage_norm"].astype(np.float64)
        else:
            means, precision = arrays["means"].astype(np.float64), arrays["precision"].astype(np.float64)
            norm = None
    except KeyError as e:
        raise OODError(f"{path.name} lacks the array {e}") from e
    if score in STAGE_SCORES:
        if norm.shape != (len(layers), 2):
            raise OODError(f"{path.name} holds the spread of {norm.shape[0]} stages, the manifest names {len(layers)}")
    else:
        members = 1 if score == "mahalanobis_joint" else len(layers)
        if means.shape[0] != members or precision.shape[0] != members:
            raise OODError(f"{path.name} holds statistics of {means.shape[0]} members, the model has {len(layers)}")
    arrays_read = [*means, *precision] if score in STAGE_SCORES else [means, precision]
    for a in (*arrays_read, val, *([] if norm is None else [norm])):
        a.setflags(write=False)
    return OODStats(score, threshold, layers, means, precision, val, val_abstention, norm)


# ---- one image -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OODResult:
    """Whether the model abstains on one image, and why.

    Attributes:
        score_name: the score (``mahalanobis`` / ``energy``), None without fitted statistics.
        score: the image's score (None without fitted statistics).
        threshold: abstain above it (None without fitted statistics).
        percentile: percentage of the model's val images with a lower score.
        val_range: ``(min, median, max)`` of the val scores.
        reasons: why the model abstains, in words (empty: it does not).
    """

    score_name: str | None
    score: float | None
    threshold: float | None
    percentile: float | None
    val_range: tuple[float, float, float] | None
    reasons: list[str] = field(default_factory=list)

    @property
    def abstain(self) -> bool:
        return bool(self.reasons)

    @property
    def above_threshold(self) -> bool:
        return self.score is not None and self.threshold is not None and self.score > self.threshold


def score_reason(stats: OODStats, value: float) -> str | None:
    """The abstention sentence of a score above the threshold (None at or below it)."""
    if value <= stats.threshold:
        return None
    return (f"its {stats.score} score {value:.3g} is above the threshold {stats.threshold:.3g} that "
            f"{100 * (1 - stats.val_abstention):.0f} % of the model's validation images stay under")


def assess(model: Any, spec: ClassifierSpec, stats: OODStats | None, prep: PreparedInput, image: np.ndarray,
           modality: str | None) -> OODResult:
    """Whether ``model`` abstains on one image: its OOD score against the threshold, and the input checks.

    Args:
        prep: the prepared image (:func:`medviz.classification.preprocess.prepare_input`).
        image: the image as loaded (before any window), for the input checks.
        modality: the image's modality code.
    """
    reasons = input_abstain_reasons(image, spec.input, modality)
    if stats is None:
        return OODResult(None, None, None, None, None, reasons)
    value = float(stats.score_images(model, prep.x[None])[0])
    why = score_reason(stats, value)
    v = stats.val_scores
    return OODResult(stats.score, value, stats.threshold, stats.percentile(value),
                     (float(v[0]), float(np.median(v)), float(v[-1])), ([why] if why else []) + reasons)


# ---- fitting -------------------------------------------------------------------------------------


def split_images(spec: ClassifierSpec, split: str, data: Path | None = None) -> tuple[Any, np.ndarray]:
    """The model's own split as stored: ``(images, labels (N,))`` -- a MedMNIST array ``(N, H, W[, 3])``, or for
    a model of the Kermany layout a list of its radiographs ``(H, W)`` uint8 (``train``/``val``: the patient-level
    halves of ``train/`` with the split seed its card states, :data:`KERMANY_SPLIT_SEED`)."""
    if spec.dataset_key == kermany.KEY:
        images, rows = kermany.read_split(split, data, KERMANY_SPLIT_SEED)
        return images, np.array([r.label for r in rows], dtype=np.int64)
    if spec.from_folder:
        raise DataError(f"{spec.name!r} was trained on a folder set; its OOD statistics need its MedMNIST split")
    return load_npz_split(resolve_npz(look_up_dataset(spec.dataset_key), data), split)


def split_inputs(spec: ClassifierSpec, split: str, data: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's own MedMNIST split, preprocessed: ``(x (N, C, S, S), labels (N,))``."""
    images, labels = split_images(spec, split, data)
    return preprocess_batch(images, spec.input.channels, spec.input.size), labels






def choose_score(id_val: dict[str, np.ndarray], ood_val: dict[str, dict[str, np.ndarray]]) -> tuple[str, dict[str, Any]]:
    """Apply :data:`CRITERION` (:func:`medviz.models.ood_stats.choose_score` in the order of :data:`SCORES`)."""
    return ood_stats.choose_score(id_val, ood_val, SCORES)




def _fit_all(f_train: np.ndarray, y_train: np.ndarray, n_classes: int) -> tuple[dict[str, tuple], dict[str, list]]:
    """``(name -> (means, precision), name -> shrinkage per member)`` of the Mahalanobis candidates."""
    variants = {"mahalanobis": f_train}
    if len(f_train) > 1:
        variants["mahalanobis_joint"] = joint(f_train)
    fitted, shrinkage = {}, {}
    for name, feats in variants.items():
        per = [fit_gaussians(f, y_train, n_classes) for f in feats]
        fitted[name] = (float32(np.stack([m for m, _, _ in per])), float32(np.stack([p for _, p, _ in per])))
        shrinkage[name] = [float(a) for _, _, a in per]
    return fitted, shrinkage


def fit(entry: ModelEntry, data: Path | None = None, device: str = "cpu", out_dir: Path | None = None,
        families: Any = None, register: bool = True) -> dict[str, Any]:
    """Fit the detector of ``entry`` on its train split, choose and threshold the score on val, write
    ``<name>.ood.safetensors`` and (``register``) the manifest's ``ood`` field. No test image is read.

    Args:
        families: callable ``(spec) -> {family: [images...]}`` of validation OOD families (default:
            :func:`medviz.classification.ood_data.validation_families`).

    A refit that chooses the detector the entry already has keeps its test look (:func:`test_looks`).

    Returns:
        The manifest ``ood`` field written.
    """
    from safetensors.numpy import save_file

    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    spec: ClassifierSpec = entry.spec
    layers = feature_layers(spec)
    x_train, y_train = split_inputs(spec, "train", data)
    f_train, _ = features_and_logits(model, x_train, layers)
    fitted, shrinkage = _fit_all(f_train, y_train, spec.n_classes)
    stages = fit_stages(model, x_train, y_train, spec)

    def candidates(x: np.ndarray) -> dict[str, np.ndarray]:
        return {**candidate_scores(*features_and_logits(model, x, layers), fitted),
                **stages.scores(stage_features(model, x, stages.layers))}

    id_val = candidates(split_inputs(spec, "val", data)[0])
    ood_val = {fam: candidates(family_inputs(spec, family)[0])
               for fam, family in (families or validation_families)(spec, data).items()}
    best, record = choose_score(id_val, ood_val)
    # the candidates' record above is at the val threshold; the threshold used is placed by THRESHOLD_RULE
    threshold, cp_threshold, ood_quantile = gap_threshold(id_val[best], {f: v[best] for f, v in ood_val.items()})
    if best in STAGE_SCORES:
        keep = stages.subset(best)
        arrays = {**{f"stage{j}_means": stages.gaussians[i][0] for j, i in enumerate(keep)},
                  **{f"stage{j}_precision": stages.gaussians[i][1] for j, i in enumerate(keep)},
                  "stage_norm": stages.norm[keep]}
        kept_layers, kept_shrinkage = [stages.layers[i] for i in keep], [stages.shrinkage[i] for i in keep]
    else:
        means, precision = fitted["mahalanobis_joint" if best == "mahalanobis_joint" else "mahalanobis"]
        arrays = {"means": means, "precision": precision}
        kept_layers, kept_shrinkage = list(layers), shrinkage[
            "mahalanobis_joint" if best == "mahalanobis_joint" else "mahalanobis"]
    out_dir = stats_out_dir(out_dir, register, entry.weights_dir)
    file = f"{spec.name}.ood.safetensors"
    save_file({**{k: v.astype(np.float32) for k, v in arrays.items()},
               **{f"val_{n}": v.astype(np.float64) for n, v in id_val.items()},
               **{f"oodval_{f}": v[best].astype(np.float64) for f, v in ood_val.items()}}, str(out_dir / file),
              metadata={"model": spec.name, "model_sha256": str(spec.sha256)})
    ood = {"file": file, "sha256": sha256_file(out_dir / file), "score": best, "threshold": threshold,
           "val_abstention": abstention_rate(id_val[best], threshold), "layers": kept_layers,
           "criterion": CRITERION, "threshold_rule": THRESHOLD_RULE, "val_threshold": cp_threshold,
           "ood_val_quantile": ood_quantile,
           "ood_val_abstention": {f: abstention_rate(v[best], threshold) for f, v in ood_val.items()},
           "candidates": record, "fitted_on": f"train split ({len(y_train)} images)",
           "shrinkage": kept_shrinkage, "command": f"python -m medviz.classification.ood --model {spec.name}",
           "created": datetime.date.today().isoformat(),
           **test_looks(spec.ood, unchanged_detector(spec.ood, best, threshold, kept_layers, kept_shrinkage,
                                                     CRITERION))}
    if register:
        upsert_entry(with_field(entry, "ood", value=ood), out_dir)
    return ood


def _note_unchanged(before: ModelEntry, ood: dict[str, Any]) -> None:
    """After a fit: note in the card a refit that kept the tested detector (its look stands)."""
    if ood.get("test") and ood["test"] == (before.spec.ood.record.get("test") if before.spec.ood else None):
        note_unchanged_refit(get_entry(before.name, weights_dir=before.weights_dir), ood["created"], LAST_CHANGE)


def main(argv: list[str] | None = None) -> int:
    return run_cli(argv, "python -m medviz.classification.ood", "classifier", fit, record_ood_test, _note_unchanged)


if __name__ == "__main__":
    raise SystemExit(main())
