"""Real browser: the Viewer auto-loads the first bundled example; the Reconstruct page undersamples
one of its slices, reconstructs it with the shipped model, then denoises it, with baselines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


def test_reconstruct_bundled_example(app_page, streamlit_idle, shots):
    from playwright.sync_api import expect

    from medviz.models.registry import list_models

    if "reconstruct.py" not in (ROOT / "app.py").read_text():
        pytest.skip("pages/reconstruct.py is not in the app.py router yet")
    names = {e.name for e in list_models(task="reconstruction")}
    if not {"lgg_flair_recon", "lgg_flair_denoise"} <= names:
        pytest.skip(f"shipped reconstruction models not registered (have {sorted(names)})")
    page = app_page  # the Viewer has opened the first bundled example in this session
    page.get_by_role("link", name=re.compile("Reconstruct")).click()
    streamlit_idle(page)
    expect(page.get_by_role("heading", name="Reconstruct")).to_be_visible()
    page.get_by_role("combobox", name="model").click()
    page.get_by_role("option", name=re.compile("lgg_flair_recon")).click()
    streamlit_idle(page)
    expect(page.get_by_text(re.compile("simulated"))).to_be_visible()
    expect(page.get_by_text("k-space sampling")).to_be_visible()
    assert page.locator(".js-plotly-plot").count() >= 3
    table = page.locator('[data-testid="stDataFrame"]').first
    expect(table).to_be_visible()
    shots.save(page, "reconstruct-4x")

    page.get_by_role("combobox", name="model").click()
    page.get_by_role("option", name=re.compile("lgg_flair_denoise")).click()
    streamlit_idle(page)
    expect(page.get_by_text(re.compile("Rician noise"))).to_be_visible()
    expect(page.get_by_text("noisy input")).to_be_visible()
    expect(page.locator('[data-stale="true"]')).to_have_count(0)  # the recon table/mask are gone
    expect(page.get_by_text("k-space sampling")).to_have_count(0)
    assert not page.locator('[data-testid="stException"]').count()
    shots.save(page, "denoise")
