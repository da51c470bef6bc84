"""Viewer page: open a study, browse it slice by slice, window it, measure distances and ROIs.

Glue only: the interactive (WebGL) panel is ``medviz.ui.volume_viewer.viewer_panel``; the static rendering (for
browsers without WebGL, or when switched off) takes its widgets from ``medviz.ui`` and the plane and its figure
from ``medviz.ui.viewer``.
"""

from __future__ import annotations

import streamlit as st

from medviz.ui import loading, viewer, volume_viewer, widgets
from medviz.ui.state import get_volume, get_volume_source

st.header("Viewer")

with st.sidebar:
    st.subheader("Study")
    loading.example_picker()
    loading.upload_panel()
    loading.labels_panel()

volume = get_volume()
if volume is None:
    st.info("No study is open. Choose an example or upload files in the sidebar.")
    st.stop()

if line := loading.start_here():
    st.info(line, icon=":material/play_circle:")
token = widgets.study_token(volume)
widgets.study_header(volume, get_volume_source())
if volume_viewer.webgl_unavailable():
    st.warning("This browser has no WebGL 2, so the interactive viewer cannot run: slices are drawn on the server.")
elif st.toggle("Interactive viewer (slices, window/level, cine and measurements in the browser)", value=True,
               key="viewer.interactive"):
    volume_viewer.viewer_panel(volume, token)
    with st.expander("Metadata"):
        st.dataframe(widgets.metadata_table(volume, token), hide_index=True, width="stretch")
    st.stop()

image_col, side_col = st.columns([3, 1], gap="medium")

with side_col:
    plane, index = widgets.plane_and_slice(volume, token)
    window = widgets.window_picker(volume, token)
    ps = viewer.plane_slice(volume, plane, index)
    measure_key = f"viewer.{token}.{plane.value}.measure"
    chart_key = f"viewer.{token}.{plane.value}.chart"
    widgets.apply_box_selection(st.session_state.get(chart_key), ps, measure_key)
    st.markdown("**Measure** (pixel row/column; row 0 at the top)")
    distance, roi = widgets.measurement_inputs(ps, measure_key)

figure, stats = viewer.figure_panel(volume, ps, window, distance, roi, token)

with image_col:
    st.plotly_chart(
        figure,
        width="stretch",
        key=chart_key,
        on_select="rerun",
        selection_mode="box",
        theme=None,
        config={"scrollZoom": True, "displaylogo": False},
    )
with side_col:
    widgets.measurement_readout(ps, distance, stats, volume)

hist_tab, meta_tab = st.tabs(["Histogram", "Metadata"])
with hist_tab:
    widgets.histogram_panel(volume, ps, window, token)
with meta_tab:
    st.dataframe(widgets.metadata_table(volume, token), hide_index=True, width="stretch")
