"""Segmentation inference with a 2D UNet (the LGG model, or one trained on a user's NIfTI pairs):
one image, a slice stack, or a 3D volume.

Input policy for the shipped LGG model (trained on slices with 3 channels: pre-contrast T1, FLAIR,
post-contrast T1, each channel scaled by its 99th percentile over the whole stack):

* RGB volumes ``(Z, Y, X, 3)`` are taken as (T1, FLAIR, T1c) in that channel order.
* Single-channel volumes ``(Z, Y, X)`` are replicated into all three channels, with a note that the
  model was trained on 3-channel input (a FLAIR image gives the most meaningful result).
* Modalities other than MR get a note that the model is an MR brain model.
* Every channel is scaled over the whole volume (:func:`medviz.segmentation.preprocess.normalise_stack`).

Models trained on single-channel NIfTI pairs take grey volumes as they are (colour is averaged to
grey, with a note); their spec says how many channels they take (:attr:`medviz.models.specs.SegmenterSpec.in_channels`).

3D path: the 2D model runs through ``monai.inferers.sliding_window_inference`` on the volume laid
out as ``(1, C, Y, X, Z)`` with windows ``(min(Y, 256), min(X, 256), 1)``: every window is one
slice (or a 256² tile of a bigger slice), so the result equals slice-wise inference on slices of up
to 256², and tiles of larger slices are blended with Gaussian weights. We chose this over a 2.5D or
3D model because the LGG data are 2D slices without spacing (slice thickness unknown).

Test-time augmentation (manifest ``tta``, chosen on val at export): ``"none"`` or ``"lr_flip"``,
the mean probability of the input and its left-right mirror (the only flip in the LGG training
augmentation, so the mirrored input is in distribution). :func:`tta_uncertainty` is separate: it
uses all four in-plane flips to show where the model is unsure.

Devices: the model runs where its parameters are; on CUDA under AMP (float16 autocast). A CUDA
out-of-memory error halves the batch, then stitches on the CPU (``device="cpu"``), then runs on a
CPU copy of the model; each step adds a note to the result
(:func:`medviz.models.runtime.run_with_oom_fallback`). Shared (cached) models are never mutated:
every forward pass runs inside :func:`medviz.models.runtime.using` (the model's lock, eval mode,
``torch.inference_mode``). Grad-CAM of a slice is :func:`medviz.explain.explain` with
:func:`medviz.explain.segmentation_target` on the layer :data:`CAM_LAYER`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviz.models.runtime import run_with_oom_fallback
from medviz.models.specs import DEFAULT_SEG_CAM_LAYER, SegmenterSpec
from medviz.segmentation.preprocess import SegmentationError, prepare_input
from medviz.types import Volume

TILE = 256
CAM_LAYER = DEFAULT_SEG_CAM_LAYER  # UNet decoder block at 1/4 resolution (LGG Grad-CAM layer)


@dataclass
class SegResult:
    """Output of :func:`segment_volume`.

    Attributes:
        mask: ``(Z, Y, X)`` uint8 labels (1 = FLAIR abnormality).
        prob: ``(Z, Y, X)`` float32 foreground probability.
        path: ``"2d"``, ``"stack"`` or ``"sliding_window"``.
        device: where the network ran.
        notes: what the user should know (input policy, fallbacks).
    """

    mask: np.ndarray
    prob: np.ndarray
    path: str
    device: str
    notes: list[str] = field(default_factory=list)


def _forward_batches(model: Any, x: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    import torch

    out = np.empty((x.shape[0], *x.shape[2:]), dtype=np.float32)
    use_amp = device.startswith("cuda")
    for i in range(0, x.shape[0], batch_size):
        t = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            logits = model(t)
        out[i:i + batch_size] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
    return out


def _sliding_window(model: Any, x: np.ndarray, sw_batch_size: int, device: str, stitch_device: str,
                    overlap: float) -> np.ndarray:
    import torch
    from monai.inferers import sliding_window_inference

    vol = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, 0, -1)))[None]  # (1, C, Y, X, Z)
    roi = (min(TILE, vol.shape[2]), min(TILE, vol.shape[3]), 1)

    def predictor(w: Any) -> Any:  # (B, C, h, w, 1) -> (B, 1, h, w, 1)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.startswith("cuda")):
            return model(w[..., 0]).float()[..., None]

    logits = sliding_window_inference(vol, roi, sw_batch_size, predictor, overlap=(overlap, overlap, 0.0),
                                      mode="gaussian", sw_device=device, device=stitch_device)
    return np.moveaxis(torch.sigmoid(logits)[0, 0].cpu().numpy().astype(np.float32), -1, 0)


def predict_probs(model: Any, x: np.ndarray, path: str = "stack", batch_size: int = 16,
                  overlap: float = 0.25) -> tuple[np.ndarray, str, list[str]]:
    """Foreground probabilities for ``x`` with the device/OOM fallbacks described above.

    Args:
        model: 2D network ``(B, C, H, W) -> (B, 1, H, W)`` logits.
        x: ``(Z, C, Y, X)`` float32 model input.
        path: ``"stack"`` (slice-wise batches) or ``"sliding_window"``.
        batch_size: slices (or windows) per forward pass.
        overlap: in-plane window overlap of the sliding-window path.

    Returns:
        ``(prob (Z, Y, X) float32, device used, notes)``.
    """
    if path not in ("stack", "sliding_window"):
        raise SegmentationError(f"unknown inference path {path!r}; use 'stack' or 'sliding_window'")

    def attempt(m: Any, bs: int, device: str, stitch: str) -> np.ndarray:
        if path == "stack":
            return _forward_batches(m, x, bs, device)
        return _sliding_window(m, x, bs, device, stitch, overlap)

    return run_with_oom_fallback(model, attempt, batch_size, stitch=path == "sliding_window")


TTA_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {"none": ((),), "lr_flip": ((), (3,))}
"""Flips of the ``(Z, C, Y, X)`` input averaged by each test-time augmentation mode (axis 3 = X)."""


def _flipped_probs(model: Any, x: np.ndarray, flips: tuple[tuple[int, ...], ...], path: str,
                   batch_size: int) -> tuple[list[np.ndarray], str, list[str]]:
    """One ``(Z, Y, X)`` probability map per flip, each mapped back onto the unflipped grid."""
    probs, device, notes = [], "cpu", []
    for axes in flips:
        xf = np.ascontiguousarray(np.flip(x, axis=axes)) if axes else x
        p, device, run_notes = predict_probs(model, xf, path, batch_size)
        notes += [n for n in run_notes if n not in notes]
        probs.append(np.flip(p, axis=tuple(a - 1 for a in axes)) if axes else p)
    return probs, device, notes


def predict_tta(model: Any, x: np.ndarray, tta: str = "none", path: str = "stack",
                batch_size: int = 16) -> tuple[np.ndarray, str, list[str]]:
    """:func:`predict_probs` averaged over the flips of ``tta`` (a key of :data:`TTA_FLIPS`).

    Returns:
        ``(prob (Z, Y, X) float32, device used, notes)``.
    """
    if tta not in TTA_FLIPS:
        raise SegmentationError(f"unknown test-time augmentation {tta!r}; use one of {sorted(TTA_FLIPS)}")
    probs, device, notes = _flipped_probs(model, x, TTA_FLIPS[tta], path, batch_size)
    prob = probs[0] if len(probs) == 1 else np.mean(probs, axis=0).astype(np.float32)
    return prob, device, notes


def postprocess(prob: np.ndarray, threshold: float = 0.5, min_size: int = 0) -> np.ndarray:
    """Threshold and drop 3D connected components smaller than ``min_size`` voxels.

    Args:
        prob: ``(Z, Y, X)`` or ``(Y, X)`` probabilities.

    Returns:
        uint8 mask of the same shape.
    """
    from skimage.morphology import remove_small_objects

    m = prob > threshold
    if min_size > 0 and m.any():
        m = remove_small_objects(m, max_size=min_size - 1) if _new_skimage() else remove_small_objects(m, min_size)
    return m.astype(np.uint8)


def _new_skimage() -> bool:
    import inspect

    from skimage.morphology import remove_small_objects

    return "max_size" in inspect.signature(remove_small_objects).parameters


def segment_volume(model: Any, volume: Volume, spec: SegmenterSpec, path: str = "auto",
                   threshold: float | None = None, min_size: int | None = None, batch_size: int = 16,
                   tta: str | None = None) -> SegResult:
    """Segment a Volume (2D image, slice stack, or 3D volume).

    Args:
        spec: the model's spec (input channels and modality; post-processing and TTA chosen on val).
        path: ``"auto"`` (``"2d"`` for one slice, else ``"stack"``), ``"stack"`` or ``"sliding_window"``.
        threshold, min_size: post-processing; None: the spec's (chosen on val).
        tta: test-time augmentation (:data:`TTA_FLIPS`); None: the spec's ``tta`` (chosen on val).

    Returns:
        A :class:`SegResult` on the volume's grid.
    """
    x, notes = prepare_input(volume, spec)
    kind = ("2d" if x.shape[0] == 1 else "stack") if path == "auto" else path
    tta = spec.tta if tta is None else tta
    threshold = spec.threshold if threshold is None else threshold
    min_size = spec.min_size if min_size is None else min_size
    prob, device, run_notes = predict_tta(model, x, tta, "sliding_window" if kind == "sliding_window" else "stack",
                                          batch_size)
    if tta == "lr_flip":
        notes.append("Test-time augmentation: mean of the image and its left-right mirror (chosen on validation "
                     "for this model; two passes).")
    if device == "cpu" and kind == "sliding_window" and not any("CPU" in n for n in run_notes):
        run_notes.append("No GPU: the sliding window ran and was stitched on the CPU (slower).")
    mask = postprocess(prob, threshold, min_size)
    return SegResult(mask=mask, prob=prob, path=kind, device=device, notes=notes + run_notes)


def tta_uncertainty(model: Any, x: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Test-time augmentation with the four in-plane flips (identity, left-right, up-down, both).

    Args:
        x: ``(Z, C, Y, X)`` model input.

    Returns:
        ``(mean_prob, uncertainty)``, both ``(Z, Y, X)`` float32; uncertainty is the standard
        deviation of the four probabilities scaled by 2 into [0, 1].
    """
    probs, _, _ = _flipped_probs(model, x, ((), (3,), (2,), (2, 3)), "stack", batch_size)
    stack = np.stack(probs)
    return stack.mean(axis=0), np.clip(2.0 * stack.std(axis=0), 0.0, 1.0).astype(np.float32)
