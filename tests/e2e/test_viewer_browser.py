"""Real-browser test of the viewer: upload the 20-slice CT series, change preset and slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

SERIES = "dicom_series_ct_totalsegmentator"


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def _changed(a: Path, b: Path) -> float:
    """Mean absolute grey-level difference between two screenshots of the same element."""
    pa, pb = _pixels(a), _pixels(b)
    h, w = min(pa.shape[0], pb.shape[0]), min(pa.shape[1], pb.shape[1])
    return float(np.abs(pa[:h, :w] - pb[:h, :w]).mean())


def _corner_text(plot) -> str:
    return plot.locator("g.annotation").filter(has_text="Axial").first.text_content() or ""


@pytest.mark.browser
def test_upload_ct_series_then_change_preset_and_slice(app_page, data_dir, streamlit_idle, shots):
    page = app_page
    expect(page.get_by_role("heading", name="Viewer")).to_be_visible()
    page.get_by_text("Interactive viewer", exact=False).click()  # this test checks the static rendering
    streamlit_idle(page)
    plot = page.locator(".js-plotly-plot").first
    expect(plot).to_be_visible()  # the first example opens without any upload

    files = sorted(p for p in (data_dir / SERIES).iterdir() if p.is_file() and p.name.startswith("CT."))
    assert len(files) == 20
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files([str(p) for p in files])
    expect(page.get_by_text("512 × 512 × 20 px", exact=False)).to_be_visible()
    streamlit_idle(page)
    plot = page.locator(".js-plotly-plot").first
    expect(plot.locator("g.annotation").filter(has_text="Axial 10/20")).to_be_visible()
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)

    # Radiological orientation: A above P, patient's right (R) left of L.
    label = {t: plot.locator("g.annotation").filter(has_text=t).first.bounding_box() for t in "APRL"}
    assert label["A"]["y"] < label["P"]["y"] and label["R"]["x"] < label["L"]["x"]
    soft = shots.save(plot, "axial-soft-tissue")

    # Hover probe: raw HU and LPS position in mm.
    drag = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(drag["x"] + drag["width"] / 2, drag["y"] + drag["height"] / 2)
    hover = plot.locator(".hoverlayer").first
    expect(hover).to_contain_text("HU")
    expect(hover).to_contain_text("LPS")
    page.mouse.move(0, 0)

    page.locator('[data-testid="stSelectbox"]').filter(has_text="Window preset").click()
    page.get_by_role("option", name="Lung", exact=True).click()
    streamlit_idle(page)
    expect(plot.locator("g.annotation").filter(has_text="W 1500  L -600")).to_be_visible()
    lung = shots.save(plot, "axial-lung")
    assert _changed(soft, lung) > 2.0, "the lung window should change the rendered image"

    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    for _ in range(6):
        thumb.press("ArrowRight")
    streamlit_idle(page)
    expect(plot.locator("g.annotation").filter(has_text="Axial 16/20")).to_be_visible()
    moved = shots.save(plot, "axial-lung-slice-16")
    assert _changed(lung, moved) > 0.5, "another slice should change the rendered image"
    shots.save(page, "viewer-full-page", full_page=True)
