"""AppTest of pages/training.py: start a toy run, see it finish, evaluate, promote; sessions are private."""

from __future__ import annotations

import gc
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
    assert "toy-page (user-trained)" in at.success[0].value
    assert [(e.name, e.origin) for e in list_models("toy")] == [("toy-page", "user-trained")]
    assert not (tmp_path / "weights").exists()  # the shipped folder is never written
    assert (tmp_path / "runs" / "user-models" / "toy-page.safetensors").is_file()  # default: in the runs folder


def _start(at, epochs, step_delay=0.0):
    at.selectbox(key="train.task").set_value("toy").run()
    at.number_input(key="train.epochs").set_value(epochs)
    at.number_input(key="train.batch_size").set_value(8)
    at.number_input(key="train.toy.step_delay").set_value(step_delay)
    at.button(key="train.start").click().run()
    assert not at.error, [e.value for e in at.error]
    return at


def _wait_for(at, cond, what):
    deadline = time.monotonic() + 120
    while not cond(at):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
        at.run()


def test_a_second_session_waits_in_the_queue_sees_its_place_and_can_cancel(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    alice = _start(AppTest.from_file(PAGE, default_timeout=60).run(), 100_000, 0.02)
    _wait_for(alice, lambda a: _metric(a, "status") == "running", "first run did not start")
    bob = _start(AppTest.from_file(PAGE, default_timeout=60).run(), 1)
    note = next((i.value for i in bob.info if "training queue" in i.value), "")
    assert "position 1" in note and "rough" in note, [i.value for i in bob.info]
    assert not any("already in progress" in e.value for e in bob.error)
    bob.button(key="train.cancel").click().run()
    assert not bob.error, [e.value for e in bob.error]
    assert _metric(bob, "status") == "cancelled"
    alice.button(key="train.stop").click().run()
    _wait_for(alice, lambda a: _metric(a, "status") == "stopped", "first run did not stop")


def test_data_source_outside_the_data_folder_is_refused_and_uploads_stay_private(tmp_path, monkeypatch):
    from medviz.train.paths import REFUSED
    from medviz.ui.training import OWNER_KEY, get_manager

    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MEDVIZ_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="train.task").set_value("toy").run()
    messages = []
    for path in ("/etc/hostname", str(tmp_path / "no-such-file.npz")):
        at.text_input(key="train.data").set_value(path).run()
        messages.append([e.value for e in at.error])
        assert at.button(key="train.start").disabled
    assert messages == [[REFUSED], [REFUSED]]
    at.text_input(key="train.data").set_value("").run()
    at.file_uploader(key="train.upload").set_value(("my brains.npz", b"\x00" * 10, "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    command = at.code[0].value
    assert "<uploaded: my_brains.npz>" in command and str(tmp_path) not in command
    saved = get_manager().upload_folder(at.session_state[OWNER_KEY]) / "my_brains.npz"
    assert saved.read_bytes() == b"\x00" * 10
    assert saved.stat().st_mode & 0o777 == 0o600 and saved.parent.stat().st_mode & 0o777 == 0o700
    del at  # the session ends: Streamlit drops its state, and the upload folder goes with it
    gc.collect()
    assert not saved.parent.exists()


def test_the_estimate_counts_validation_and_says_when_it_is_rough():
    from medviz.ui.training import estimate_text

    est = {"params": 1.5e6, "peak_mb": 120.0, "step_s": 0.05, "steps_per_epoch": 40, "val_s": 1.25, "epoch_s": 3.25,
           "device": "cpu", "rough": False, "method": "measured 5 training step(s)"}
    assert estimate_text(est).startswith("Estimate: ") and "+ ~1.2 s validation ≈ 3.2 s per epoch" in estimate_text(est)
    rough = estimate_text({**est, "rough": True, "method": "rough: ...; the machine is busy with other work"})
    assert rough.startswith("Rough estimate: ") and "busy" in rough
