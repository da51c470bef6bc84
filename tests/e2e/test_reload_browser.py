"""Real browser: a page reload starts a new Streamlit session, and every study page keeps working: the Viewer
reopens the bundled example on its first screen, Segment and Reconstruct explain that the study must be reopened
and open the bundled example on request. No exception is shown anywhere."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

EXPLANATION = re.compile("No study is open in this browser session: a page reload")


def _no_exception(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_reload_keeps_every_study_page_working(app_page, streamlit_idle, shots):
    from playwright.sync_api import expect

    page = app_page
    expect(page.get_by_text(re.compile("^Start here"))).to_be_visible()
    page.get_by_role("combobox", name="Example studies").click()
    page.get_by_role("option", name="CT slice (spine, HU)").click()
    streamlit_idle(page)
    expect(page.get_by_text(re.compile("^Start here"))).to_have_count(0)

    page.reload()  # a new session: the Viewer opens on the bundled 3D example again
    streamlit_idle(page)
    expect(page.get_by_role("heading", name="Viewer")).to_be_visible()
    expect(page.get_by_text(re.compile("^Start here"))).to_be_visible()
    expect(page.get_by_text("anatomical.nii", exact=False).first).to_be_visible()  # the study line
    _no_exception(page)

    page.get_by_role("link", name=re.compile("Segment")).click()
    streamlit_idle(page)
    expect(page.get_by_role("button", name="Segment", exact=True)).to_be_visible()  # the study is open
    page.reload()
    streamlit_idle(page)
    expect(page.get_by_role("heading", name="Segment")).to_be_visible()
    expect(page.get_by_text(EXPLANATION)).to_be_visible()
    _no_exception(page)
    shots.save(page, "segment-after-reload")
    page.get_by_role("button", name=re.compile("Open the bundled example")).click()
    streamlit_idle(page)
    expect(page.get_by_role("button", name="Segment", exact=True)).to_be_visible()
    _no_exception(page)

    page.get_by_role("link", name=re.compile("Reconstruct")).click()
    streamlit_idle(page)
    expect(page.get_by_role("heading", name="Reconstruct")).to_be_visible()
    page.reload()
    streamlit_idle(page)
    expect(page.get_by_role("heading", name="Reconstruct")).to_be_visible()
    expect(page.get_by_text(EXPLANATION)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Open the bundled example"))).to_be_visible()
    _no_exception(page)
    shots.save(page, "reconstruct-after-reload")
