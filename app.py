"""MedViz entry point: ``streamlit run app.py``.

Builds the page router with ``st.navigation`` inside :func:`run` so tests can drive it. Pages are
listed explicitly; the ``pages/`` folder is not auto-discovered. ``streamlit run app.py`` serves the
``st.App`` below, whose start-up (:func:`medviz.ui.startup.lifespan`) runs once before any session.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from medviz.train.uploads import sweep_stale_uploads
from medviz.ui.startup import lifespan

ROOT = Path(__file__).resolve().parent

# (file under pages/, title, icon) in menu order. The first one is the start page.
PAGES = [
    ("viewer.py", "Viewer", ":material/radiology:"),
    ("classify.py", "Classify", ":material/category:"),
    ("evaluate.py", "Model evaluation", ":material/analytics:"),
    ("segment.py", "Segment", ":material/draw:"),
    ("reconstruct.py", "Reconstruct", ":material/blur_on:"),
    ("superres.py", "Super-resolution", ":material/zoom_in:"),
    ("training.py", "Training", ":material/model_training:"),
    ("about.py", "About", ":material/info:"),
]


@st.cache_resource(show_spinner=False)
def _sweep_training_uploads_once() -> int:
    """Once per server: remove Training-page upload folders that no live session owns (older than a day)."""
    return len(sweep_stale_uploads())


def run() -> None:
    # An emoji favicon: a Material icon here would make every page load fetch it from the internet.
    st.set_page_config(page_title="MedViz", page_icon="\U0001fa7b", layout="wide")
    _sweep_training_uploads_once()
    pages = [
        st.Page(str(ROOT / "pages" / file), title=title, icon=icon, default=(i == 0))
        for i, (file, title, icon) in enumerate(PAGES)
    ]
    nav = st.navigation(pages)
    with st.sidebar:
        st.caption("MedViz — research and teaching use only. Not a medical device; not for diagnosis.")
    nav.run()


if __name__ == "__main__":  # a script run of one browser session
    run()
else:  # imported by the server to serve the app: routing, thread count and model warm-up set up at start
    app = st.App(__file__, lifespan=lifespan)
