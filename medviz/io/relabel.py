"""Modality and units of a study whose file does not say them (NIfTI), chosen by the user or suggested from
the values.

NIfTI carries no modality, so :func:`medviz.io.nifti.read_nifti` labels its volumes ``OT`` / ``a.u.`` (or what
the caller declares) and a CT volume then gets no HU window presets. :func:`relabel` returns the same voxels
under other labels; :func:`suggest_labels` says when the values plainly are CT Hounsfield units (a minimum
near -1024 HU, much air and some bone), the header's intent name or description says CT or HU, or the declared
modality is CT, with the reason in words. Nothing here
changes a volume silently: the caller shows the suggestion and the user chooses.

Example:
    >>> import numpy as np
    >>> from medviz.types import Volume, affine_from_spacing
    >>> ct = np.full((2, 8, 8), -1024.0, np.float32); ct[:, 2:6, 2:6] = 40.0; ct[:, 3, 3] = 900.0
    >>> vol = Volume(ct, (1.0, 1.0, 1.0), affine_from_spacing((1.0, 1.0, 1.0)), meta={"Format": "NIfTI-1"})
    >>> suggest_labels(vol).label
    'CT (HU)'
    >>> relabel(vol, "CT (HU)").units
    'HU'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from medviz.types import Volume

#: The labels a user can give a NIfTI study: menu text -> (modality, units).
NIFTI_LABELS: dict[str, tuple[str, str]] = {
    "CT (HU)": ("CT", "HU"),
    "MR (a.u.)": ("MR", "a.u."),
    "Other (a.u.)": ("OT", "a.u."),
}
CT_LABEL = "CT (HU)"

AIR_HU = (-1100.0, -900.0)  # air and the scanner's padding value (-1024) in CT
MIN_AIR_FRACTION = 0.02  # at least this much of the volume is air...
BONE_HU = 300.0  # ...and some voxels are at least this dense (bone, contrast, metal)
MIN_BONE_FRACTION = 1e-4
MAX_SAMPLES = 1_000_000
#: Words in a NIfTI header's intent name or description that say its values are CT Hounsfield units.
CT_WORDS = re.compile(r"\b(CT|HU)\b|hounsfield", re.IGNORECASE)
#: The NIfTI intents whose values are not intensities (a label map, a vector, ...): never suggested as CT.
NOT_INTENSITY_INTENTS = frozenset({1002, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016, 1017, 1018})


@dataclass(frozen=True)
class Suggestion:
    """A suggested label (a key of :data:`NIFTI_LABELS`) and why, in words for a note on the page."""

    label: str
    reason: str


def has_no_declared_labels(volume: Volume) -> bool:
    """True for grey NIfTI volumes: their file states no modality, so the user may set it."""
    return not volume.is_rgb and str(volume.meta.get("Format", "")).startswith("NIfTI")


def current_label(volume: Volume) -> str | None:
    """The key of :data:`NIFTI_LABELS` matching the volume's modality and units, or None."""
    return next((k for k, v in NIFTI_LABELS.items() if v == (volume.modality, volume.units)), None)


def relabel(volume: Volume, label: str) -> Volume:
    """The same study (voxels, geometry, warnings shared, nothing copied) under ``label``'s modality and units.

    Args:
        volume: a grey volume (not modified).
        label: a key of :data:`NIFTI_LABELS`.

    Returns:
        A new :class:`~medviz.types.Volume`; ``meta["Modality"]`` follows and ``meta["Labels"]`` says the
        labels were set in the app, not read from the file.

    Raises:
        KeyError: unknown label (the message lists the choices).
        ValueError: an RGB volume (colour images have no modality units to set).
    """
    if label not in NIFTI_LABELS:
        raise KeyError(f"unknown modality/units {label!r}; choose one of {list(NIFTI_LABELS)}")
    if volume.is_rgb:
        raise ValueError("an RGB image has no modality units to set")
    modality, units = NIFTI_LABELS[label]
    meta = {**volume.meta, "Modality": modality, "Labels": f"{label}, set in MedViz (the file states none)"}
    return dataclasses.replace(volume, modality=modality, units=units, meta=meta)


def _sample(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values).reshape(-1)
    if flat.size > MAX_SAMPLES:
        flat = flat[:: int(np.ceil(flat.size / MAX_SAMPLES))]
    return flat[np.isfinite(flat)].astype(np.float32, copy=False)


def hu_evidence(volume: Volume) -> str | None:
    """Why the values plainly are CT Hounsfield units, or None when they are not.

    Plainly HU: the minimum lies in -1100..-900 (air, or the -1024 padding), at least 2 % of the voxels are air
    and some (0.01 %) are at least 300 HU (bone). MR, X-ray and photos are never negative like this.
    """
    if volume.is_rgb:
        return None
    v = _sample(volume.array)
    if v.size == 0:
        return None
    low = float(v.min())
    air = float(np.mean((v >= AIR_HU[0]) & (v <= AIR_HU[1])))
    bone = float(np.mean(v >= BONE_HU))
    if not (AIR_HU[0] <= low <= AIR_HU[1] and air >= MIN_AIR_FRACTION and bone >= MIN_BONE_FRACTION):
        return None
    return (f"minimum {low:.0f}, {air:.0%} of the voxels at air (-1100..-900) and {bone:.1%} at bone "
            f"(≥ {BONE_HU:.0f})")


def header_evidence(volume: Volume) -> str | None:
    """Where the NIfTI header's intent name or description says CT / HU (read by
    :func:`medviz.io.nifti.header_text`), the words and where they stand; None otherwise."""
    for key, what in (("IntentName", "intent name"), ("Description", "description")):
        text = str(volume.meta.get(key, ""))
        if CT_WORDS.search(text):
            return f"the header's {what} is {text!r}"
    return None


def suggest_labels(volume: Volume) -> Suggestion | None:
    """CT (HU) for a grey NIfTI labelled otherwise whose declared modality is CT, whose header's intent name or
    description says CT or HU, or whose values plainly are HU; never for a label map or another non-intensity
    intent.

    Returns:
        A :class:`Suggestion` (label and reason), or None: not a NIfTI, already CT in HU, or nothing says CT.
    """
    if not has_no_declared_labels(volume) or current_label(volume) == CT_LABEL:
        return None
    if str(volume.meta.get("Modality", "")).upper() == "CT" or volume.modality.upper() == "CT":
        return Suggestion(CT_LABEL, "the declared modality is CT")
    if volume.meta.get("IntentCode") in NOT_INTENSITY_INTENTS:
        return None
    if (said := header_evidence(volume)) is not None:
        return Suggestion(CT_LABEL, f"{said}")
    if (evidence := hu_evidence(volume)) is not None:
        return Suggestion(CT_LABEL, f"the values look like CT Hounsfield units: {evidence}")
    return None
