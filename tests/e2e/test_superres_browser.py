"""Real browser: the Super-resolution page of a new session opens the bundled example and super-resolves it, then
an LGG test patient (shared data), and shows every arm labelled synthetic, without an exception box.

Runs its own Streamlit server on 127.0.0.1 (app.py, a temporary weights folder with tiny seeded generators in
place of the shipped ones, which may not be registered yet); the server is stopped by PID at the end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from streamlit_server import run_streamlit

from medviz.config import get_settings
from tests.superres.test_page import register_tiny_sr

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LABEL = "SYNTHETIC — NOT FOR DIAGNOSIS"


@pytest.fixture(scope="module")
def sr_server(tmp_path_factory):
    """app.py served with tiny ``tiny_pixel`` / ``tiny_gan`` generators as the only registered models."""
    weights = tmp_path_factory.mktemp("weights")
    register_tiny_sr(weights)
    runs = tmp_path_factory.mktemp("runs")
    env = {"MEDVIZ_WEIGHTS_DIR": str(weights), "MEDVIZ_RUNS_DIR": str(runs),
           "MEDVIZ_USER_MODELS_DIR": str(runs / "user-models"), "MEDVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with run_streamlit(ROOT / "app.py", tmp_path_factory.mktemp("streamlit-superres") / "server.log", env) as url:
        yield url


def _plot_traces(page) -> list[list[str]]:
    """The trace types of every plotly figure on the page, in order."""
    return page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .map(g => (g.data || []).map(t => t.type))""")


def _check_arms(page, with_real: bool, pixel: str = "tiny_pixel", gan: str = "tiny_gan") -> None:
    from playwright.sync_api import expect

    for title in ("bicubic (A)", f"pixel-loss (B) · {pixel}", f"GAN (C) · {gan}") + (("real (",) if with_real else ()):
        expect(page.locator(".js-plotly-plot").first.get_by_text(title).first).to_be_visible()
    expect(page.get_by_text(LABEL).first).to_be_visible()  # the page's warning
    assert page.locator(".js-plotly-plot").first.get_by_text(LABEL).count() == 3  # one per synthetic panel
    main = _plot_traces(page)[0]
    assert main.count("image") == (8 if with_real else 4)  # 5 panels + 3 |difference| maps, or input + 3 arms
    assert not page.locator('[data-testid="stException"]').count()


def test_superres_page_on_the_bundled_example_and_an_lgg_patient(sr_server, page, streamlit_idle, shots):
    from playwright.sync_api import expect

    page.set_default_timeout(120_000)
    expect.set_options(timeout=120_000)
    page.goto(f"{sr_server}/superres")  # a new session: no study yet
    expect(page.get_by_role("heading", name="Super-resolution")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Super-resolution"))).to_be_visible()  # in the app's menu
    streamlit_idle(page)
    page.get_by_role("button", name=re.compile("Open the bundled example")).click()
    streamlit_idle(page)
    _check_arms(page, with_real=True)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    shots.save(page, "superres-bundled-example")

    if not (get_settings().data_dir / "lgg_flair_mri_seg").is_dir():
        pytest.skip("shared LGG data not found: the bundled example was checked, the LGG patient is skipped")
    page.get_by_role("button", name="LGG test patient (shared data)").click()  # replaces the example as the study
    streamlit_idle(page)
    expect(page.get_by_text(re.compile(r"real \(256×256\)")).first).to_be_visible()
    _check_arms(page, with_real=True)
    shots.save(page, "superres-lgg")
    page.get_by_role("heading", name="Blend two arms").scroll_into_view_if_needed()
    shots.save(page, "superres-lgg-blend")
    page.get_by_role("button", name="DICOM (Secondary Capture)").scroll_into_view_if_needed()
    shots.save(page, "superres-lgg-downloads")


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    """app.py served with the shipped weights folder (the registered super-resolution pair among them)."""
    runs = tmp_path_factory.mktemp("runs-shipped")
    env = {"MEDVIZ_WEIGHTS_DIR": str(ROOT / "weights"), "MEDVIZ_RUNS_DIR": str(runs),
           "MEDVIZ_USER_MODELS_DIR": str(runs / "user-models"), "MEDVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with run_streamlit(ROOT / "app.py", tmp_path_factory.mktemp("streamlit-superres-shipped") / "server.log", env) as url:
        yield url


def test_superres_page_runs_the_shipped_pair_end_to_end(shipped_server, page, streamlit_idle, shots):
    """The shipped pixel-loss model and GAN on an LGG test patient, every synthetic panel labelled."""
    from playwright.sync_api import expect

    if not (get_settings().data_dir / "lgg_flair_mri_seg").is_dir():
        pytest.skip("shared LGG data not found")
    page.set_default_timeout(120_000)
    expect.set_options(timeout=120_000)
    page.goto(f"{shipped_server}/superres")
    expect(page.get_by_role("heading", name="Super-resolution")).to_be_visible()
    streamlit_idle(page)
    page.get_by_role("button", name="LGG test patient (shared data)").click()
    streamlit_idle(page)
    _check_arms(page, with_real=True, pixel="lgg_flair_sr4_pixel", gan="lgg_flair_sr4_gan")
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    shots.save(page, "superres-shipped-lgg")
