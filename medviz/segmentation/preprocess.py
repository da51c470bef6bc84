"""Segmentation input policy: which channels a model takes and how a Volume becomes its input.

``prepare_input`` turns a Volume into ``(Z, C, Y, X)`` float32 (channels replicated or averaged to the
model's count, per-channel stack normalisation by :func:`normalise_stack`), the same normalisation
training applies to every case."""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.types import MedvizError, Volume


class SegmentationError(MedvizError):
    """The input cannot be segmented (wrong shape, empty volume...)."""


def input_spec(entry: Any = None) -> tuple[int, str | None, str]:
    """``(input channels, expected modality or None, label name)`` of a segmentation manifest entry
    (None: the shipped LGG model's 3-channel MR input)."""
    if entry is None:
        return 3, "MR", "FLAIR abnormality"
    n = int(entry.get("arch", {}).get("kwargs", {}).get("in_channels", 3))
    classes = entry.get("classes") or ["background", "foreground"]
    return n, (entry.get("input") or {}).get("modality"), str(classes[-1])


def prepare_input(volume: Volume, entry: Any = None) -> tuple[np.ndarray, list[str]]:
    """Apply the input policy above for the model described by ``entry`` (a manifest entry).

    3-channel models (the LGG model): RGB as is, grey replicated. 1-channel models (trained on grey
    NIfTI volumes): grey as is, RGB averaged to grey. Each with a note when the input was changed.

    Returns:
        ``(x, notes)``: x is ``(Z, C, Y, X)`` float32 in [0, 1.5], C the model's input channels.
    """
    notes: list[str] = []
    n_ch, modality, _ = input_spec(entry)
    a = volume.array
    if a.size == 0:
        raise SegmentationError("the volume is empty")
    if modality and volume.modality not in (modality, "OT"):
        what = "brain MR (FLAIR abnormality)" if entry is None or entry.get("layout", "lgg") == "lgg" else modality
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


def normalise_stack(image: np.ndarray, percentile: float = 99.0, clip: float = 1.5) -> np.ndarray:
    """Channel-first float32 input for the model, robust to outliers and scanner scaling.

    Per channel, over the whole stack: subtract the minimum, divide by the ``percentile`` of the
    voxels above that minimum (the head, not the air), clip to ``[0, clip]``.

    Args:
        image: ``(Z, H, W, C)`` any numeric dtype.

    Returns:
        ``(Z, C, H, W)`` float32 in ``[0, clip]`` (a constant channel becomes 0).
    """
    x = np.moveaxis(np.asarray(image, dtype=np.float32), -1, 1)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        ch = x[:, c] - x[:, c].min()
        fg = ch[ch > 0]
        hi = float(np.percentile(fg, percentile)) if fg.size else 0.0
        out[:, c] = np.clip(ch / hi, 0.0, clip) if hi > 1e-6 else 0.0
    return out
