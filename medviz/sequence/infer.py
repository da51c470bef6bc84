"""Per-slice tumour probabilities of a stack: slice features (:mod:`medviz.sequence.encoder`), then the
GRU and, beside it, the per-slice baseline head of the shipped :class:`~medviz.models.recurrent.SequenceModel`.
Both models may be shared by every browser session; each runs under :func:`medviz.models.runtime.using`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.imaging.intensity import normalise_stack
from medviz.models.runtime import model_device, using
from medviz.models.weights import load_model
from medviz.sequence.encoder import SEG_MAX_PROB, slice_features
from medviz.types import MedvizError, Volume


class SequenceError(MedvizError):
    """The stack cannot be read by the sequence model (wrong shape, too few slices...)."""


@dataclass(frozen=True)
class StackPrediction:
    """Probabilities for every slice of one stack, all ``(Z,)`` float64 in [0, 1].

    Attributes:
        gru: the bidirectional GRU (the model).
        per_slice: the same features through the per-slice head (no context), for comparison.
        segmenter: the segmenter's maximum foreground probability per slice.
        features: ``(Z, F)`` float32, the slice features the model read (for its OOD score).
    """

    gru: np.ndarray
    per_slice: np.ndarray
    segmenter: np.ndarray
    features: np.ndarray | None = None


def predict_features(model: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(gru, per_slice)`` probabilities ``(Z,)`` of one stack's ``(Z, F)`` features."""
    import torch

    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] < 1:
        raise SequenceError(f"expected (slices, features) for one stack, not {f.shape}")
    with using(model) as m:
        t = torch.from_numpy(f)[None].to(model_device(m))
        gru = torch.sigmoid(m(t, torch.tensor([f.shape[0]]))).double().cpu().numpy()[0]
        per_slice = torch.sigmoid(m.per_slice(t)).double().cpu().numpy()[0]
    return gru, per_slice


def predict_stack(model: Any, segmenter: Any, x: np.ndarray, lr_flip: bool = True) -> StackPrediction:
    """Every slice of a normalised ``(Z, 3, H, W)`` stack (see :func:`medviz.sequence.data.load_stack`)."""
    if np.ndim(x) != 4 or np.shape(x)[0] < 2:
        raise SequenceError(f"the sequence model reads a stack of at least 2 slices, not {np.shape(x)}")
    features = slice_features(segmenter, x, lr_flip=lr_flip)
    gru, per_slice = predict_features(model, features)
    return StackPrediction(gru=gru, per_slice=per_slice, segmenter=features[:, SEG_MAX_PROB].astype(np.float64),
                           features=features)


def prepare_stack(volume: Volume, min_slices: int = 2) -> tuple[np.ndarray, list[str]]:
    """An axial stack as the encoder's ``(Z, 3, H, W)`` input, with notes on how it differs from the LGG
    training stacks: RGB volumes are taken as (T1, FLAIR, T1c); grey volumes are repeated into the three
    channels (FLAIR input works best); each channel is scaled over the whole stack.

    Args:
        min_slices: fewest slices accepted (the model reads at least 2; the OOD scores read single slices too).

    Raises:
        SequenceError: fewer than ``min_slices`` slices, or an empty volume.
    """
    a = np.asarray(volume.array)
    if a.size == 0 or volume.shape[0] < min_slices:
        raise SequenceError(f"the sequence model reads a stack of at least {min_slices} slices; this study has "
                            f"{volume.shape[0]}")
    notes = []
    if volume.modality not in ("MR", "OT"):
        notes.append(f"Modality {volume.modality}: the sequence model was trained on brain MR (LGG); its slice "
                     "probabilities are not meaningful here.")
    if volume.shape[1:] != (256, 256):
        notes.append(f"Slices are {volume.shape[1]}x{volume.shape[2]}; the model was trained on 256x256 slices.")
    if a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
        notes.append("Grey stack repeated into the three channels (T1, FLAIR, T1c); the model was trained on "
                     "3-channel input, so expect lower accuracy.")
    x = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return normalise_stack(x), notes


def load_models(name: str, device: str = "cpu", weights_dir: Path | None = None) -> tuple[Any, Any, Any]:
    """``(sequence model, its slice encoder, entry)``: the registered sequence model ``name`` and the
    segmenter whose features it reads, from the same registry.

    Raises:
        SequenceError: the registered segmenter is not the one the model was trained on (its weights changed).
    """
    model, entry = load_model(name, device=device, weights_dir=weights_dir)
    spec = entry.spec
    segmenter, seg_entry = load_model(spec.segmenter, device=device, weights_dir=entry.weights_dir)
    if spec.segmenter_sha256 and seg_entry.spec.sha256 != spec.segmenter_sha256:
        raise SequenceError(
            f"{name} reads the features of {spec.segmenter} as it was when {name} was trained (weights "
            f"{spec.segmenter_sha256[:12]}…); the registered {spec.segmenter} has other weights "
            f"({str(seg_entry.spec.sha256)[:12]}…), so {name} must be trained again on them")
    return model, segmenter, entry

