"""Streamlit side of the Super-resolution page: cached generators, the slice to super-resolve, the comparison of
every arm for one slice (memoised per session), the blend of two arms and the labelled exports.

Generators come from ``st.cache_resource`` and are shared by every session: they are loaded in eval mode and
:func:`medviz.superres.infer.run_arms` runs every forward pass inside :func:`medviz.models.runtime.using` (the
model's lock, eval mode, inference mode), so nothing here locks or changes a model.

Two ways to get the low-resolution input (``already_low_res``):

* a slice of the study is taken as the **real** image and reduced ``SCALE``x by area averaging
  (:func:`medviz.superres.degrade.degrade`, the degradation the models were trained on); the real image is then
  known, shown, and every arm is measured against it;
* the slice is taken as it is, as the low-resolution input: there is no real image, so no metric and no
  difference map.

Images are ``(H, W)`` float32 in ``[0, 1]``: the slice divided by its maximum (:func:`scale_to_max`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from medviz.config import select_device
from medviz.constants import Task
from medviz.models.registry import ModelEntry, list_models
from medviz.models.weights import load_model
from medviz.segmentation.data import lgg_test_patient
from medviz.superres.data import FLAIR_CHANNEL, scale_to_max
from medviz.superres.degrade import SCALE, SuperResError, degrade
from medviz.superres.export import (
    SYNTHETIC_ASCII,
    SYNTHETIC_LABEL,
    dicom_bytes,
    export_file_name,
    nifti_bytes,
    nifti_file_name,
    png_bytes,
)
from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS, run_arms
from medviz.superres.viz import arm_title, metrics_rows
from medviz.types import Volume
from medviz.ui.cache import session_memo
from medviz.ui.reconstruction import volume_slice

#: The registered names of the shipped models of each arm (preferred when several are registered).
SHIPPED = {"pixel": "lgg_flair_sr4_pixel", "gan": "lgg_flair_sr4_gan"}
#: The arm each generator mode fills.
ARM_OF_MODE = {"pixel": PIXEL_LOSS, "gan": GAN}
#: The largest output (pixels on a side) computed on the page: a generator on a bigger grid takes too long on CPU.
MAX_OUTPUT_SIDE = 1024
#: The smallest low-resolution input (pixels on a side).
MIN_LOW_RES_SIDE = 4
#: Height (px) of the blend figure with a real image: two columns at the default height would be twice as large.
BLEND_HEIGHT = 560
#: How to make the models when none is registered.
TRAIN_HELP = ("No super-resolution model is registered. Train the pixel-loss generator (arm B) with "
              "`python -m medviz.train --task superres --register --name lgg_flair_sr4_pixel`, then fine-tune the "
              "GAN (arm C) from it with `python -m medviz.train --task superres --mode gan --init RUN/best.safetensors "
              "--twin lgg_flair_sr4_pixel --register --name lgg_flair_sr4_gan`.")


def sr_models() -> dict[str, list[str]]:
    """Names of the registered super-resolution generators by mode (``"pixel"``, ``"gan"``), the shipped model of
    each mode (:data:`SHIPPED`) first; a mode without a model has an empty list."""
    by_mode: dict[str, list[str]] = {mode: [] for mode in ARM_OF_MODE}
    for e in list_models(task=Task.SUPERRES):
        by_mode.setdefault(e.spec.mode, []).append(e.name)
    return {mode: sorted(names, key=lambda n: n != SHIPPED.get(mode)) for mode, names in by_mode.items()}


@st.cache_resource(max_entries=4, show_spinner="Loading the super-resolution model…")
def cached_model(name: str) -> tuple[Any, ModelEntry]:
    """``medviz.models.weights.load_model(name)`` (sha256-checked, eval mode), once per process, shared by every
    session."""
    return load_model(name, device=select_device())


def model_cards(names: list[str]) -> list[tuple[str, str, str]]:
    """``[(model name, its card's file name in the weights folder, the card in Markdown)]`` for the registered
    models in ``names`` that have a card file."""
    entries = {e.name: e for e in list_models(task=Task.SUPERRES)}
    out = []
    for name in names:
        path = entries[name].card_path if name in entries else None
        if path is not None and path.is_file():
            out.append((name, path.name, path.read_text(encoding="utf-8")))
    return out


def lgg_example_volume(case_index: int = 0) -> Volume:
    """A test-split patient of the shared LGG folder (see :func:`medviz.segmentation.data.lgg_test_patient`).

    Raises:
        FileNotFoundError: the shared data folder is not there (its message names the setting).
    """
    return lgg_test_patient(case_index)


@dataclass(frozen=True)
class SrComparison:
    """Every arm on one slice.

    Attributes:
        low_res: ``(h, w)`` float32 in ``[0, 1]``, the input of every arm.
        outputs: arm (:data:`BICUBIC`, :data:`PIXEL_LOSS`, :data:`GAN`) -> ``(h * SCALE, w * SCALE)`` float32 in
            ``[0, 1]``; all synthetic.
        models: arm -> what made it (``"bicubic"`` or the registered model's name).
        real: the real ``(H, W)`` slice the input was made from, or None (the slice was taken as low resolution).
        metrics: :func:`medviz.superres.viz.metrics_rows` against ``real``, or None without a real image.
        peak: the slice maximum in the study's units (``1.0`` in the images is this value).
        spacing_mm: ``(row, column)`` pixel spacing of the outputs in mm, or None when the study has none.
        notes: what was done to the slice that a reader should know (cropping), in words.
    """

    low_res: np.ndarray
    outputs: dict[str, np.ndarray]
    models: dict[str, str]
    real: np.ndarray | None
    metrics: list[dict[str, Any]] | None
    peak: float
    spacing_mm: tuple[float, float] | None
    notes: list[str] = field(default_factory=list)

    def differences(self) -> dict[str, np.ndarray]:
        """arm -> ``(H, W)`` |output - real| (empty without a real image)."""
        if self.real is None:
            return {}
        return {arm: np.abs(out - self.real) for arm, out in self.outputs.items()}


def prepare_input(image: np.ndarray, already_low_res: bool) -> tuple[np.ndarray | None, np.ndarray, float, list[str]]:
    """``(real or None, low-resolution input, peak, notes)`` of one ``(H, W)`` slice in the study's units.

    The slice is divided by its maximum (``peak``). Unless ``already_low_res``, it is the real image: cropped at
    the bottom and right to a multiple of :data:`SCALE` when needed (said in ``notes``) and reduced by
    :func:`medviz.superres.degrade.degrade`.

    Raises:
        SuperResError: a slice too small, or one whose output would be larger than :data:`MAX_OUTPUT_SIDE`.
    """
    x, peak = scale_to_max(image)
    h, w = x.shape
    out_side = max(h, w) * (SCALE if already_low_res else 1)
    if out_side > MAX_OUTPUT_SIDE:
        raise SuperResError(f"this slice is {h}x{w} pixels: its {SCALE}x output would be {out_side} pixels on a side, "
                            f"more than the {MAX_OUTPUT_SIDE} this page computes. Pick a smaller image or crop it.")
    low_side = min(h, w) // (1 if already_low_res else SCALE)
    if low_side < MIN_LOW_RES_SIDE:
        raise SuperResError(f"this slice is {h}x{w} pixels: too small to super-resolve (the low-resolution input "
                            f"needs at least {MIN_LOW_RES_SIDE} pixels on a side)")
    if already_low_res:
        return None, x, peak, []
    notes = []
    hh, ww = h - h % SCALE, w - w % SCALE
    if (hh, ww) != (h, w):
        notes.append(f"The slice was cropped from {h}x{w} to {hh}x{ww} pixels (bottom and right edges) so that it "
                     f"divides into {SCALE}x{SCALE} blocks.")
        x = np.ascontiguousarray(x[:hh, :ww])
    return x, degrade(x), peak, notes


def _spacing(volume: Volume, already_low_res: bool) -> tuple[float, float] | None:
    if not volume.spacing_known:
        return None
    _, sy, sx = volume.spacing
    f = SCALE if already_low_res else 1
    return float(sy) / f, float(sx) / f


def compare_panel(pixel_model: str | None, gan_model: str | None, volume: Volume, index: int, channel: int | None,
                  already_low_res: bool, token: str) -> SrComparison:
    """Bicubic and the chosen generators on slice ``index`` (RGB: ``channel``), memoised in this session for the
    study ``token`` and these settings (:class:`SrComparison`).

    Results are keyed by both model names, the slice, the channel and the input mode, so a change never shows
    another setting's result; while one is computed a spinner says so (call this where the result goes).

    Raises:
        MedvizError: a slice that cannot be used (:func:`prepare_input`), a model that does not load or fit.
    """
    memo_name = f"superres|{pixel_model}|{gan_model}|{index}|{channel}|{already_low_res}"

    def compute() -> SrComparison:
        image = volume_slice(volume, index, channel)
        real, low, peak, notes = prepare_input(image, already_low_res)
        chosen = {PIXEL_LOSS: pixel_model, GAN: gan_model}
        with st.spinner(f"Super-resolving slice {index + 1} ({', '.join(n for n in chosen.values() if n) or 'bicubic'})…"):
            generators = {}
            for arm, name in chosen.items():
                if name:
                    model, entry = cached_model(name)
                    generators[arm] = (model, entry.spec)
            arms = run_arms(generators, low, real, SCALE)
            rows = metrics_rows(arms.outputs, real) if real is not None else None
        models = {BICUBIC: "bicubic", **{arm: name for arm, name in chosen.items() if name}}
        return SrComparison(low_res=arms.low_res, outputs=arms.outputs, models=models, real=real, metrics=rows,
                            peak=peak, spacing_mm=_spacing(volume, already_low_res), notes=notes)

    return session_memo(memo_name, token, compute)


def figure_inputs(res: SrComparison) -> dict[str, Any]:
    """Keyword arguments of :func:`medviz.superres.viz.comparison_figure` for one comparison: the real image (when
    known) and every arm (titled with its model) side by side, the |difference| maps under the arms and the
    low-res input under the real image; without a real image the low-res input comes first."""
    h, w = res.low_res.shape
    low = f"low-res input ({h}×{w})"
    titles = {arm: arm_title(arm) + ("" if arm == BICUBIC else f" · {res.models[arm]}") for arm in res.outputs}
    arms = {titles[arm]: out for arm, out in res.outputs.items()}
    if res.real is None:
        return {"panels": {low: res.low_res, **arms}, "synthetic": set(arms)}
    real = f"real ({res.real.shape[0]}×{res.real.shape[1]})"
    return {"panels": {real: res.real, **arms, low: res.low_res}, "synthetic": set(arms), "under": {low: real},
            "differences": {titles[arm]: d for arm, d in res.differences().items()}}


def blend_figure_inputs(res: SrComparison, blended: np.ndarray, name: str) -> dict[str, Any]:
    """Keyword arguments of :func:`medviz.superres.viz.comparison_figure` for a blend (:func:`blend`, titled
    ``name``): the blend beside the real image, with its |difference| under it, when the real image is known."""
    if res.real is None:
        return {"panels": {name: blended}, "synthetic": {name}}
    return {"panels": {name: blended, "real": res.real}, "synthetic": {name},
            "differences": {name: np.abs(blended - res.real)}, "height": BLEND_HEIGHT}


def blend(first: np.ndarray, second: np.ndarray, t: float) -> np.ndarray:
    """``(1 - t) * first + t * second`` of two ``(H, W)`` outputs; ``t`` in ``[0, 1]`` (0: ``first``, 1: ``second``).

    Raises:
        SuperResError: ``t`` outside ``[0, 1]`` or images of different shapes.
    """
    if not 0.0 <= float(t) <= 1.0:
        raise SuperResError(f"the blend weight must be between 0 and 1, not {t}")
    a, b = np.asarray(first, np.float32), np.asarray(second, np.float32)
    if a.shape != b.shape:
        raise SuperResError(f"cannot blend a {a.shape} image with a {b.shape} image")
    return ((1.0 - np.float32(t)) * a + np.float32(t) * b).astype(np.float32)


def blend_name(res: SrComparison, first: str, second: str, t: float) -> str:
    """What made a blend, in words: ``"blend 0.70 pixel-loss (B) tiny_pixel + 0.30 GAN (C) tiny_gan"``."""
    def part(w: float, arm: str) -> str:
        return f"{w:.2f} {arm_title(arm)}" + ("" if arm == BICUBIC else f" {res.models[arm]}")
    return f"blend {part(1 - t, first)} + {part(t, second)}"


def _derivation(res: SrComparison, made_by: str, index: int) -> str:
    how = ("taken as a low-resolution image as it is" if res.real is None else
           f"reduced {SCALE}x by {SCALE}x{SCALE} area averaging")
    return (f"{SYNTHETIC_ASCII}. {SCALE}x super-resolution by MedViz ({made_by}) of slice {index + 1} of the source "
            f"study, {how}. Computed, not acquired: it may show structure that is not in the patient.")


@dataclass(frozen=True)
class Download:
    """One export: the button's label, the file's bytes, its name and MIME type."""

    label: str
    data: bytes
    file_name: str
    mime: str


def downloads(image: np.ndarray, made_by: str, res: SrComparison, volume: Volume, index: int,
              window: tuple[float, float]) -> list[Download]:
    """PNG, NIfTI and DICOM exports of one output (an arm or a blend), each labelled synthetic
    (:mod:`medviz.superres.export`).

    Args:
        image: ``(H, W)`` output in ``[0, 1]``.
        made_by: the arm's model name or :func:`blend_name` (in the file names and headers).
        window: the page's display window (PNG pixels, DICOM WindowCenter / WindowWidth).
    """
    source = volume.dicom_headers[0] if volume.dicom_headers else None  # patient and study identity only
    number = index + 1
    return [
        Download("PNG (label burned in)", png_bytes(image, SYNTHETIC_LABEL, window, description=_derivation(res, made_by, index)),
                 export_file_name(made_by, "png", number), "image/png"),
        Download("NIfTI", nifti_bytes(image, made_by, res.spacing_mm, peak=res.peak if res.peak > 0 else 1.0),
                 nifti_file_name(made_by, number), "application/gzip"),
        Download("DICOM (Secondary Capture)", dicom_bytes(image, source, made_by, derivation=_derivation(res, made_by, index),
                                                          window=window, pixel_spacing_mm=res.spacing_mm),
                 export_file_name(made_by, "dcm", number), "application/dicom"),
    ]


def default_channel(volume: Volume) -> int:
    """The colour channel offered first for an RGB study: the LGG PNGs' FLAIR (channel 1)."""
    return FLAIR_CHANNEL if volume.is_rgb else 0
