"""Reconstruct page: degrade a slice (undersampled k-space or Rician noise), restore it with a trained
model and classical baselines, and compare them side by side with one window and linked zoom.

Glue only: computation in ``medviz.reconstruction.kspace`` (through ``medviz.ui.reconstruction``), figures in ``medviz.reconstruction.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.reconstruction.kspace import default_center_fraction
from medviz.reconstruction.viz import comparison_figure, mask_figure, metrics_bar, metrics_rows
from medviz.types import MedvizError
from medviz.ui import loading, widgets
from medviz.ui import reconstruction as ui
from medviz.ui.state import get_volume

st.header("Reconstruct")
try:
    models = {e.name: e for e in ui.recon_models()}
except MedvizError as e:
    st.error(str(e))
    st.stop()
if not models:
    st.info("No reconstruction or denoising model is registered (train one with `python -m medviz.train "
            "--task reconstruction`).")
    st.stop()

ctrl, view = st.columns([1, 3], gap="medium")
with ctrl:
    name = st.selectbox("model", list(models), key="recon.model",
                        format_func=lambda n: f"{models[n].label}, {models[n].spec.mode}")
    mode = models[name].spec.mode
    volume, token = widgets.image_source("recon", "one image (DICOM, NIfTI, PNG/JPEG)", "reconstruct one of its slices")
    if volume is None:
        if get_volume() is None:  # a new session, e.g. after a browser reload
            loading.open_example_button("recon")
        st.stop()
    z = volume.shape[0]
    index = widgets.slice_slider(z, ui.slider_key(volume))
    channel = st.selectbox("colour channel (LGG PNG: 1 = FLAIR)", [0, 1, 2], index=1, key="recon.channel") \
        if volume.is_rgb else None
    if mode == "recon":
        kind = st.selectbox("mask", ["random", "equispaced"], key="recon.mask")
        acc = st.select_slider("acceleration", [2, 4, 6, 8, 10, 12], value=4, key="recon.acc")
        top = round(1 / acc, 2)
        cf = st.slider("centre fraction", 0.02, top, min(round(default_center_fraction(acc), 2), top), 0.01,
                       key=f"recon.cf.{acc}")
        params = {"kind": kind, "acceleration": acc, "center_fraction": cf}
    else:
        params = {"sigma": st.select_slider("Rician noise σ (fraction of max)", [0.02, 0.05, 0.08, 0.1, 0.15],
                                            value=0.05, key="recon.sigma")}
    slow = st.button(f"Add the slow baseline ({ui.SLOW_BASELINE[mode]}, 1-3 s) for this slice", key="recon.slow",
                     disabled=ui.has_slow_baseline(name, index, channel, params, token))
    window = st.slider("window (shared by all images)", 0.0, 1.0, (0.0, 1.0), 0.01, key="recon.window")

with view:
    try:  # in the result area: its spinner replaces the old result's first element while the new one is computed
        image, res = ui.compare_panel(name, volume, index, channel, params, slow, token)
    except MedvizError as e:
        st.error(str(e))
        st.stop()
    if note := ui.distribution_note(volume, image, name):
        st.warning(note)
    st.caption(widgets.slice_caption(index, z) + (f" · colour channel {channel}" if channel is not None else ""))
    st.warning("The reference is the displayed magnitude image: k-space and noise are **simulated** from it "
               "(no raw k-space, phase or coil data). Real acquisitions will differ. Not for diagnosis.")
    degraded = "zero-filled" if mode == "recon" else "noisy input"
    st.plotly_chart(comparison_figure({"reference": res["reference"], degraded: res["degraded"],
                                       f"model ({name})": res["output"]}, window, res["difference"]),
                    width="stretch", theme=None, key="recon.figure")
    others = {k: v for k, v in res["baselines"].items() if k not in ("zero_filled", "noisy")}
    if others:
        with st.expander("classical baselines (same window and zoom)"):
            st.plotly_chart(comparison_figure({"reference": res["reference"], **others}, window),
                            width="stretch", theme=None, key="recon.baselines")
    left, right = st.columns([2, 1])
    left.dataframe(metrics_rows(res["metrics"], res["seconds"]), hide_index=True, key="recon.table")
    left.plotly_chart(metrics_bar(res["metrics"]), width="stretch", theme=None, key="recon.bars")
    if res["mask"] is not None:
        right.plotly_chart(mask_figure(res["mask"], res["reference"].shape[0]), width="stretch", theme=None,
                           key="recon.mask_fig")
