"""A one-component app for the volume viewer's browser tests and ``bench/viewer_browser.py``:
``?ex=<bundled example key>`` or ``?path=<file or folder>`` (its first series), ``&layout=<layout>``.

The last action the viewer reported is written as JSON in a code block, for the test to read.
"""

import json

import streamlit as st

from medviz.io import load_path
from medviz.io.examples import load_example
from medviz.ui.volume_viewer import volume_viewer

path = st.query_params.get("path")
key = st.query_params.get("ex", "mr_brain_3d")
volume = load_path(path).series[0].volume if path else load_example(key)
drawing = None
if st.query_params.get("drawing"):  # a block mask to correct by hand: voxels x 10..19, y 10..19 of every slice
    import numpy as np

    drawing = np.zeros(volume.shape, np.uint8)
    drawing[:, 10:20, 10:20] = 1
    st.session_state["drawn"] = drawing
event = volume_viewer(volume, f"test-{path or key}", layout=st.query_params.get("layout", "multiplanar"),
                      drawing=drawing)
if isinstance(event, bytes):
    from medviz.io.nifti_write import array_on_grid

    back = array_on_grid(volume, event)
    original = st.session_state["drawn"]
    event = {"kind": "mask", "voxels": int(back.sum()), "original": int(original.sum()),
             "changed": int((back != original).sum())}
st.code(json.dumps(event), language="json")
