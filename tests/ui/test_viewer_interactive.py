"""AppTest of the Viewer page's interactive (WebGL) mode: the default, one component, no server-drawn figure;
measurements the viewer reports are computed from the study and listed; a browser without WebGL falls back."""

from __future__ import annotations

from apptest_helpers import TIMEOUT, VIEWER
from streamlit.testing.v1 import AppTest

from medviz.ui.volume_viewer import NO_WEBGL_KEY


def _page(**state) -> AppTest:
    at = AppTest.from_file(VIEWER, default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def _components(at) -> list:
    return [e for e in at.main if type(e).__name__ == "UnknownElement" and e.type == "component_instance"]


def test_the_interactive_viewer_is_the_default_and_draws_nothing_on_the_server():
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="viewer.interactive").value is True
    assert len(_components(at)) == 1
    assert not [e for e in at.main if type(e).__name__ == "UnknownElement" and e.type == "plotly_chart"]
    assert any("No measurements yet" in c.value for c in at.caption)


def test_a_browser_without_webgl_gets_the_static_viewer_and_a_message():
    at = _page(**{NO_WEBGL_KEY: True})
    assert not at.exception
    assert _components(at) == []
    assert any("no WebGL 2" in w.value for w in at.warning)
    assert at.slider  # the static slice slider is back


def test_a_reported_distance_and_roi_are_measured_on_the_study():
    from medviz.imaging.patient_space import distance_lps
    from medviz.io.examples import DEFAULT_EXAMPLE, load_example
    from medviz.ui import measurements

    volume = load_example(DEFAULT_EXAMPLE)
    a, b = list((volume.affine @ [2, 3, 4, 1])[:3]), list((volume.affine @ [10, 3, 4, 1])[:3])
    row = measurements.measured(volume, {"kind": "distance", "id": 1, "start_lps": a, "end_lps": b})
    assert row["result"] == f"{distance_lps(a, b):.1f} mm" and row["where"] == "slice 5"
    roi = measurements.measured(volume, {"kind": "roi", "id": 2, "start_lps": a, "end_lps":
                                         list((volume.affine @ [10, 9, 4, 1])[:3])})
    patch = volume.array[4, 3:10, 2:11]
    assert roi["result"].startswith(f"{patch.mean():.1f} ± {patch.std():.1f} {volume.units}")
    assert roi["where"] == "axial slice 5"
