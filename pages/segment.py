"""Segment page: segmentation of the current study (the LGG FLAIR-abnormality model or a promoted run), with overlay, measurements,
3D surface, uncertainty, Grad-CAM, reference-mask Dice and exports. Glue only."""

from __future__ import annotations

import streamlit as st

from medviz.segmentation.viz import CONFUSION_COLORS, fused_figure, map_figure, surface_figure
from medviz.types import MedvizError
from medviz.ui import loading, mask_review, volume_viewer, widgets
from medviz.ui import segmentation as ui
from medviz.ui import sequence as seq_ui
from medviz.ui.state import get_volume, get_volume_source, set_volume

st.header("Segment")
names = ui.model_names()
if not names:
    st.warning("No segmentation model is registered (weights/manifest.json).")
    st.stop()
volume = get_volume()
if st.button("Use an LGG test patient (shared data)", key="seg.example"):
    try:
        volume = ui.lgg_example_volume()
    except (MedvizError, FileNotFoundError) as e:
        st.error(str(e))
    else:
        set_volume(volume, "LGG example")
if volume is None:  # a new session, e.g. after a browser reload
    loading.no_study_panel("seg", "segment it")
    st.stop()

token = widgets.study_token(volume)
widgets.study_header(volume, get_volume_source())
c1, c2, c3 = st.columns([2, 2, 1])
name = c1.selectbox("Model", names, key="seg.model", format_func=ui.model_label)
store = ui.results(token, name)  # this model's results only: a model change never shows the old one
path = c2.radio("Inference", ["auto", "stack", "sliding_window"], horizontal=True, key="seg.path",
                help="auto: one image or slice-wise batches; sliding_window: MONAI sliding-window inferer")
try:
    model, entry = ui.load_seg_model(name)
    if c3.button("Segment", type="primary", key="seg.run"):
        store.clear()
        store.update(token=token, model=name, result=ui.run_segmentation(model, entry, volume, path))
except MedvizError as e:
    st.error(str(e))
    st.stop()
res = store.get("result")
if res is None:
    st.info(f"Press Segment to outline the {ui.label_name(entry).lower()} ({name}).")
    st.stop()
for note in res.notes:
    st.warning(note)
mask = mask_review.active_mask(store, res.mask)  # the hand-corrected mask once there is one

measured = ui.spacing_inputs(volume, token)
img_col, side_col = st.columns([3, 1], gap="medium")
seq_names = seq_ui.model_names() if volume.is_3d else []
if seq_names:
    seq_ui.jump_to_clicked_slice(token, widgets.slice_key(token, "axial"))
with side_col:
    plane, index = widgets.plane_and_slice(volume, token)
    window = widgets.window_picker(volume, token)
    opacity, mode, rgb = ui.overlay_controls(token)
    ref_file = st.file_uploader("Reference mask (NIfTI or DICOM SEG)", key=f"seg.{token}.ref")
labels, colors, cmp = mask, {1: rgb}, None
if ref_file is not None:
    try:
        cmp = ui.reference_comparison(store, ref_file.file_id, ref_file.name, ref_file.getvalue(), volume, mask)
        st.metric("Dice vs reference", f"{cmp.dice:.3f}")
        st.caption("green: agreement · red: false positive · blue: false negative · " + "; ".join(cmp.notes))
        labels, colors = cmp.confusion, CONFUSION_COLORS
    except MedvizError as e:
        st.error(str(e))
ps, fused = ui.fused_overlay(store, volume, labels, plane, index, window, colors, opacity, mode)
with img_col:
    if st.toggle("Review and correct the mask in the interactive viewer", key="seg.review",
                 disabled=volume_viewer.webgl_unavailable()):
        mask_review.panel(volume, store, res.mask, token, opacity=opacity, style=mode, rgb=rgb)
    else:
        st.plotly_chart(fused_figure(ps, fused, volume.spacing_known), width="stretch", theme=None, key="seg.overlay")
if seq_names:
    with img_col:
        strip_head, strip_pick, strip_run = st.columns([3, 3, 3])
        strip_head.markdown("**Tumour slices (sequence model)**")
        seq_name = strip_pick.selectbox("Sequence model", seq_names, key="seg.seq.model", label_visibility="collapsed")
        seq_key = f"sequence.{seq_name}"  # one result per sequence model, never shown under another's name
        if strip_run.button("Read all slices", key="seg.seq.run"):
            try:
                store[seq_key] = seq_ui.run(seq_name, volume)
            except MedvizError as e:
                st.error(str(e))
        if seq_key in store:
            seq_ui.strip(store[seq_key], token, ui.axial_index(plane, index),
                         cmp.reference_slices if cmp is not None else None)
rows = ui.measurement_rows(mask, measured, plane, index, entry)
st.subheader("Measurements")
st.dataframe(rows or [{"result": "no abnormality found"}], width="stretch")
tabs = st.tabs(["3D surface", "Uncertainty (TTA)", "Grad-CAM", "Export"])
with tabs[0]:
    if st.toggle("Show 3D surface", key="seg.surface") and ui.has_surface(mask, volume):
        with st.spinner("Building the 3D surface…"):
            surface = surface_figure(mask, measured.spacing, colors={1: rgb})
        st.plotly_chart(surface, width="stretch", theme=None)
with tabs[1]:
    if st.button("Compute uncertainty (4 flips)", key="seg.tta"):
        with st.spinner("Test-time augmentation…"):
            store["uncertainty"] = ui.tta_map(model, entry, volume)
    if "uncertainty" in store:
        st.plotly_chart(map_figure(volume, store["uncertainty"], plane, index, "uncertainty"), width="stretch", theme=None)
with tabs[2]:
    axial = ui.axial_index(plane, index)
    if st.button("Grad-CAM of this axial slice", key="seg.cam", disabled=axial is None,
                 help=None if axial is not None else "Grad-CAM explains one axial slice: switch to the axial plane"):
        with st.spinner("Grad-CAM…"):
            store["cam"] = ui.cam_map(model, entry, volume, res.mask, axial)
    if "cam" in store:
        st.plotly_chart(map_figure(volume, store["cam"], plane, index, "Grad-CAM"), width="stretch", theme=None)
with tabs[3]:
    ui.downloads(volume, mask, fused, rows, store, ui.label_name(entry))
