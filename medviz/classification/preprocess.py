"""Classifier preprocessing, one function for training, evaluation and the Classify page, plus the
input guardrails that say how an image differs from the model card's input spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviz.classification.data import DataError
from medviz.classification.population import population_warnings
from medviz.constants import WindowPreset
from medviz.imaging.windowing import window_presets, window_to_uint8
from medviz.models.specs import ClassifierSpec, InputSpec
from medviz.types import MedvizError, Volume

#: Largest side of the display copy of the input.
DISPLAY_MAX = 512


class ClassifyError(MedvizError):
    """The image cannot be classified (wrong shape, empty, bad model entry)."""


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


#: Mean spread between the colour channels (0..255 scale) above which an RGB image counts as colourful.
COLOUR_SPREAD = 8.0


def modality_mismatch(spec: InputSpec, modality: str | None) -> bool:
    """True when the image declares a modality (not ``OT``/unknown) other than the model's (CR and DX agree)."""
    have, want = (modality or "OT").upper(), spec.modality.upper()
    return have not in {"OT", ""} and have != want and not ({have, want} <= {"CR", "DX"})


def is_colourful(image: np.ndarray) -> bool:
    """True for an ``(H, W, 3)`` image whose channels really differ (mean max-min spread over
    :data:`COLOUR_SPREAD` on the 0..255 scale); a grey picture stored as RGB is not colourful."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        return False
    x = img.astype(np.float32)
    if not is_8bit(img):
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        x = (np.nan_to_num(x, nan=lo) - lo) * (255.0 / max(hi - lo, 1e-6))
    return float(np.mean(x.max(axis=-1) - x.min(axis=-1))) > COLOUR_SPREAD


def input_abstain_reasons(image: np.ndarray, spec: InputSpec, modality: str | None = None) -> list[str]:
    """The input checks that make a classifier abstain on their own (a subset of :func:`check_input`):
    a declared modality other than the model's, a blank image, a grey image given to a colour model and
    a colourful image given to a grey model. Size, aspect and intensity range only warn.

    Returns:
        One sentence per failed check (empty: the input checks pass).
    """
    img = np.asarray(image)
    out = []
    if modality_mismatch(spec, modality):
        out.append(f"its modality {(modality or '').upper()} is not the model's {spec.label} ({spec.modality.upper()})")
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    if finite.size == 0 or float(finite.max()) - float(finite.min()) < 1e-6:
        out.append("it is blank (constant intensity)")
    rgb = img.ndim == 3 and img.shape[-1] == 3
    if spec.channels == 3 and not rgb:
        out.append(f"it is a grey image and the model was trained on colour images ({spec.label})")
    if spec.channels == 1 and is_colourful(img):
        out.append(f"it is a colour image and the model was trained on grey images ({spec.label})")
    return out


def check_input(image: np.ndarray, spec: InputSpec, modality: str | None = None,
                n_slices: int = 1, header: Mapping[str, Any] | None = None) -> list[str]:
    """Guardrails: how the image differs from the model card's ``input`` spec.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` as loaded (before any window).
        spec: the classifier's input spec (channels, size, native_size, modality, intensity_range, aspect).
        modality: the image's modality code (``None``/``OT``: unknown).
        n_slices: number of slices of the source volume.
        header: the study's metadata (``Volume.meta``) for the view and age checks
            (:func:`medviz.classification.population.population_warnings`).

    Returns:
        Warning sentences (empty when the image matches the spec).
    """
    img = np.asarray(image)
    out = []
    want = spec.modality.upper()
    have = (modality or "OT").upper()
    label = spec.label
    if have in {"OT", ""}:
        out.append(f"Modality unknown: this model expects {label} ({want}).")
    elif modality_mismatch(spec, modality):
        out.append(f"Modality {have} does not match the model's {label} ({want}); the result is not meaningful.")
    rgb = img.ndim == 3 and img.shape[-1] == 3
    if spec.channels == 1 and rgb:
        out.append("Colour image given to a grey-scale model: converted to grey.")
    if spec.channels == 3 and not rgb:
        out.append("Grey image given to a colour model: the grey channel is repeated, colour cues are missing.")
    h, w = img.shape[:2]
    native = spec.training_size
    if min(h, w) < native:
        out.append(f"Image {h}x{w} is smaller than the {native}x{native} training images: it is enlarged.")
    elif min(h, w) > 4 * native:
        out.append(f"Image {h}x{w} is reduced to {spec.size}x{spec.size} px: fine detail is lost "
                   f"(the model was trained on {native}x{native} thumbnails).")
    aspect = max(h, w) / max(min(h, w), 1)
    if aspect > 1.2 * spec.aspect:
        out.append(f"Aspect ratio {aspect:.2f}:1 differs from the square training images: centre-cropped.")
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    lo, hi = spec.intensity_range
    if finite.size == 0 or float(finite.max()) - float(finite.min()) < 1e-6:
        out.append("The image is blank (constant intensity).")
    elif img.dtype != np.uint8 and (float(finite.min()) < lo or float(finite.max()) > hi):
        out.append(f"Intensities {float(finite.min()):.4g}..{float(finite.max()):.4g} are outside the 8-bit range "
                   f"{lo}..{hi} the model was trained on: the display window (or min-max) maps them first.")
    if n_slices > 1:
        out.append(f"3D study: one slice of {n_slices} is classified.")
    return out + population_warnings(spec, header)


def prepare_input(image: np.ndarray, spec: ClassifierSpec, window: WindowPreset | None = None,
                  modality: str | None = None, n_slices: int = 1,
                  header: Mapping[str, Any] | None = None) -> PreparedInput:
    """Preprocess one 2D image exactly as in training (see :func:`medviz.classification.preprocess.preprocess_image`).

    Args:
        image: ``(H, W)`` or ``(H, W, 3)``; not modified.
        spec: the classifier's spec (its :attr:`~medviz.models.specs.ClassifierSpec.input`).
        window: for grey data that is not 8-bit (CT in HU, 16-bit X-ray), map through this window
            to 0..255 first (the viewer's window); ``None``: min-max.
        modality, n_slices, header: for the guardrails (:func:`check_input`).
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3) or min(img.shape[:2]) < 1:
        raise ClassifyError(f"expected one (H, W) or (H, W, 3) image, not {img.shape}")
    inp = spec.input
    warnings = check_input(img, inp, modality, n_slices, header)
    steps = []
    if window is not None and img.ndim == 2:
        img = window_to_uint8(img, window)
        steps.append(f"window {window.name} (W {window.width:.4g} / L {window.level:.4g}) -> 0..255")
    x, more = preprocess_image(img, inp.channels, inp.size)
    side = min(min(img.shape[:2]), DISPLAY_MAX)
    display, _ = preprocess_image(img, 3 if img.ndim == 3 else 1, side)
    display = display[0] if display.shape[0] == 1 else np.moveaxis(display, 0, -1)
    return PreparedInput(x=x, display=display, steps=steps + more, warnings=warnings)


def preprocess_image(image: np.ndarray, channels: int, size: int) -> tuple[np.ndarray, list[str]]:
    """The one classifier preprocessing (training, evaluation and the Classify page).

    Steps: 8-bit intensities (uint8, or integral values in 0..255) are divided by 255; anything
    else is min-max scaled to [0, 1] (a window should be applied first, see
    :func:`medviz.classification.preprocess.prepare_input`); colour is converted to grey (ITU-R 601 luma) or grey
    repeated to RGB to match ``channels``; a non-square image is centre-cropped to its short side;
    the square is resized to ``size`` x ``size`` (area averaging when shrinking, bilinear when
    enlarging; nothing when the size already matches). The input is never modified.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` array, any real dtype.
        channels: 1 or 3 channels for the model.
        size: output side in pixels.

    Returns:
        ``(x, steps)``: ``x`` is ``(channels, size, size)`` float32 in [0, 1]; ``steps`` lists
        what was done, in words.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise DataError(f"expected an (H, W) or (H, W, 3) image, not {img.shape}")
    steps = []
    x = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    is_8bit = img.dtype == np.uint8 or (x.size and x.min() >= 0 and x.max() <= 255 and np.all(x == np.round(x)))
    if is_8bit:
        x = x / 255.0
        steps.append("8-bit intensities / 255 -> [0, 1]")
    else:
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / max(hi - lo, 1e-6)
        steps.append(f"min-max {lo:.4g}..{hi:.4g} -> [0, 1]")
    if x.ndim == 3 and channels == 1:
        x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        steps.append("RGB -> grey (ITU-R 601 luma)")
    x = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    if x.shape[0] == 1 and channels == 3:
        x = np.repeat(x, 3, axis=0)
        steps.append("grey repeated to 3 channels")
    h, w = x.shape[1:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[:, top:top + s, left:left + s]
        steps.append(f"centre crop {h}x{w} -> {s}x{s}")
    if x.shape[1] != size:
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(x))[None]
        mode = "area" if x.shape[1] > size else "bilinear"
        t = F.interpolate(t, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        steps.append(f"resize {x.shape[1]}x{x.shape[1]} -> {size}x{size} ({mode})")
        x = t[0].numpy()
    return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False), steps


def preprocess_batch(images: np.ndarray | list, channels: int, size: int) -> np.ndarray:
    """:func:`preprocess_image` over a stack/list of images -> ``(N, channels, size, size)`` float32."""
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape[1:3] == (size, size):
        x = images.astype(np.float32) / 255.0  # fast path, identical to preprocess_image
        if x.ndim == 4 and channels == 1:
            x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        x = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)
        if x.shape[1] == 1 and channels == 3:
            x = np.repeat(x, 3, axis=1)
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.stack([preprocess_image(im, channels, size)[0] for im in images])


def window_choices(volume: Volume, image: np.ndarray) -> dict[str, WindowPreset]:
    """The windows a user may apply before the model: none for RGB or 8-bit images (the model divides
    those by 255 as in training), else the study's presets (CT in HU, automatic for MR/X-ray)."""
    return {} if volume.is_rgb or is_8bit(image) else window_presets(volume)
