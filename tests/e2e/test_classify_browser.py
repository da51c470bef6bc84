"""Real browser: upload a real chest X-ray on the Classify page, get calibrated probabilities and a
Grad-CAM overlay from the shipped PneumoniaMNIST model; upload a brain MRI slice and see the model abstain."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.data]


def _upload_to_pneumonia_model(page, app_url, streamlit_idle, path) -> None:
    """Open the Classify page, choose the shipped pneumonia model and upload ``path``."""
    from playwright.sync_api import expect

    page.set_default_timeout(120_000)
    page.goto(f"{app_url}/classify")
    expect(page.get_by_role("heading", name="Classify")).to_be_visible(timeout=120_000)
    streamlit_idle(page)
    page.get_by_role("combobox", name="model").click()
    page.get_by_role("option", name="pneumonia_resnet").click()
    streamlit_idle(page)
    page.get_by_text("pick the model that fits the input", exact=True).click()  # this model, whatever the input
    streamlit_idle(page)
    page.get_by_text("upload", exact=True).click()
    streamlit_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    streamlit_idle(page)


def test_classify_chest_xray_shows_probabilities_and_cam(page, app_url, data_dir, streamlit_idle, shots):
    from playwright.sync_api import expect

    cxr = data_dir / "cxr_nih_torchxrayvision" / "00000001_000.png"
    _upload_to_pneumonia_model(page, app_url, streamlit_idle, cxr)
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


def test_pneumonia_model_abstains_on_an_lgg_brain_slice(page, app_url, data_dir, streamlit_idle, shots):
    """Issue #14: a brain MRI slice given to the chest X-ray model gets no class label, only the abstention,
    the score against the validation images and an explicit "show anyway" switch."""
    from playwright.sync_api import expect

    lgg = data_dir / "lgg_flair_mri_seg" / "images" / "TCGA_CS_4943_20000902_10.png"
    _upload_to_pneumonia_model(page, app_url, streamlit_idle, lgg)
    expect(page.get_by_text(re.compile("does not look like the model's training images"))).to_be_visible(
        timeout=120_000)
    expect(page.get_by_text(re.compile(r"validation images score"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text("what the model sees")).to_be_visible(timeout=120_000)
    assert page.locator('[data-testid="stMetricValue"]').count() == 0  # no large class label
    toggle = page.get_by_text("show anyway", exact=True)
    expect(toggle).to_be_visible(timeout=120_000)
    shots.save(page, "classify-lgg-abstains")
    toggle.click()
    streamlit_idle(page)
    expect(page.get_by_text(re.compile("^prediction \\(shown anyway\\)$"))).to_be_visible(timeout=120_000)
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(re.compile(r"^(normal|pneumonia)$"))
    shots.save(page, "classify-lgg-shown-anyway")


def test_full_size_cxr_is_routed_to_the_224_px_model_and_explained_at_full_resolution(page, app_url, data_dir,
                                                                                      streamlit_idle, shots):
    """Issue #15: a test-split JPEG of the Kermany set goes to the 224-px model (the page says so), which sees
    224 x 224 px and whose CAM is drawn over the 256-px radiograph."""
    from playwright.sync_api import expect

    jpeg = data_dir / "cxr_pneumonia_kermany" / "test" / "PNEUMONIA" / "person1_virus_6.jpg"
    page.set_default_timeout(120_000)
    page.goto(f"{app_url}/classify")
    expect(page.get_by_role("heading", name="Classify")).to_be_visible(timeout=120_000)
    streamlit_idle(page)
    page.get_by_text("upload", exact=True).click()
    streamlit_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(jpeg))
    streamlit_idle(page)
    expect(page.get_by_text(re.compile(r"^Model: pneumonia_cxr224: the image is a full-size image"))).to_be_visible(
        timeout=120_000)
    expect(page.get_by_text("what the model sees (224×224 px)")).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"drawn over the windowed image at 256×256 px"))).to_be_visible(timeout=120_000)
    expect(page.get_by_text(re.compile(r"^GradCAM: (normal|pneumonia)$"))).to_be_visible(timeout=120_000)
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(re.compile(r"^(normal|pneumonia)$"))
    shots.save(page, "classify-kermany-224")
