"""AppTest of pages/training.py: start a toy run, see it finish, evaluate, promote; sessions are private."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from medviz.models.registry import list_models
from medviz.train.events import TrainEvent
from medviz.ui.training import MAX_STEP_POINTS, curves_figure

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


def test_preparing_data_gives_way_to_the_summary_when_the_data_are_ready():
    from types import SimpleNamespace

    from medviz.ui.training import _phase

    def job(status):
        return SimpleNamespace(status=status, queued=status == "queued", running=status in ("starting", "running"))

    # the live view reruns the whole page when the phase changes: data loading -> training must be a change
    assert _phase(job("starting")) != _phase(job("running"))
    assert [_phase(job(s)) for s in ("queued", "starting", "running", "completed")] == \
        ["queued", "starting", "running", "done"]


def test_evaluation_tables_are_rounded_and_each_column_has_one_type():
    import pyarrow as pa

    from medviz.ui.training import report_tables

    report = {"metrics": {"val_loss": 0.123456789, "val_dice": 0.87654321},
              "evaluator": {"n": 42, "tta": "flip", "auc": 0.9876543, "tiny": 1.234567e-05},
              "per_case": [("TCGA_1", 0.912345678), ("TCGA_2", 0.5)]}
    tables = report_tables(report)
    assert tables["metrics"] == [{"metric": "val_loss", "value": "0.1235"}, {"metric": "val_dice", "value": "0.8765"},
                                 {"metric": "n", "value": "42"}, {"metric": "tta", "value": "flip"},
                                 {"metric": "auc", "value": "0.9877"}, {"metric": "tiny", "value": "1.235e-05"}]
    assert tables["per_case"] == [{"case": "TCGA_1", "Dice": 0.9123}, {"case": "TCGA_2", "Dice": 0.5}]
    for rows in tables.values():
        pa.Table.from_pylist(rows)  # Arrow takes them as they are (mixed columns raise here)
        for column in rows[0]:
            assert len({type(r[column]) for r in rows}) == 1, column


def test_form_labels_are_words_and_a_quick_demo_fills_the_form(tmp_path, monkeypatch):
    from medviz.options import describe
    from medviz.train.engine import TrainConfig
    from medviz.train.registry import get_task_class

    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    for task in ("segmentation", "toy"):
        at.selectbox(key="train.task").set_value(task).run()
        widgets = [w for kind in ("selectbox", "number_input", "text_input", "checkbox") for w in at.get(kind)
                   if w.key and w.key.startswith("train.") and w.key.count(".") >= 1 and w.key != "train.code"]
        labels = {w.key: w.label for w in widgets}
        expected = {f"train.{o.name}": o.label for o in describe(TrainConfig)}
        expected.update({f"train.{task}.{o.name}": o.label for o in describe(get_task_class(task).Options)})
        assert {k: v for k, v in labels.items() if k in expected} == expected  # every option, by its label
        assert not any("--" in v or "_" in v for v in labels.values()), labels

    at.selectbox(key="train.task").set_value("segmentation").run()
    at.button(key="train.demo").click().run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.number_input(key="train.epochs").value == 2
    assert at.text_input(key="train.max_steps_per_epoch").value == "20"
    assert at.number_input(key="train.segmentation.crop").value == 64
    assert at.text_input(key="train.segmentation.unet_channels").value == "8 16 32 64"
    assert any(i.value.startswith("Quick demo run: 2 epochs of at most 20 steps") for i in at.info)
    assert "--epochs 2" in at.code[0].value and "--max-steps-per-epoch 20" in at.code[0].value

    at.selectbox(key="train.task").set_value("toy").run()
    at.button(key="train.demo").click().run()
    at.button(key="train.start").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait_for(at, lambda a: _metric(a, "status") in ("completed", "failed"), "demo run did not finish")
    assert _metric(at, "status") == "completed"


def test_start_weights_outside_the_allowed_folders_are_refused_on_the_page(tmp_path, monkeypatch):
    from medviz.train.paths import MODEL_REFUSED

    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="train.task").set_value("segmentation").run()
    for path in ("/etc/hostname", str(tmp_path / "secret.safetensors")):
        at.text_input(key="train.segmentation.init").set_value(path).run()
        assert [e.value for e in at.error] == [MODEL_REFUSED]
        assert at.button(key="train.start").disabled
    at.text_input(key="train.segmentation.init").set_value(str(tmp_path / "runs" / "job-1" / "best.safetensors")).run()
    assert not at.error, [e.value for e in at.error]


def test_the_live_loss_curve_draws_a_bounded_number_of_steps_ending_at_the_last():
    steps = [TrainEvent("step", epoch=i // 100, step=i % 100 + 1, steps_per_epoch=100, epochs=30,
                        metrics={"loss": 1.0 / (i + 1)}) for i in range(2999)]
    x = curves_figure(steps).data[0].x
    assert len(x) <= MAX_STEP_POINTS + 1 and x[0] == 0.01 and x[-1] == 29.99
    assert len(curves_figure(steps[:50]).data[0].x) == 50  # a short run: every step


def test_the_live_curves_are_rebuilt_only_when_new_steps_or_epochs_have_come(monkeypatch):
    from types import SimpleNamespace

    import medviz.ui.training as training

    monkeypatch.setattr(training.st, "session_state", {})
    built = []
    monkeypatch.setattr(training, "curves_figure", lambda events: built.append(len(events)) or object())
    job, other = SimpleNamespace(id="job-1"), SimpleNamespace(id="job-2")
    steps = [TrainEvent("step", epoch=0, step=i + 1, steps_per_epoch=10, epochs=2, metrics={"loss": 1.0})
             for i in range(3)]
    first = training.live_curves(job, steps)
    assert training.live_curves(job, list(steps)) is first and built == [3]  # nothing new: the same figure
    start = TrainEvent("start", epoch=0, step=0, steps_per_epoch=10, epochs=2, metrics={"summary": {}})
    assert training.live_curves(job, steps + [start]) is first  # a start event does not change the curves
    assert training.live_curves(job, steps + steps[:1]) is not first and built == [3, 4]  # a new step does
    epoch = TrainEvent("epoch", epoch=0, step=10, steps_per_epoch=10, epochs=2, metrics={"val_loss": 0.5})
    training.live_curves(job, steps + steps[:1] + [epoch])
    training.live_curves(other, steps + steps[:1] + [epoch])  # another run: its own figure
    assert built == [3, 4, 5, 5]
