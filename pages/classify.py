"""Classify page: calibrated class probabilities, test-time-augmentation spread, Grad-CAM overlays and
input guardrails for the current study's slice or an uploaded image.

Glue only: computation in ``medviz.classification.infer`` / ``medviz.explain``, figures in ``medviz.classification.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.classification.infer import predict, predict_tta
from medviz.classification.preprocess import is_8bit, prepare_input, volume_slice
from medviz.classification.viz import image_figure, probability_bars
from medviz.explain import COLORMAPS, CamMethod, describe_layers, explain, overlay
from medviz.imaging.windowing import window_presets
from medviz.types import MedvizError
from medviz.ui import classification as ui
from medviz.ui import widgets

st.header("Classify")
entries = ui.classifiers_or_stop()

ctrl, view = st.columns([1, 3], gap="medium")
with ctrl:
    name = st.selectbox("model", list(entries), key="classify.model")
    entry = entries[name]
    st.markdown(ui.card_summary(entry))
    with st.expander("model card"):
        st.markdown(ui.card_text(entry))
    volume, _ = widgets.image_source("classify", "one image (PNG, JPEG, DICOM)", "classify one of its slices")
    if volume is None:
        st.stop()
    z = volume.shape[0]
    index = st.slider("slice", 0, z - 1, z // 2, key=f"classify.slice.{z}") if z > 1 else 0
    image = volume_slice(volume, index)
    presets = {} if volume.is_rgb or is_8bit(image) else window_presets(volume)
    window_name = st.selectbox("window applied before the model", list(presets), key="classify.window") \
        if presets else None
    method = st.selectbox("explanation", [m.value for m in CamMethod], key="classify.cam")
    classes = list(entry.raw["classes"])
    target = st.selectbox("explain class", ["predicted class", *classes], key="classify.target")
    opacity = st.slider("overlay opacity", 0.0, 1.0, 0.45, 0.05, key="classify.opacity")
    cmap = st.selectbox("colour map", COLORMAPS, key="classify.cmap")

with view:
    try:
        model, entry = ui.cached_classifier(name)
        prep = prepare_input(image, entry.raw, presets.get(window_name) if window_name else None,
                             volume.modality, z)
        pred = predict(model, entry.raw, prep.x)
        tta = predict_tta(model, entry.raw, prep.x)
        cls = pred.top if target == "predicted class" else classes.index(target)
        cam = explain(model, prep.x, entry.raw["cam_layer"], cls, method)
    except MedvizError as e:
        st.error(str(e))
        st.stop()
    for w in prep.warnings:
        st.warning(w)
    c1, c2 = st.columns(2)
    c1.metric("prediction", classes[pred.top], f"{pred.probs[pred.top]:.1%} calibrated", delta_color="off")
    c2.metric("TTA spread (max s.d.)", f"{tta.std.max():.3f}", f"{len(tta.names)} augmentations", delta_color="off")
    st.plotly_chart(probability_bars(classes, pred.probs, tta.std, pred.probs_uncalibrated),
                    key="classify.probs", width="stretch")
    st.caption(f"Bars: probabilities after temperature scaling (T = {pred.temperature:.2f}, fitted on val); "
               "error bars: s.d. across test-time augmentations; black ticks: uncalibrated softmax.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(image_figure(prep.model_view, "what the model sees"), key="classify.input", width="stretch")
        st.caption(" → ".join(prep.steps))
    with right:
        title = f"{method}: {classes[cls]}"
        st.plotly_chart(image_figure(overlay(prep.display, cam, opacity, cmap), title), key="classify.cam_fig",
                        width="stretch")
        st.caption(f"{describe_layers(entry.raw['cam_layer'])}; map in [0, 1] drawn over the windowed image."
                   + (" EigenCAM does not depend on the chosen class." if method == CamMethod.EIGENCAM else ""))
