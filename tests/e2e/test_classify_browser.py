"""Real browser: upload a real chest X-ray on the Classify page, get calibrated probabilities and a
Grad-CAM overlay from the shipped PneumoniaMNIST model."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.data]


def test_classify_chest_xray_shows_probabilities_and_cam(page, app_url, data_dir, streamlit_idle, shots):
    from playwright.sync_api import expect

    cxr = data_dir / "cxr_nih_torchxrayvision" / "00000001_000.png"
    page.set_default_timeout(120_000)
    page.goto(f"{app_url}/classify")
    expect(page.get_by_role("heading", name="Classify")).to_be_visible(timeout=120_000)
    streamlit_idle(page)
    page.get_by_role("combobox", name="model").click()
    page.get_by_role("option", name="pneumonia_resnet").click()
    streamlit_idle(page)
    page.get_by_text("upload", exact=True).click()
    streamlit_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(cxr))
    streamlit_idle(page)
    expect(page.get_by_text("what the model sees")).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"^GradCAM: (normal|pneumonia)$"))).to_be_visible(timeout=120_000)
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(re.compile(r"^(normal|pneumonia)$"))
    assert page.locator(".js-plotly-plot").count() >= 3
    # The guardrails speak: a 512-px adult CXR is far from the 28-px paediatric thumbnails.
    expect(page.get_by_text(re.compile("fine detail is lost"))).to_be_visible()
    page.get_by_role("combobox", name="explanation").click()
    page.get_by_role("option", name="HiResCAM").click()
    streamlit_idle(page)
    expect(page.get_by_text(re.compile(r"^HiResCAM: (normal|pneumonia)$"))).to_be_visible(timeout=120_000)
    shots.save(page, "classify-cxr")
