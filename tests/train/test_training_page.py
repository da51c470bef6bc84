"""AppTest of pages/training.py: start a toy run, see it finish, evaluate, promote; sessions are private."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from medviz.models.registry import list_models

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "training.py")


def _metric(at, label):
    return next((m.value for m in at.metric if m.label == label), None)


def test_training_page_runs_evaluates_and_promotes(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    at.selectbox(key="train.task").set_value("toy").run()
    at.number_input(key="train.epochs").set_value(2)
    at.number_input(key="train.batch_size").set_value(8)
    at.button(key="train.start").click().run()
    assert not at.error, [e.value for e in at.error]
    deadline = time.monotonic() + 120
    while _metric(at, "status") not in ("completed", "failed"):
        assert time.monotonic() < deadline, "run did not finish"
        time.sleep(0.5)
        at.run()
    assert _metric(at, "status") == "completed"
    assert at.get("plotly_chart"), "no loss curves"
    assert at.get("image") and len(at.get("image")[0].value) == 4, "no sample grid in the data summary"
    assert "--task toy" in at.caption[0].value

    other = AppTest.from_file(PAGE, default_timeout=60).run()  # a second browser session
    assert any("No runs in this session" in c.value for c in other.caption)

    at.button(key="train.eval").click().run()
    assert any("validation metrics" in i.value for i in at.info)
    at.text_input(key="train.name").set_value("toy-page").run()
    at.button(key="train.promote").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "toy-page" in at.success[0].value
    assert [e.name for e in list_models("toy", tmp_path / "weights")] == ["toy-page"]
