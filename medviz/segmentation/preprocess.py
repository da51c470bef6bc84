"""Segmentation input policy: which channels a model takes and how a Volume becomes its input.

``prepare_input`` turns a Volume into ``(Z, C, Y, X)`` float32 (channels replicated or averaged to the
model's count, per-channel stack normalisation by :func:`normalise_stack`), the same normalisation
training applies to every case."""

from __future__ import annotations

import numpy as np

from medviz.imaging.intensity import normalise_stack
from medviz.models.specs import SegmenterSpec
from medviz.types import MedvizError, Volume


class SegmentationError(MedvizError):
    """The input cannot be segmented (wrong shape, empty volume...)."""


def prepare_input(volume: Volume, spec: SegmenterSpec) -> tuple[np.ndarray, list[str]]:
    """Apply the input policy above for the model described by ``spec`` (its input channels,
    :attr:`~medviz.models.specs.SegmenterSpec.in_channels`, and modality).

    3-channel models (the LGG model): RGB as is, grey replicated. 1-channel models (trained on grey
    NIfTI volumes): grey as is, RGB averaged to grey. Each with a note when the input was changed.

    Returns:
        ``(x, notes)``: x is ``(Z, C, Y, X)`` float32 in [0, 1.5], C the model's input channels.
    """
    notes: list[str] = []
    n_ch, modality = spec.in_channels, spec.modality
    a = volume.array
    if a.size == 0:
        raise SegmentationError("the volume is empty")
    if modality and volume.modality not in (modality, "OT"):
        what = "brain MR (FLAIR abnormality)" if spec.layout == "lgg" else modality
        notes.append(f"Modality {volume.modality}: this model was trained on {what}; "
                     "results on other modalities are not meaningful.")
    if n_ch == 3 and a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
        notes.append("Single-channel input replicated into the three channels (T1, FLAIR, T1c); the model was "
                     "trained on 3-channel input, so expect lower accuracy (FLAIR input works best).")
    elif n_ch == 1 and a.ndim == 4:
        a = a.astype(np.float32).mean(axis=-1)
        notes.append("Colour input averaged to one grey channel: this model was trained on single-channel images.")
    if a.ndim == 3:
        a = a[..., None]
    if a.shape[-1] != n_ch:
        raise SegmentationError(f"this model takes {n_ch} input channel(s); the study has {a.shape[-1]}")
    x = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)

    return normalise_stack(x), notes


