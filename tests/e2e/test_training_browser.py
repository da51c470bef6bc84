"""Real browser: start a toy run on the Training page, see the curve grow, stop, resume, stop, evaluate,
promote.

Runs its own Streamlit server on 127.0.0.1 (the Training page as the main script, the toy task
registered, a temporary weights folder) so it never touches the shipped registry; the server is
stopped by PID at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit_server import run_streamlit

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def training_server(tmp_path_factory):
    """The Training page alone, with the toy task registered and temporary weights/runs folders."""
    weights = tmp_path_factory.mktemp("weights")
    runs = tmp_path_factory.mktemp("runs")
    env = {"MEDVIZ_WEIGHTS_DIR": str(weights), "MEDVIZ_RUNS_DIR": str(runs),
           "MEDVIZ_TRAIN_TASKS": "toy=tests.train.toy_task:ToyTask", "MEDVIZ_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = tmp_path_factory.mktemp("streamlit-training") / "server.log"
    with run_streamlit(ROOT / "pages" / "training.py", log, env) as url:
        yield url, weights, runs


def _points(page) -> int:
    return page.evaluate("""() => { const g = document.querySelector('.js-plotly-plot');
        return g && g.data ? g.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0; }""")


def _stop(page) -> None:
    """Press Stop and wait until the run reports ``stopped``."""
    from playwright.sync_api import expect

    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_enabled(timeout=120000)
    stop.click()
    expect(page.get_by_text("stopped", exact=True).first).to_be_visible(timeout=60000)


def test_start_watch_stop_promote(training_server, page, shots):
    """Uses the session's Playwright page (Debian chromium, launch flags from tests/e2e/conftest.py)."""
    from playwright.sync_api import expect

    url, weights, runs = training_server
    page.goto(url)
    expect(page.get_by_role("heading", name="Training")).to_be_visible(timeout=60000)
    page.get_by_role("combobox", name="task").click()
    page.get_by_role("option", name="toy").click()
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    page.get_by_label("Batch size", exact=True).fill("8")
    page.get_by_label("Batch size", exact=True).press("Enter")
    page.get_by_role("button", name="Start training").click()

    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60000)
    deadline = time.monotonic() + 60
    first = _points(page)
    while _points(page) <= first + 20:  # two epochs of steps, so a best epoch exists
        assert time.monotonic() < deadline, "the loss curve did not grow"
        page.wait_for_timeout(500)

    _stop(page)
    resume = page.get_by_role("button", name="Resume", exact=True)
    expect(resume).to_be_enabled(timeout=120000)  # the page re-renders once the worker thread has ended
    resume.click()  # continues from the last completed epoch
    expect(page.get_by_text("running", exact=True).first).to_be_visible(timeout=60000)
    page.wait_for_timeout(1500)
    _stop(page)

    evaluate = page.get_by_role("button", name="Evaluate the best epoch on the validation split")
    expect(evaluate).to_be_enabled(timeout=60000)
    evaluate.click()
    expect(page.get_by_text("split: val").first).to_be_visible(timeout=120000)  # the report's header line

    name = page.get_by_label("model name")
    name.fill("toy-browser")
    name.press("Enter")
    promote = page.get_by_role("button", name="Promote", exact=True)
    expect(promote).to_be_enabled(timeout=120000)
    promote.click()
    expect(page.get_by_text("Registered toy-browser")).to_be_visible(timeout=60000)
    shots.save(page, "training-promoted")
    manifest = json.loads((runs / "user-models" / "manifest.json").read_text())  # the user models folder
    assert [m["name"] for m in manifest["models"]] == ["toy-browser"]
    assert not (weights / "manifest.json").exists()  # the shipped weights folder is never written
