"""Real browser: the sequence model reads a shared LGG test patient on the Segment page; clicking its
probability strip shows that slice."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.data]


def test_sequence_strip_click_jumps_to_the_slice(segmented_lgg_page, data_dir, streamlit_idle, shots):
    from playwright.sync_api import expect

    page = segmented_lgg_page
    expect(page.get_by_text("Tumour slices (sequence model)")).to_be_visible()
    page.get_by_role("button", name="Read all slices").click()
    streamlit_idle(page, timeout_ms=300_000)
    expect(page.get_by_text("Click a point to show that slice")).to_be_visible(timeout=180_000)
    strip = page.locator(".js-plotly-plot").last
    points = strip.locator(".scatterlayer .trace").last.locator("path.point")
    n = points.count()
    assert n >= 10, f"the strip shows {n} slices"
    slider = page.get_by_role("slider").first
    before = slider.get_attribute("aria-valuetext")
    target = 3 if before != "3" else 4  # 1-based slice number of the point clicked
    for _ in range(3):  # a click that lands while plotly is still drawing selects nothing: click again
        points.nth(target - 1).click(force=True)
        streamlit_idle(page)
        if slider.get_attribute("aria-valuetext") == str(target):
            break
        page.wait_for_timeout(1000)
    expect(slider).to_have_attribute("aria-valuetext", str(target), timeout=60_000)
    shots.save(page, "sequence-strip")
