"""Streamlit side of the Classify and Evaluate pages: cached classifiers and their test-split runs.

Models from :func:`cached_classifier` are the *same objects* in every browser session. Nothing
here or in :mod:`medviz.classification.infer` / :mod:`medviz.explain` mutates them: inference and Grad-CAM run
inside :func:`medviz.models.runtime.using` (the per-model lock; mode, ``requires_grad`` flags and ``.grad``
restored) and hooks are removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import streamlit as st

from medviz.classification.calibration import ShownProbability, shown_probability
from medviz.classification.evaluate import run_model
from medviz.classification.infer import Prediction, TTAResult, predict, predict_tta
from medviz.classification.ood import OODResult, OODStats, assess, load_stats
from medviz.classification.preprocess import PreparedInput, prepare_input
from medviz.constants import Task, WindowPreset
from medviz.explain import classifier_target, explain
from medviz.models.registry import list_models
from medviz.models.specs import ArchSpec
from medviz.models.weights import load_model
from medviz.types import MedvizError, Volume, affine_from_spacing
from medviz.ui.volume_viewer import volume_viewer


def classifier_entries() -> list[Any]:
    """Registered classifiers (manifest entries), by name."""
    return list_models(task=Task.CLASSIFICATION)


def classifiers_or_stop() -> dict[str, Any]:
    """``{name: entry}`` of the registered classifiers; shows why and stops the page when there are none."""
    try:
        entries = {e.name: e for e in classifier_entries()}
    except MedvizError as e:  # unreadable manifest
        st.error(str(e))
        st.stop()
    if not entries:
        st.info("No classifier is registered (train one with `python -m medviz.train --task classification`).")
        st.stop()
    return entries


@st.cache_resource(max_entries=6, show_spinner="Loading model…")
def cached_classifier(name: str) -> tuple[Any, Any]:
    """``load_model(name)`` on CPU once per server process (sha256-checked, eval mode)."""
    return load_model(name, device="cpu")


@st.cache_resource(max_entries=6, show_spinner="Evaluating on the test split…")
def cached_evaluation(name: str, split: str = "test") -> Any:
    """:func:`medviz.classification.evaluate.run_model` on the public split (no user data), once
    per process; arrays are made read-only because every session shares them."""
    model, entry = cached_classifier(name)
    run = run_model(model, entry.spec, split)
    for a in (run.images, run.labels, run.logits, run.probs, run.probs_calibrated):
        a.setflags(write=False)
    return run


def _network_text(arch: ArchSpec, preset: str) -> str:
    if arch.is_ensemble:
        members = arch.members
        return f"ensemble of {len(members)} MONAI {members[0].name} ({preset})"
    return f"MONAI {arch.name} ({preset})"


def card_summary(entry: Any) -> str:
    """Short markdown summary of a classifier's model card."""
    spec = entry.spec
    inp = spec.input
    test = spec.test_metrics
    ref = next((r for r in spec.references if r["method"].startswith("ResNet-18")), None)
    lines = [f"**{spec.dataset}** · {inp.label} ({inp.modality}) · {entry.origin} model",
             f"classes: {', '.join(spec.classes)}",
             f"input: {inp.channels} ch, {inp.size}×{inp.size} px, 8-bit",
             f"network: {_network_text(spec.arch, spec.arch_preset)}, "
             f"T = {spec.temperature:.2f}"]
    if test:
        lines.append(f"test AUC {test['auc']:.3f} · ACC {test['acc']:.3f} (n = {test['n']})")
    if ref:
        lines.append(f"ResNet-18 (28): AUC {ref['auc']:.3f} · ACC {ref['acc']:.3f}")
    return "  \n".join(lines)


def card_text(entry: Any) -> str:
    """The full model card (markdown), or a note when it is missing."""
    path = entry.card_path
    return path.read_text() if path and path.exists() else f"No model card for {entry.name}."


def volume_from_image(image: np.ndarray, name: str, modality: str) -> Volume:
    """A one-slice Volume of a test image (for opening it in the Viewer)."""
    arr = np.asarray(image)
    arr = arr[None].astype(np.uint8 if arr.ndim == 3 else np.float32)
    return Volume(array=arr, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)),
                  modality=modality, units="RGB" if arr.ndim == 4 else "a.u.", spacing_known=False, name=name)


_CLASSIFY_MEMO = "medviz.classify.last"  # this session's last result, with the inputs it was computed for


@dataclass(frozen=True)
class ClassifyView:
    """Everything the Classify page shows for one image: the prepared input, the prediction, the
    test-time-augmentation spread, the class explained and its ``(S, S)`` CAM in [0, 1], whether the model
    abstains (``ood``, with the fitted detector ``ood_stats`` for the in-distribution range; None when the
    model has none) and which probability is shown (``shown``)."""

    prep: PreparedInput
    prediction: Prediction
    tta: TTAResult
    explained_class: int
    cam: np.ndarray
    ood: OODResult
    ood_stats: OODStats | None
    shown: ShownProbability

    @property
    def abstain(self) -> bool:
        return self.ood.abstain

    def ood_caption(self) -> str:
        """The image's OOD score against the validation images, in words with numbers (empty without a detector)."""
        o = self.ood
        if o.score is None or o.val_range is None:
            return ""
        lo, mid, hi = o.val_range
        side = "above" if o.above_threshold else "at or below"
        return (f"{o.score_name} score {o.score:.3g}, {side} the threshold {o.threshold:.3g}; the model's validation "
                f"images score {lo:.3g}..{hi:.3g} (median {mid:.3g}), {o.percentile:.0f} % of them lower than this image.")


def classify_panel(name: str, image: np.ndarray, window: WindowPreset | None, modality: str, n_slices: int,
                   target: str, method: str, header: Mapping[str, Any] | None = None) -> ClassifyView:
    """Classify one ``(H, W)`` / ``(H, W, 3)`` image with the cached model ``name`` and explain ``target``
    (``"predicted class"`` or a class name) with ``method``; ``header`` (the study's ``Volume.meta``) feeds the
    view and age checks. Raises MedvizError with a readable message."""
    image = np.asarray(image)
    facts = tuple((k, str((header or {}).get(k))) for k in ("ViewPosition", "PatientAgeYears"))
    key = (name, hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest(), image.shape,
           str(image.dtype), window, modality, n_slices, target, method, facts)
    last = st.session_state.get(_CLASSIFY_MEMO)
    if last is not None and last[0] == key:  # overlay and colour-map changes do not rerun the model
        return last[1]
    view = _classify(name, image, window, modality, n_slices, target, method, header)
    st.session_state[_CLASSIFY_MEMO] = (key, view)
    return view


def _classify(name: str, image: np.ndarray, window: WindowPreset | None, modality: str, n_slices: int,
              target: str, method: str, header: Mapping[str, Any] | None) -> ClassifyView:
    model, entry = cached_classifier(name)
    spec = entry.spec
    prep = prepare_input(image, spec, window, modality, n_slices, header)
    stats = load_stats(entry)
    ood = assess(model, spec, stats, prep, image, modality)
    pred = predict(model, spec, prep.x)
    tta = predict_tta(model, spec, prep.x)
    classes = list(spec.classes)
    cls = pred.top if target == "predicted class" else classes.index(target)
    cam = explain(model, prep.x, spec.cam_layer, classifier_target(cls), method)
    return ClassifyView(prep, pred, tta, cls, cam, ood, stats, shown_probability(spec.temperature, spec.test_metrics))


def cam_viewer(display: np.ndarray, cam: np.ndarray, colormap: str, opacity: float, key: str) -> None:
    """The Grad-CAM drawn over the windowed radiograph in the WebGL viewer (zoom, pan, probe, opacity in the
    browser). The image travels as it is shown (RGB, no second windowing); the map is resized to it and starts
    transparent at zero, so the image shows through where the model did not look."""
    img = np.clip(np.asarray(display, dtype=np.float32), 0.0, 1.0)
    rgb = np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img
    h, w = rgb.shape[:2]
    heat = cv2.resize(np.asarray(cam, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    image = Volume(array=np.rint(rgb * 255).astype(np.uint8)[None], spacing=(1.0, 1.0, 1.0), affine=np.eye(4),
                   units="RGB", orientation="unknown", name="classified image")
    token = hashlib.sha256(image.array.tobytes()).hexdigest()[:16]
    volume_viewer(image, token, layout="axial", height=420, overlay=np.clip(heat, 0, 1)[None],
                  overlay_colormap=colormap, overlay_range=(0.05, 1.0), overlay_opacity=opacity, key=key)
