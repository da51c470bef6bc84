"""Real browser: on a freshly started server, a direct link to a page (``/segment``) opened *first* comes up
inside app.py's router: the menu titles, the disclaimer caption and the wide layout, not the raw file list
of ``pages/``.

Runs its own Streamlit server on 127.0.0.1 (so no other test has opened ``/`` on it before), ended by PID.
"""

from __future__ import annotations

import pytest
from streamlit_server import ROOT, run_streamlit

pytestmark = pytest.mark.browser

RAW_NAMES = ["app", "about", "classify", "evaluate", "reconstruct", "segment", "training", "viewer"]


@pytest.fixture
def fresh_server(tmp_path):
    with run_streamlit(ROOT / "app.py", tmp_path / "server.log") as url:
        yield url


def test_direct_link_first_after_a_restart_is_inside_the_router(fresh_server, page, shots):
    from playwright.sync_api import expect

    page.goto(f"{fresh_server}/segment")
    expect(page.get_by_role("heading", name="Segment")).to_be_visible(timeout=120_000)
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Not a medical device", exact=False)).to_be_visible(timeout=60_000)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in ("Viewer", "Model evaluation", "Segment", "Reconstruct", "About"):
        expect(nav.get_by_text(title, exact=True)).to_be_visible()
    for raw in RAW_NAMES:
        expect(nav.get_by_text(raw, exact=True)).to_have_count(0)
    # layout="wide": the main column uses the window's width (a centred layout stops at about 736 px).
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    assert main is not None and main["width"] > 1000, main
    shots.save(page, "segment-direct-link-after-restart")
