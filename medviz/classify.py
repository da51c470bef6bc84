"""Classifier inference on one image: preprocessing, input guardrails, calibrated prediction and TTA.

The model may be shared by every browser session (``st.cache_resource``): nothing here changes its
weights, mode or hooks, and every call holds the model's lock (:func:`model_lock`), which
:mod:`medviz.explain` uses too.

Example:
    >>> model, entry = load_model("breast_resnet")                       # doctest: +SKIP
    >>> prep = prepare_input(volume.array[0], entry.raw)                  # doctest: +SKIP
    >>> predict(model, entry.raw, prep.x).probs.sum()                     # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviz.constants import WindowPreset
from medviz.data.medmnist import preprocess_image
from medviz.types import MedvizError, Volume

_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
#: Largest side of the display copy of the input.
DISPLAY_MAX = 512


class ClassifyError(MedvizError):
    """The image cannot be classified (wrong shape, empty, bad model entry)."""


def model_lock(model: Any) -> threading.RLock:
    """The re-entrant lock of one model object (shared models: one call at a time)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(model), threading.RLock())


@dataclass(frozen=True)
class PreparedInput:
    """An image made ready for a classifier.

    Attributes:
        x: ``(C, S, S)`` float32 in [0, 1], exactly what the model sees.
        display: the windowed, centre-cropped image at up to 512 px, float32 in [0, 1],
            ``(H, H)`` grey or ``(H, H, 3)`` RGB (for overlays).
        steps: the preprocessing steps, in words.
        warnings: guardrail warnings (input differs from the model card's input spec).
    """

    x: np.ndarray
    display: np.ndarray
    steps: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def model_view(self) -> np.ndarray:
        """What the model sees, for display: ``(S, S)`` grey or ``(S, S, 3)`` RGB float in [0, 1]."""
        return self.x[0] if self.x.shape[0] == 1 else np.moveaxis(self.x, 0, -1)


@dataclass(frozen=True)
class Prediction:
    """Calibrated class probabilities of one image (``probs`` sums to 1)."""

    classes: list[str]
    logits: np.ndarray
    probs: np.ndarray
    probs_uncalibrated: np.ndarray
    temperature: float

    @property
    def top(self) -> int:
        return int(np.argmax(self.probs))


@dataclass(frozen=True)
class TTAResult:
    """Calibrated probabilities under deterministic test-time augmentations.

    Attributes:
        names: augmentation names, ``(A,)``.
        samples: ``(A, K)`` probabilities per augmentation.
        mean: ``(K,)`` mean probability (sums to 1).
        std: ``(K,)`` spread (standard deviation) across augmentations.
    """

    names: list[str]
    samples: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def volume_slice(volume: Volume, index: int | None = None) -> np.ndarray:
    """One axial slice ``(Y, X)`` or ``(Y, X, 3)`` of a volume (middle slice by default); no copy."""
    z = volume.shape[0] // 2 if index is None else int(index)
    if not 0 <= z < volume.shape[0]:
        raise ClassifyError(f"slice {z} outside 0..{volume.shape[0] - 1}")
    return volume.array[z]


def is_8bit(image: np.ndarray) -> bool:
    """True for uint8 data or integral values within 0..255 (PNG/JPEG loaded as float): such images
    need no window, the model divides them by 255 as in training."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return True
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    return bool(finite.size and finite.min() >= 0 and finite.max() <= 255 and np.all(finite == np.round(finite)))


def check_input(image: np.ndarray, spec: dict[str, Any], modality: str | None = None,
                n_slices: int = 1) -> list[str]:
    """Guardrails: how the image differs from the model card's ``input`` spec.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` as loaded (before any window).
        spec: manifest ``input`` block (channels, size, native_size, modality, intensity_range, aspect).
        modality: the image's modality code (``None``/``OT``: unknown).
        n_slices: number of slices of the source volume.

    Returns:
        Warning sentences (empty when the image matches the spec).
    """
    img = np.asarray(image)
    out = []
    want = str(spec.get("modality", "OT")).upper()
    have = (modality or "OT").upper()
    label = spec.get("modality_label", want)
    if have in {"OT", ""}:
        out.append(f"Modality unknown: this model expects {label} ({want}).")
    elif have != want and not ({have, want} <= {"CR", "DX"}):
        out.append(f"Modality {have} does not match the model's {label} ({want}); the result is not meaningful.")
    rgb = img.ndim == 3 and img.shape[-1] == 3
    if spec.get("channels", 1) == 1 and rgb:
        out.append("Colour image given to a grey-scale model: converted to grey.")
    if spec.get("channels", 1) == 3 and not rgb:
        out.append("Grey image given to a colour model: the grey channel is repeated, colour cues are missing.")
    h, w = img.shape[:2]
    native = spec.get("native_size") or spec.get("size", 28)
    if min(h, w) < native:
        out.append(f"Image {h}x{w} is smaller than the {native}x{native} training images: it is enlarged.")
    elif min(h, w) > 4 * native:
        out.append(f"Image {h}x{w} is reduced to {spec.get('size')}x{spec.get('size')} px: fine detail is lost "
                   f"(the model was trained on {native}x{native} thumbnails).")
    aspect = max(h, w) / max(min(h, w), 1)
    if aspect > 1.2 * float(spec.get("aspect", 1.0)):
        out.append(f"Aspect ratio {aspect:.2f}:1 differs from the square training images: centre-cropped.")
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    lo, hi = spec.get("intensity_range", [0, 255])
    if finite.size == 0 or float(finite.max()) - float(finite.min()) < 1e-6:
        out.append("The image is blank (constant intensity).")
    elif img.dtype != np.uint8 and (float(finite.min()) < lo or float(finite.max()) > hi):
        out.append(f"Intensities {float(finite.min()):.4g}..{float(finite.max()):.4g} are outside the 8-bit range "
                   f"{lo}..{hi} the model was trained on: the display window (or min-max) maps them first.")
    if n_slices > 1:
        out.append(f"3D study: one slice of {n_slices} is classified.")
    return out


def prepare_input(image: np.ndarray, entry: dict[str, Any], window: WindowPreset | None = None,
                  modality: str | None = None, n_slices: int = 1) -> PreparedInput:
    """Preprocess one 2D image exactly as in training (see :func:`medviz.data.medmnist.preprocess_image`).

    Args:
        image: ``(H, W)`` or ``(H, W, 3)``; not modified.
        entry: the model's manifest entry (``input`` block).
        window: for grey data that is not 8-bit (CT in HU, 16-bit X-ray), map through this window
            to 0..255 first (the viewer's window); ``None``: min-max.
        modality, n_slices: for the guardrails (:func:`check_input`).
    """
    from medviz.transforms import window_to_uint8

    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3) or min(img.shape[:2]) < 1:
        raise ClassifyError(f"expected one (H, W) or (H, W, 3) image, not {img.shape}")
    spec = entry["input"]
    warnings = check_input(img, spec, modality, n_slices)
    steps = []
    if window is not None and img.ndim == 2:
        img = window_to_uint8(img, window)
        steps.append(f"window {window.name} (W {window.width:.4g} / L {window.level:.4g}) -> 0..255")
    x, more = preprocess_image(img, int(spec["channels"]), int(spec["size"]))
    side = min(min(img.shape[:2]), DISPLAY_MAX)
    display, _ = preprocess_image(img, 3 if img.ndim == 3 else 1, side)
    display = display[0] if display.shape[0] == 1 else np.moveaxis(display, 0, -1)
    return PreparedInput(x=x, display=display, steps=steps + more, warnings=warnings)


def batch_logits(model: Any, x: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Logits of a preprocessed stack ``(N, C, S, S)`` -> ``(N, K)`` float64, in eval and inference
    mode under the model's lock; the model's train/eval mode is restored."""
    import torch

    with model_lock(model):
        was_training = model.training
        model.eval()
        out = []
        try:
            with torch.inference_mode():
                for i in range(0, len(x), batch_size):
                    xb = torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size]), dtype=torch.float32, device=device)
                    out.append(model(xb).float().cpu().numpy())
        finally:
            model.train(was_training)
    if not out:
        raise ClassifyError("no images to classify")
    return np.concatenate(out).astype(np.float64)


def _device(model: Any) -> str:
    return str(next(model.parameters()).device)


def predict(model: Any, entry: dict[str, Any], x: np.ndarray) -> Prediction:
    """Calibrated probabilities of one preprocessed image ``(C, S, S)`` (deterministic).

    Returns:
        :class:`Prediction` with ``softmax(logits / T)``, ``T`` = the manifest's temperature.
    """
    from medviz.calibration import softmax

    x = np.asarray(x, dtype=np.float32)
    if x.shape != (entry["input"]["channels"], entry["input"]["size"], entry["input"]["size"]):
        raise ClassifyError(f"input must be preprocessed to {(entry['input']['channels'], entry['input']['size'], entry['input']['size'])}, not {x.shape}")
    z = batch_logits(model, x[None], _device(model))[0]
    t = float(entry.get("temperature", 1.0))
    return Prediction(list(entry["classes"]), z, softmax(z, t), softmax(z), t)


def _tta_views(x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Deterministic views of ``(C, S, S)``: identity, flip, 2-px shifts, +-8 degree rotations, 10 % zoom."""
    from monai.transforms import Affine

    s = x.shape[-1]
    d = max(1.0, round(2 * s / 28))
    specs = [("identity", {}), ("shift right", {"translate_params": (0, d)}), ("shift left", {"translate_params": (0, -d)}),
             ("shift down", {"translate_params": (d, 0)}), ("shift up", {"translate_params": (-d, 0)}),
             ("rotate +8°", {"rotate_params": np.deg2rad(8)}), ("rotate -8°", {"rotate_params": -np.deg2rad(8)}),
             ("zoom 1.1", {"scale_params": (1 / 1.1, 1 / 1.1)})]
    views = [x]
    for _, kw in specs[1:]:
        out, _ = Affine(**kw, padding_mode="zeros", mode="bilinear", image_only=False)(x)
        views.append(np.asarray(out, dtype=np.float32))
    names = [n for n, _ in specs] + ["flip"]
    views.append(x[:, :, ::-1].copy())
    return names, np.stack(views).astype(np.float32)


def predict_tta(model: Any, entry: dict[str, Any], x: np.ndarray) -> TTAResult:
    """Calibrated probabilities under :func:`_tta_views`; their spread is an uncertainty cue."""
    from medviz.calibration import softmax

    names, views = _tta_views(np.asarray(x, dtype=np.float32))
    p = softmax(batch_logits(model, views, _device(model)), float(entry.get("temperature", 1.0)))
    return TTAResult(names, p, p.mean(axis=0), p.std(axis=0))
