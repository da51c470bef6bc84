"""About page: what MedViz is, where the bundled examples come from, and the disclaimer."""

from __future__ import annotations

import streamlit as st

from medviz import __version__
from medviz.types import MedvizError
from medviz.ui import cache
from medviz.ui.widgets import escape_md

st.header("About MedViz")
st.markdown(
    f"""
MedViz (version {__version__}) is a dashboard for looking at medical images with deep-learning
models beside them. The **Viewer** opens DICOM series and single files (also compressed, or
without a `.dcm` extension), NIfTI volumes, PNG/JPEG images and zip archives of them.
It shows axial, coronal and sagittal planes in radiological orientation (patient's right on the
image left, anterior or superior at the top) with CT window presets, a probe for the raw
value (HU for CT) and its patient position (LPS, mm), distance and ROI measurements in mm,
and an intensity histogram.

Uploaded studies stay in your browser session's memory only. They are not written to disk,
shared with other sessions or sent anywhere. The metadata panel lists technical facts only
(modality, spacing, scanner type...), never names, IDs, dates or UIDs.
"""
)

st.subheader("Bundled examples and their sources")
try:
    examples = cache.examples()
except (MedvizError, OSError, ImportError) as exc:
    st.error(f"The example list is unavailable: {escape_md(exc)}")
    examples = []
for e in examples:  # our own bundled text (markdown intended), not user input
    st.markdown(f"- **{e.title}**: {e.description}  \n  Source: {e.source}")
st.caption(
    "All examples are public research or test data, de-identified by their publishers, "
    "redistributed under their licences (Apache-2.0, BSD-3-Clause, MIT, CC BY). "
    "Please cite the original data sets when you use them."
)

st.subheader("Disclaimer")
st.warning(
    "MedViz is for research and teaching only. It is **not a medical device**, has not been "
    "cleared or approved by any regulator, and must not be used for diagnosis, treatment or any "
    "other clinical decision. Model outputs can be wrong. Measurements depend on the pixel "
    "spacing stored in the files; images without spacing (PNG/JPEG) are measured in pixels.",
    icon=":material/gpp_maybe:",
)
