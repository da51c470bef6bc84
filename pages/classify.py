"""Classify page: class probabilities, test-time-augmentation spread, Grad-CAM overlays and input guardrails
for the current study's slice or an uploaded image; the model abstains on images unlike its training images
(the prediction only behind "show anyway").

Glue only: computation in ``medviz.ui.classification.classify_panel`` (over ``medviz.classification`` and
``medviz.explain``), figures in ``medviz.classification.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.classification.preprocess import volume_slice, window_choices
from medviz.classification.routing import choose_classifier
from medviz.classification.viz import image_figure, ood_figure, probability_bars
from medviz.explain import COLORMAPS, CamMethod, describe_layers, overlay
from medviz.types import MedvizError
from medviz.ui import classification as ui
from medviz.ui import widgets

st.header("Classify")
entries = ui.classifiers_or_stop()

ctrl, view = st.columns([1, 3], gap="medium")
with ctrl:
    selected = st.selectbox("model", list(entries), key="classify.model", format_func=lambda n: entries[n].label)
    auto = st.toggle("pick the model that fits the input", value=True, key="classify.auto",
                     help="a full-size radiograph goes to a model trained on radiographs, a 28-px MedMNIST "
                          "thumbnail to a 28-px model")
    volume, _ = widgets.image_source("classify", "one image (PNG, JPEG, DICOM)", "classify one of its slices")
    if volume is None:
        st.markdown(ui.card_summary(entries[selected]))
        st.stop()
    z = volume.shape[0]
    index = widgets.slice_slider(z, f"classify.slice.{z}")  # numbered 1..z; the index is 0-based
    image = volume_slice(volume, index)
    route = choose_classifier(image, volume.modality, selected, {n: e.spec for n, e in entries.items()})
    name = route.name if auto else selected
    entry = entries[name]
    spec = entry.spec
    if auto:
        (st.info if route.switched else st.caption)(f"Model: {route.reason}")
    st.markdown(ui.card_summary(entry))
    with st.expander("model card"):
        st.markdown(ui.card_text(entry))
    presets = window_choices(volume, image)
    window_name = st.selectbox("window applied before the model", list(presets), key="classify.window") \
        if presets else None
    method = st.selectbox("explanation", [m.value for m in CamMethod], key="classify.cam")
    classes = list(spec.classes)
    target = st.selectbox("explain class", ["predicted class", *classes], key="classify.target")
    opacity = st.slider("overlay opacity", 0.0, 1.0, 0.45, 0.05, key="classify.opacity")
    cmap = st.selectbox("colour map", COLORMAPS, key="classify.cmap")

with view:
    try:
        result = ui.classify_panel(name, image, presets.get(window_name) if window_name else None, volume.modality,
                                   z, target, method, volume.meta)
    except MedvizError as e:
        st.error(str(e))
        st.stop()
    prep, pred, tta, cls, cam = result.prep, result.prediction, result.tta, result.explained_class, result.cam
    for w in prep.warnings:
        st.warning(w)
    ood, shown = result.ood, result.shown
    if result.abstain:
        st.error(f"**The model abstains: this image does not look like the model's training images** "
                 f"({spec.input.label}, {spec.dataset}): " + "; ".join(ood.reasons) + ".")
    if result.ood_stats is not None:
        if result.abstain:
            st.plotly_chart(ood_figure(result.ood_stats.val_scores, ood.threshold, ood.score, ood.score_name),
                            key="classify.ood", width="stretch")
        st.caption(result.ood_caption())
    show = not result.abstain or st.toggle("show anyway", key="classify.show_anyway",
                                           help="show the model's answer although the image is out of its domain")
    if not show:
        st.plotly_chart(image_figure(prep.model_view, "what the model sees"), key="classify.input", width="stretch")
        st.caption(" → ".join(prep.steps))
        st.stop()
    if result.abstain:
        st.warning("Shown anyway: the model was not trained on images like this one; the answer is not meaningful.")
    c1, c2 = st.columns(2)
    c1.metric("prediction (shown anyway)" if result.abstain else "prediction", classes[pred.top],
              f"{pred.probs[pred.top]:.1%} {shown.label}", delta_color="off")
    c2.metric("TTA spread (max s.d.)", f"{tta.std.max():.3f}", f"{len(tta.names)} augmentations", delta_color="off")
    st.plotly_chart(probability_bars(classes, pred.probs, tta.std, pred.probs_uncalibrated, shown.label),
                    key="classify.probs", width="stretch")
    st.caption(f"Bars: {shown.sentence()} Error bars: s.d. across test-time augmentations; black ticks: plain "
               "softmax (T = 1).")
    left, right = st.columns(2)
    with left:
        side = prep.x.shape[-1]
        st.plotly_chart(image_figure(prep.model_view, f"what the model sees ({side}×{side} px)"), key="classify.input",
                        width="stretch")
        st.caption(" → ".join(prep.steps))
    with right:
        title = f"{method}: {classes[cls]}"
        if st.toggle("Zoom, pan and probe in the interactive viewer", key="classify.cam_webgl"):
            ui.cam_viewer(prep.display, cam, cmap, opacity, key="classify.cam_viewer")
        else:
            st.plotly_chart(image_figure(overlay(prep.display, cam, opacity, cmap), title), key="classify.cam_fig",
                            width="stretch")
        h, w = prep.display.shape[:2]
        st.caption(f"{describe_layers(spec.cam_layer)}; map in [0, 1] drawn over the windowed image at {h}×{w} px."
                   + (" EigenCAM does not depend on the chosen class." if method == CamMethod.EIGENCAM else ""))
