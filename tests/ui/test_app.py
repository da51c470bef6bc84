"""AppTest tests of the whole app (router + default page) and of pages/about.py."""

from __future__ import annotations

from apptest_helpers import ABOUT, APP, TIMEOUT, chart_spec
from streamlit.testing.v1 import AppTest


def _static_app() -> AppTest:
    """The app with the Viewer's static rendering (the WebGL viewer draws no plotly chart)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["viewer.interactive"] = False
    return at


def test_app_starts_on_the_viewer_without_exception():
    at = _static_app().run()
    assert not at.exception
    assert at.header[0].value == "Viewer"
    assert chart_spec(at)["data"][0]["type"] in ("heatmap", "image")
    assert any("Not a medical device" in c.value for c in at.sidebar.caption)


def test_app_switches_to_about_and_back():
    at = _static_app().run()
    at.switch_page("pages/about.py").run()
    assert not at.exception
    assert at.header[0].value == "About MedViz"
    at.switch_page("pages/viewer.py").run()
    assert not at.exception and at.get("plotly_chart")


def test_about_page_lists_example_sources_and_disclaimer():
    from medviz.io import list_examples

    at = AppTest.from_file(ABOUT, default_timeout=TIMEOUT).run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert all(e.title in text and e.source in text for e in list_examples())
    assert "not a medical device" in at.warning[0].value
