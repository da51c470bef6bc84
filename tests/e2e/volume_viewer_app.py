"""A one-component app for the volume viewer's browser tests: ``?ex=<bundled example key>``.

The last action the viewer reported is written as JSON in a code block, for the test to read.
"""

import json

import streamlit as st

from medviz.io.examples import load_example
from medviz.ui.volume_viewer import volume_viewer

key = st.query_params.get("ex", "mr_brain_3d")
layout = st.query_params.get("layout", "multiplanar")
event = volume_viewer(load_example(key), f"test-{key}", layout=layout)
st.code(json.dumps(event), language="json")
