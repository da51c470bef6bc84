"""Typed, read-only specs of manifest entries: every task's keys and defaults in one place.

A manifest entry (``weights/manifest.json``, see :mod:`medviz.models.registry`) is parsed once, at the
registry edge, into a frozen dataclass: :class:`ClassifierSpec`, :class:`SegmenterSpec` or
:class:`ReconSpec` (modelled on nnU-Net's ``ConfigurationManager``: typed read-only properties over the
loaded JSON). Code outside :mod:`medviz.models` reads these attributes, never the manifest dict, so a
default (``threshold`` 0.5, ``tta`` ``"none"``, ``cascades`` 1, ``temperature`` 1.0...) lives here only.

Every key of an entry must be known to its task: an unknown key (a typo such as ``"treshold"``) or a
missing required key raises :class:`~medviz.models.errors.RegistryError` naming the model and the key.
Keys that only record provenance (metrics, references, the training command...) are kept, deep-copied,
in the read-only mapping :attr:`ModelSpec.provenance`.

Example:
    >>> spec = parse_spec({"name": "m", "task": "segmentation", "file": "m.safetensors",
    ...                    "arch": {"name": "UNet", "kwargs": {"in_channels": 1}}})
    >>> spec.threshold, spec.min_size, spec.tta, spec.in_channels
    (0.5, 0, 'none', 1)
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from medviz.constants import Task
from medviz.models.errors import RegistryError

CLASSIFICATION, SEGMENTATION, RECONSTRUCTION = Task.CLASSIFICATION, Task.SEGMENTATION, Task.RECONSTRUCTION

# ---- defaults (the only place) ------------------------------------------------------------------
#: Classifier: softmax temperature when none was fitted (uncalibrated).
DEFAULT_TEMPERATURE = 1.0
#: Classifier input: modality code when the entry names none (DICOM "other").
DEFAULT_MODALITY = "OT"
#: Classifier input: the 8-bit intensity range every shipped classifier was trained on.
DEFAULT_INTENSITY_RANGE = (0, 255)
DEFAULT_BIT_DEPTH = 8
#: Classifier input: width / height of the training images (square).
DEFAULT_ASPECT = 1.0
#: Classifier loss recorded by older entries that did not write one.
DEFAULT_CLASS_WEIGHTS = "balanced"
DEFAULT_LABEL_SMOOTHING = 0.0
#: Segmenter post-processing and test-time augmentation when training chose none.
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_SIZE = 0
DEFAULT_TTA = "none"
#: Segmenter data layout (``lgg``: the shared LGG folder's ``pairs.csv``; ``nifti``: image/label pairs).
DEFAULT_LAYOUT = "lgg"
DEFAULT_SEG_CLASSES = ("background", "foreground")
#: Segmenter input channels when the network kwargs do not say (the LGG model: T1, FLAIR, T1c).
DEFAULT_SEG_IN_CHANNELS = 3
#: Segmenter Grad-CAM layer: the MONAI UNet decoder block at 1/4 resolution.
DEFAULT_SEG_CAM_LAYER = "model.1.submodule.1.submodule.2"
#: Reconstruction family: ``recon`` (undersampled k-space) or ``denoise`` (Rician noise).
DEFAULT_RECON_MODE = "recon"
RECON_MODES = ("recon", "denoise")
#: Data-consistency cascades of a recon model (shared weights).
DEFAULT_CASCADES = 1
DEFAULT_RECON_SIZE = (256, 256)
DEFAULT_RESIDUAL = True
DEFAULT_DATA_CONSISTENCY = False

# ---- keys of each task ---------------------------------------------------------------------------
#: Keys every task's entry may carry (``name``, ``task``, ``file``, ``arch`` required).
COMMON_REQUIRED = ("name", "task", "file", "arch")
COMMON_OPTIONAL = ("sha256", "shards", "card", "dataset")


def _fail(name: Any, message: str) -> RegistryError:
    return RegistryError(f"Manifest entry {name!r}: {message}")


def _check_keys(name: Any, where: str, raw: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """Raise on a non-mapping, an unknown key or a missing required key (``where``: ``"input."`` etc.)."""
    if not isinstance(raw, Mapping):
        raise _fail(name, f"{where.rstrip('.') or 'the entry'} must be an object, not {type(raw).__name__}")
    known = set(required) | set(optional)
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise _fail(name, f"unknown key {where + unknown[0]!r}"
                          f"{' (and ' + ', '.join(repr(where + k) for k in unknown[1:]) + ')' if unknown[1:] else ''}; "
                          f"known keys{' of ' + where.rstrip('.') if where else ''}: {', '.join(sorted(known))}")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _fail(name, f"missing required key {where + missing[0]!r}")


def _as(name: Any, key: str, value: Any, kind: type) -> Any:
    """``kind(value)`` (int, float, str, bool) or a RegistryError naming the key."""
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(name, f"{key!r} must be true or false, not {value!r}")
        return value
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise _fail(name, f"{key!r} must be a number, not {value!r}")
    if kind is int and float(value) != int(value):
        raise _fail(name, f"{key!r} must be an integer, not {value!r}")
    if kind is str and not isinstance(value, str):
        raise _fail(name, f"{key!r} must be a string, not {value!r}")
    return kind(value)


def _opt(name: Any, key: str, value: Any, kind: type) -> Any:
    return None if value is None else _as(name, key, value, kind)


def _seq(name: Any, key: str, value: Any, kind: type | None = None, length: int | None = None) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise _fail(name, f"{key!r} must be a list, not {value!r}")
    if length is not None and len(value) != length:
        raise _fail(name, f"{key!r} must have {length} items, not {len(value)}")
    return tuple(value) if kind is None else tuple(_as(name, f"{key}[{i}]", v, kind) for i, v in enumerate(value))


@dataclass(frozen=True)
class ArchSpec:
    """The network: a :data:`medviz.models.nets.NETWORKS` name and its constructor kwargs.

    Attributes:
        name: network name (``"ResNet"``, ``"UNet"``, ``"Ensemble"``...).
        kwargs: constructor kwargs exactly as in the manifest (JSON types, so it prints like the
            manifest in model cards); treat as read-only, :meth:`to_dict` gives a copy to build from.
    """

    name: str
    kwargs: dict[str, Any]

    KEYS: ClassVar[tuple[str, ...]] = ("name", "kwargs")

    @classmethod
    def from_entry(cls, model: Any, raw: Any, where: str = "arch") -> ArchSpec:
        _check_keys(model, f"{where}.", raw, ("name",), ("kwargs",))
        kwargs = raw.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise _fail(model, f"{where + '.kwargs'!r} must be an object")
        spec = cls(name=_as(model, f"{where}.name", raw["name"], str), kwargs=copy.deepcopy(dict(kwargs)))
        if spec.is_ensemble:  # every member is checked like a network of its own
            members = _seq(model, f"{where}.kwargs.members", kwargs.get("members"))
            for i, m in enumerate(members):
                cls.from_entry(model, m, f"{where}.kwargs.members[{i}]")
        return spec

    @property
    def is_ensemble(self) -> bool:
        return self.name == "Ensemble"

    @property
    def members(self) -> tuple[ArchSpec, ...]:
        """The member networks of an ``Ensemble`` (empty for any other network)."""
        if not self.is_ensemble:
            return ()
        return tuple(ArchSpec(m["name"], copy.deepcopy(m.get("kwargs") or {})) for m in self.kwargs.get("members", []))

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "kwargs"}`` as in the manifest (a deep copy), for :func:`medviz.models.nets.build_network`."""
        return {"name": self.name, "kwargs": copy.deepcopy(self.kwargs)}


@dataclass(frozen=True)
class ShardSpec:
    """One weights file of a model split over several files (each <= 16 MB)."""

    file: str
    sha256: str | None = None


def _provenance(raw: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, Any]:
    return MappingProxyType({k: copy.deepcopy(raw[k]) for k in keys if k in raw})


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What every task's entry has: identity, files and network.

    Attributes:
        name: unique model name (command line, pages).
        task: ``classification`` | ``segmentation`` | ``reconstruction``.
        file: the (first) weights file, relative to the weights directory.
        arch: the network.
        sha256: checksum of ``file`` (absent only in an entry being exported, before hashing).
        shards: every weights file in loading order, for sharded models (else empty).
        card: model card file, relative to the weights directory.
        dataset: data set name, in words.
        provenance: read-only copy of the entry's provenance-only keys (:attr:`PROVENANCE`), e.g.
            ``metrics``, ``references``, ``command``; nothing reads them to decide behaviour.
    """

    TASK: ClassVar[str] = ""  # the task name (a :class:`medviz.constants.Task`)
    #: Task-specific keys that set behaviour (parsed into typed fields).
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    #: Task-specific keys that only record how the model was made (kept in :attr:`provenance`).
    PROVENANCE: ClassVar[tuple[str, ...]] = ()

    name: str
    task: str
    file: str
    arch: ArchSpec
    sha256: str | None = None
    shards: tuple[ShardSpec, ...] = ()
    card: str | None = None
    dataset: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def known_keys(cls) -> frozenset[str]:
        """Every key an entry of this task may carry."""
        return frozenset(COMMON_REQUIRED + COMMON_OPTIONAL + cls.REQUIRED + cls.OPTIONAL + cls.PROVENANCE)

    @classmethod
    def from_entry(cls, raw: Mapping[str, Any]) -> Any:
        """Parse one manifest entry of this spec's task.

        Raises:
            RegistryError: wrong task, unknown key, missing required key or a value of the wrong type,
                naming the model and the key.
        """
        name = raw.get("name", "?") if isinstance(raw, Mapping) else "?"
        if isinstance(raw, Mapping) and "task" in raw and raw["task"] != cls.TASK:
            raise _fail(name, f"task {raw['task']!r} is not {str(cls.TASK)!r}")
        _check_keys(name, "", raw, COMMON_REQUIRED + cls.REQUIRED,
                    COMMON_OPTIONAL + cls.OPTIONAL + cls.PROVENANCE)
        shards = []
        for i, s in enumerate(_seq(name, "shards", raw.get("shards") or [])):
            _check_keys(name, f"shards[{i}].", s, ("file",), ("sha256",))
            shards.append(ShardSpec(_as(name, f"shards[{i}].file", s["file"], str),
                                    _opt(name, f"shards[{i}].sha256", s.get("sha256"), str)))
        common = dict(name=_as(name, "name", raw["name"], str), task=cls.TASK, file=_as(name, "file", raw["file"], str),
                      arch=ArchSpec.from_entry(name, raw["arch"]), sha256=_opt(name, "sha256", raw.get("sha256"), str),
                      shards=tuple(shards), card=_opt(name, "card", raw.get("card"), str),
                      dataset=_opt(name, "dataset", raw.get("dataset"), str),
                      provenance=_provenance(raw, cls.PROVENANCE))
        return cls(**common, **cls._task_fields(name, raw))

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    @property
    def metrics(self) -> dict[str, Any]:
        """The metrics recorded at export (provenance; empty for a task that records none): e.g. ``val``,
        ``test`` (None with ``--skip-test``), ``selection``."""
        return dict(self.provenance.get("metrics") or {})


# ---- classification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """A classifier's input: what the model sees and what its training images looked like.

    Attributes:
        channels: 1 (grey) or 3 (RGB) model input channels.
        size: model input side in pixels (square).
        native_size: side of the training images before resizing (None: a folder set of mixed sizes).
        modality: DICOM modality code of the training data (``DX``, ``US``, ``OP``...).
        modality_label: the modality in words (None: the code).
        intensity_range: ``(lo, hi)`` of the training intensities.
        bit_depth: bits per sample of the training images.
        aspect: width / height of the training images.
        views: DICOM View Position values of the training images (e.g. ``("AP",)``; empty: not recorded).
        age_years: ``(youngest, oldest)`` patient age of the training images in years (None: not recorded).
    """

    channels: int
    size: int
    native_size: int | None = None
    modality: str = DEFAULT_MODALITY
    modality_label: str | None = None
    intensity_range: tuple[float, float] = DEFAULT_INTENSITY_RANGE
    bit_depth: int = DEFAULT_BIT_DEPTH
    aspect: float = DEFAULT_ASPECT
    views: tuple[str, ...] = ()
    age_years: tuple[float, float] | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("channels", "size")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("native_size", "modality", "modality_label", "intensity_range",
                                           "bit_depth", "aspect", "views", "age_years")

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> InputSpec:
        _check_keys(model, "input.", raw, cls.REQUIRED, cls.OPTIONAL)
        lo_hi = raw.get("intensity_range")
        return cls(channels=_as(model, "input.channels", raw["channels"], int),
                   size=_as(model, "input.size", raw["size"], int),
                   native_size=_opt(model, "input.native_size", raw.get("native_size"), int),
                   modality=_as(model, "input.modality", raw.get("modality", DEFAULT_MODALITY), str),
                   modality_label=_opt(model, "input.modality_label", raw.get("modality_label"), str),
                   intensity_range=(DEFAULT_INTENSITY_RANGE if lo_hi is None
                                    else _seq(model, "input.intensity_range", lo_hi, length=2)),
                   bit_depth=_as(model, "input.bit_depth", raw.get("bit_depth", DEFAULT_BIT_DEPTH), int),
                   aspect=_as(model, "input.aspect", raw.get("aspect", DEFAULT_ASPECT), float),
                   views=_seq(model, "input.views", raw.get("views") or [], str),
                   age_years=(None if raw.get("age_years") is None
                              else _seq(model, "input.age_years", raw["age_years"], float, length=2)))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, S, S)``: the preprocessed image the model takes."""
        return (self.channels, self.size, self.size)

    @property
    def training_size(self) -> int:
        """Side of the training images (``native_size``, else the model input ``size``)."""
        return self.native_size or self.size

    @property
    def label(self) -> str:
        """The modality in words (``modality_label``, else the upper-case code)."""
        return self.modality_label or self.modality.upper()


@dataclass(frozen=True)
class LossSpec:
    """The training loss recorded at export: cross-entropy class weights and label smoothing."""

    class_weights: str = DEFAULT_CLASS_WEIGHTS
    label_smoothing: float = DEFAULT_LABEL_SMOOTHING

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> LossSpec:
        if not raw:
            return cls()
        _check_keys(model, "loss.", raw, ("class_weights",), ("label_smoothing",))
        return cls(_as(model, "loss.class_weights", raw["class_weights"], str),
                   _as(model, "loss.label_smoothing", raw.get("label_smoothing", DEFAULT_LABEL_SMOOTHING), float))


@dataclass(frozen=True)
class OODSpec:
    """A classifier's or sequence model's out-of-distribution detector (:mod:`medviz.classification.ood`,
    :mod:`medviz.sequence.ood`), fitted after export.

    Attributes:
        file: safetensors file of the fitted statistics (class means, precision matrix, val scores),
            relative to the weights directory.
        sha256: checksum of ``file`` (checked when the statistics are read).
        score: the score kept on validation (one of :attr:`SCORES`, :mod:`medviz.classification.ood`); higher =
            less like training.
        threshold: above it the model abstains (at most 5 % of the val images above it, with 95 % confidence;
            placed by the rule in ``record["threshold_rule"]``).
        val_abstention: fraction of the model's val images above ``threshold`` (sequence model: of its val
            stacks that abstain; its val slices' rate is ``record["val_slice_abstention"]``).
        layers: the layers read: the final linear layer of each member (its input, the penultimate features,
            and output, the logits) or, for a stage score, the residual stages whose pooled outputs are read.
        record: read-only provenance (``criterion``, ``candidates``, ``command``, ``created``, ``test``...).
    """

    file: str
    sha256: str
    score: str
    threshold: float
    val_abstention: float
    layers: tuple[str, ...]
    record: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    REQUIRED: ClassVar[tuple[str, ...]] = ("file", "sha256", "score", "threshold", "val_abstention", "layers")
    RECORD: ClassVar[tuple[str, ...]] = ("criterion", "candidates", "fitted_on", "shrinkage", "command", "created",
                                         "test", "earlier_tests", "threshold_rule", "val_threshold",
                                         "ood_val_quantile", "ood_val_abstention", "val_slice_abstention")
    SCORES: ClassVar[tuple[str, ...]] = ("mahalanobis", "mahalanobis_joint", "mahalanobis_stages", "mahalanobis_layer3",
                                         "mahalanobis_layer2", "mahalanobis_layer1", "energy",
                                         # the sequence model's (medviz.sequence.ood)
                                         "mahalanobis_mean", "mahalanobis_max")

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> OODSpec | None:
        if raw is None:
            return None
        _check_keys(model, "ood.", raw, cls.REQUIRED, cls.RECORD)
        score = _as(model, "ood.score", raw["score"], str)
        if score not in cls.SCORES:
            raise _fail(model, f"'ood.score' must be one of {cls.SCORES}, not {score!r}")
        return cls(file=_as(model, "ood.file", raw["file"], str), sha256=_as(model, "ood.sha256", raw["sha256"], str),
                   score=score, threshold=_as(model, "ood.threshold", raw["threshold"], float),
                   val_abstention=_as(model, "ood.val_abstention", raw["val_abstention"], float),
                   layers=_seq(model, "ood.layers", raw["layers"], str), record=_provenance(raw, cls.RECORD))


@dataclass(frozen=True, kw_only=True)
class ClassifierSpec(ModelSpec):
    """A 2D image classifier (MedMNIST or class folders).

    Attributes:
        classes: class names, in logit order.
        input: the model's input (:class:`InputSpec`).
        cam_layer: Grad-CAM layer name(s), comma-separated (ensembles: one per member).
        temperature: softmax temperature fitted on val (1.0: uncalibrated).
        dataset_key: MedMNIST key of the training set (``"folder"``/None: a class-folder set).
        arch_preset: ``--arch`` preset of the training command.
        loss: the training loss.
        ood: the out-of-distribution detector (None: not fitted; the model never abstains).
        operating_threshold: binary models: the calibrated positive-class probability chosen on val
            above which a case is called positive (None: arg-max).
    """

    TASK: ClassVar[str] = CLASSIFICATION
    REQUIRED: ClassVar[tuple[str, ...]] = ("classes", "input", "cam_layer")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("temperature", "dataset_key", "arch_preset", "loss", "ood",
                                           "operating_threshold")
    PROVENANCE: ClassVar[tuple[str, ...]] = ("preprocessing", "weights_dtype", "fp16_check", "metrics", "references",
                                             "data", "command", "created", "members", "members_note")

    classes: tuple[str, ...]
    input: InputSpec
    cam_layer: str
    temperature: float = DEFAULT_TEMPERATURE
    dataset_key: str | None = None
    arch_preset: str = ""
    loss: LossSpec = LossSpec()
    ood: OODSpec | None = None
    operating_threshold: float | None = None

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        return dict(operating_threshold=_opt(name, "operating_threshold", raw.get("operating_threshold"), float),
                    ood=OODSpec.from_entry(name, raw.get("ood")), classes=_seq(name, "classes", raw["classes"], str),
                    input=InputSpec.from_entry(name, raw["input"]),
                    cam_layer=_as(name, "cam_layer", raw["cam_layer"], str),
                    temperature=_as(name, "temperature", raw.get("temperature", DEFAULT_TEMPERATURE), float),
                    dataset_key=_opt(name, "dataset_key", raw.get("dataset_key"), str),
                    arch_preset=_as(name, "arch_preset", raw.get("arch_preset", ""), str),
                    loss=LossSpec.from_entry(name, raw.get("loss")))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def from_folder(self) -> bool:
        """Trained on a class-folder set (no MedMNIST split to evaluate on)."""
        return not self.dataset_key or self.dataset_key == "folder"

    @property
    def references(self) -> list[dict[str, Any]]:
        """Published results on the same test split (``method``, ``auc``, ``acc``, ``source``)."""
        return list(self.provenance.get("references") or [])

    @property
    def test_metrics(self) -> dict[str, Any]:
        """The test-split metrics recorded at export (empty when the test split was not touched)."""
        return dict(self.metrics.get("test") or {})


# ---- segmentation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegInputSpec:
    """A segmenter's input as recorded at export.

    Attributes:
        channels: channel names (``("T1 pre-contrast", "FLAIR", "T1 post-contrast")``); empty when unrecorded.
        modality: DICOM modality code the model was trained on (None: any).
        slice_size: ``(Y, X)`` of the training slices, when fixed.
        normalisation: the input normalisation, in words.
    """

    channels: tuple[str, ...] = ()
    modality: str | None = None
    slice_size: tuple[int, int] | None = None
    normalisation: str | None = None

    KEYS: ClassVar[tuple[str, ...]] = ("channels", "modality", "slice_size", "normalisation")

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> SegInputSpec:
        if raw is None:
            return cls()
        _check_keys(model, "input.", raw, (), cls.KEYS)
        size = raw.get("slice_size")
        return cls(channels=_seq(model, "input.channels", raw.get("channels", ()), str),
                   modality=_opt(model, "input.modality", raw.get("modality"), str),
                   slice_size=None if size is None else _seq(model, "input.slice_size", size, int, 2),
                   normalisation=_opt(model, "input.normalisation", raw.get("normalisation"), str))


@dataclass(frozen=True, kw_only=True)
class SegmenterSpec(ModelSpec):
    """A 2D UNet segmenter (the LGG model, or one trained on a user's NIfTI pairs).

    Attributes:
        classes: ``(background, label)`` names.
        input: the recorded input (:class:`SegInputSpec`).
        threshold: probability threshold chosen on val.
        min_size: smallest 3D component kept, in voxels, chosen on val.
        tta: test-time augmentation chosen on val (``"none"`` or ``"lr_flip"``).
        layout: training folder layout (``"lgg"`` or ``"nifti"``).
        label_value: NIfTI label value taken as foreground (None: every label > 0).
        data: the training folder (None: the shared LGG folder found through ``MEDVIZ_DATA_DIR``).
        cam_layer: Grad-CAM layer.
    """

    TASK: ClassVar[str] = SEGMENTATION
    OPTIONAL: ClassVar[tuple[str, ...]] = ("classes", "input", "threshold", "min_size", "tta", "layout",
                                           "label_value", "data", "cam_layer")
    PROVENANCE: ClassVar[tuple[str, ...]] = ("val_dice_by_tta", "dtype", "val_dice_patient", "test_dice_patient", "cv")

    classes: tuple[str, ...] = DEFAULT_SEG_CLASSES
    input: SegInputSpec = SegInputSpec()
    threshold: float = DEFAULT_THRESHOLD
    min_size: int = DEFAULT_MIN_SIZE
    tta: str = DEFAULT_TTA
    layout: str = DEFAULT_LAYOUT
    label_value: int | None = None
    data: str | None = None
    cam_layer: str = DEFAULT_SEG_CAM_LAYER

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        return dict(classes=_seq(name, "classes", raw.get("classes") or DEFAULT_SEG_CLASSES, str),
                    input=SegInputSpec.from_entry(name, raw.get("input")),
                    threshold=_as(name, "threshold", raw.get("threshold", DEFAULT_THRESHOLD), float),
                    min_size=_as(name, "min_size", raw.get("min_size", DEFAULT_MIN_SIZE), int),
                    tta=_as(name, "tta", raw.get("tta", DEFAULT_TTA), str),
                    layout=_as(name, "layout", raw.get("layout", DEFAULT_LAYOUT), str),
                    label_value=_opt(name, "label_value", raw.get("label_value"), int),
                    data=_opt(name, "data", raw.get("data"), str),
                    cam_layer=_as(name, "cam_layer", raw.get("cam_layer", DEFAULT_SEG_CAM_LAYER), str))

    @property
    def network_kwargs(self) -> dict[str, Any]:
        """The UNet's ``kwargs`` (channels, strides, in_channels...): ``arch.kwargs``, or for a fold ensemble
        (``arch.name == "Ensemble"``) its first member's; the members share one architecture."""
        kwargs = self.arch.kwargs
        if self.arch.name == "Ensemble" and kwargs.get("members"):
            return dict(kwargs["members"][0].get("kwargs", {}))
        return dict(kwargs)

    @property
    def in_channels(self) -> int:
        """Input channels of the network (``in_channels`` of :attr:`network_kwargs`)."""
        return int(self.network_kwargs.get("in_channels", DEFAULT_SEG_IN_CHANNELS))

    @property
    def modality(self) -> str | None:
        """Modality the model was trained on (None: any)."""
        return self.input.modality

    @property
    def label_name(self) -> str:
        """Display name of the foreground label (e.g. ``FLAIR abnormality``)."""
        return str(self.classes[-1])

    @property
    def val_dice_by_tta(self) -> dict[str, float]:
        """Val mean per-patient Dice of each TTA choice after tuned post-processing (export record)."""
        return dict(self.provenance.get("val_dice_by_tta") or {})


# ---- reconstruction ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconInputSpec:
    """A reconstruction/denoising model's input slices: ``size`` ``(Y, X)`` and intensity, in words."""

    size: tuple[int, int] = DEFAULT_RECON_SIZE
    intensity: str | None = None

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> ReconInputSpec:
        if raw is None:
            return cls()
        _check_keys(model, "input.", raw, (), ("size", "intensity"))
        return cls(size=_seq(model, "input.size", raw.get("size", DEFAULT_RECON_SIZE), int, 2),
                   intensity=_opt(model, "input.intensity", raw.get("intensity"), str))


@dataclass(frozen=True)
class NoiseSpec:
    """Training noise of a denoiser: ``type`` (``"rician"``) and ``max_sigma`` (fraction of the slice max)."""

    type: str
    max_sigma: float

    @classmethod
    def from_entry(cls, model: str, raw: Any) -> NoiseSpec | None:
        if raw is None:
            return None
        _check_keys(model, "noise.", raw, ("type", "max_sigma"), ())
        return cls(_as(model, "noise.type", raw["type"], str), _as(model, "noise.max_sigma", raw["max_sigma"], float))


@dataclass(frozen=True, kw_only=True)
class ReconSpec(ModelSpec):
    """An MRI reconstruction (``mode="recon"``) or denoising (``mode="denoise"``) model.

    Attributes:
        mode: ``"recon"`` or ``"denoise"``.
        input: the input slices (:class:`ReconInputSpec`).
        residual: the network predicts a residual.
        crop: ``(Y, X)`` training crop (None: whole slices / not recorded).
        accelerations: training accelerations, one per draw weight (recon).
        data_consistency: a data-consistency step follows each cascade (recon).
        cascades: number of data-consistency cascades (recon, shared weights).
        noise: training noise (denoise; None for recon).
    """

    TASK: ClassVar[str] = RECONSTRUCTION
    OPTIONAL: ClassVar[tuple[str, ...]] = ("mode", "input", "residual", "crop", "accelerations", "data_consistency",
                                           "cascades", "noise")
    PROVENANCE: ClassVar[tuple[str, ...]] = ("training",)

    mode: str = DEFAULT_RECON_MODE
    input: ReconInputSpec = ReconInputSpec()
    residual: bool = DEFAULT_RESIDUAL
    crop: tuple[int, int] | None = None
    accelerations: tuple[float, ...] = ()
    data_consistency: bool = DEFAULT_DATA_CONSISTENCY
    cascades: int = DEFAULT_CASCADES
    noise: NoiseSpec | None = None

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        mode = _as(name, "mode", raw.get("mode", DEFAULT_RECON_MODE), str)
        if mode not in RECON_MODES:
            raise _fail(name, f"'mode' must be one of {RECON_MODES}, not {mode!r}")
        crop = raw.get("crop")
        return dict(mode=mode, input=ReconInputSpec.from_entry(name, raw.get("input")),
                    residual=_as(name, "residual", raw.get("residual", DEFAULT_RESIDUAL), bool),
                    crop=None if crop is None else _seq(name, "crop", crop, int, 2),
                    accelerations=_seq(name, "accelerations", raw.get("accelerations") or (), float),
                    data_consistency=_as(name, "data_consistency",
                                         raw.get("data_consistency", DEFAULT_DATA_CONSISTENCY), bool),
                    cascades=_as(name, "cascades", raw.get("cascades", DEFAULT_CASCADES), int),
                    noise=NoiseSpec.from_entry(name, raw.get("noise")))

    @property
    def is_recon(self) -> bool:
        return self.mode == "recon"

    @property
    def training(self) -> dict[str, Any]:
        """The training record written at export (``command``, ``init_note``, ``best_epoch``...)."""
        return dict(self.provenance.get("training") or {})


# ---- sequence ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SequenceSpec(ModelSpec):
    """A per-slice tumour model that reads a whole stack (:mod:`medviz.sequence`).

    Attributes:
        segmenter: the registered segmentation model whose features the model reads (its slice encoder).
        segmenter_sha256: that segmenter's weights checksum when the model was trained.
        lr_flip: the encoder's output probability averages the left-right mirror (the segmenter's TTA).
        position_prior: tumour frequency per normalised-position bin on the training stacks (baseline).
        per_slice_window: rolling-mean window of the ``per_slice_smoothed`` baseline (tuned on val).
        segmenter_window: rolling-mean window of the ``segmenter_smoothed`` baseline (tuned on val).
        per_slice_c: regularisation of the per-slice logistic-regression head (chosen on val).
        ood: the out-of-distribution detector of whole stacks (None: not fitted; the strip never abstains).
    """

    TASK: ClassVar[str] = Task.SEQUENCE
    REQUIRED: ClassVar[tuple[str, ...]] = ("segmenter", "position_prior", "per_slice_window", "segmenter_window")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("segmenter_sha256", "lr_flip", "per_slice_c", "ood")
    PROVENANCE: ClassVar[tuple[str, ...]] = ("metrics", "command", "created", "selection_note", "earlier_tests")

    segmenter: str
    position_prior: tuple[float, ...]
    per_slice_window: int
    segmenter_window: int
    segmenter_sha256: str | None = None
    lr_flip: bool = True
    per_slice_c: float | None = None
    ood: OODSpec | None = None

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        return dict(segmenter=_as(name, "segmenter", raw["segmenter"], str),
                    position_prior=_seq(name, "position_prior", raw["position_prior"], float),
                    per_slice_window=_as(name, "per_slice_window", raw["per_slice_window"], int),
                    segmenter_window=_as(name, "segmenter_window", raw["segmenter_window"], int),
                    segmenter_sha256=_opt(name, "segmenter_sha256", raw.get("segmenter_sha256"), str),
                    lr_flip=_as(name, "lr_flip", raw.get("lr_flip", True), bool),
                    per_slice_c=_opt(name, "per_slice_c", raw.get("per_slice_c"), float),
                    ood=OODSpec.from_entry(name, raw.get("ood")))


# ---- super-resolution ----------------------------------------------------------------------------
#: Super-resolution arms a model can be: trained with a pixel loss, or fine-tuned adversarially.
SR_MODES = ("pixel", "gan")
#: How the low-resolution input is made from the real slice (the only one: ``area``, block averaging).
SR_DEGRADATIONS = ("area",)
DEFAULT_SR_SCALE = 4
DEFAULT_SR_SEGMENTER = "lgg_unet"


@dataclass(frozen=True, kw_only=True)
class SuperResSpec(ModelSpec):
    """A single-image super-resolution generator (:mod:`medviz.superres`); its output is synthetic.

    The network maps the bicubic upsampling of the low-resolution slice, ``(B, 1, H, W)`` in ``[0, 1]``, to a
    residual added to it (:attr:`residual`).

    Attributes:
        mode: ``"pixel"`` (L1 + SSIM loss) or ``"gan"`` (fine-tuned adversarially from :attr:`twin`).
        scale: the upsampling factor (each low-resolution pixel is a ``scale x scale`` block).
        degradation: how the low-resolution input is made (``"area"``: the block mean).
        residual: the network predicts a residual over the bicubic image.
        twin: the pixel-loss model a GAN was fine-tuned from (its ``pixel_loss`` baseline); None for ``pixel``.
        segmenter: the registered segmentation model of the downstream and Fréchet-distance measures.
    """

    TASK: ClassVar[str] = Task.SUPERRES
    REQUIRED: ClassVar[tuple[str, ...]] = ("mode",)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("scale", "degradation", "residual", "twin", "segmenter")
    PROVENANCE: ClassVar[tuple[str, ...]] = ("training", "metrics", "selection_rule")

    mode: str
    scale: int = DEFAULT_SR_SCALE
    degradation: str = "area"
    residual: bool = DEFAULT_RESIDUAL
    twin: str | None = None
    segmenter: str = DEFAULT_SR_SEGMENTER

    @classmethod
    def _task_fields(cls, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        mode = _as(name, "mode", raw["mode"], str)
        if mode not in SR_MODES:
            raise _fail(name, f"'mode' must be one of {SR_MODES}, not {mode!r}")
        degradation = _as(name, "degradation", raw.get("degradation", "area"), str)
        if degradation not in SR_DEGRADATIONS:
            raise _fail(name, f"'degradation' must be one of {SR_DEGRADATIONS}, not {degradation!r}")
        scale = _as(name, "scale", raw.get("scale", DEFAULT_SR_SCALE), int)
        if scale < 2:
            raise _fail(name, f"'scale' must be at least 2, not {scale}")
        twin = _opt(name, "twin", raw.get("twin"), str)
        if mode == "gan" and not twin:
            raise _fail(name, "a 'gan' super-resolution model must name its pixel-loss 'twin'")
        return dict(mode=mode, scale=scale, degradation=degradation,
                    residual=_as(name, "residual", raw.get("residual", DEFAULT_RESIDUAL), bool), twin=twin,
                    segmenter=_as(name, "segmenter", raw.get("segmenter", DEFAULT_SR_SEGMENTER), str))

    @property
    def training(self) -> dict[str, Any]:
        """The training record written at export (``command``, ``best_epoch``...)."""
        return dict(self.provenance.get("training") or {})


#: The spec type of each task.
SPEC_TYPES: dict[str, type[ModelSpec]] = {CLASSIFICATION: ClassifierSpec, SEGMENTATION: SegmenterSpec,
                                          RECONSTRUCTION: ReconSpec, Task.SEQUENCE: SequenceSpec,
                                          Task.SUPERRES: SuperResSpec}


def parse_spec(raw: Mapping[str, Any]) -> ModelSpec:
    """The typed spec of one manifest entry, by its ``task``.

    Raises:
        RegistryError: no or unknown task, unknown key or missing required key (named in the message).
    """
    name = raw.get("name", "?") if isinstance(raw, Mapping) else "?"
    if not isinstance(raw, Mapping) or "task" not in raw:
        raise _fail(name, "missing required key 'task'")
    kind = SPEC_TYPES.get(raw["task"])
    if kind is None:
        raise _fail(name, f"unknown task {raw['task']!r} (known: {', '.join(SPEC_TYPES)})")
    return kind.from_entry(raw)
