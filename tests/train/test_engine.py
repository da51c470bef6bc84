"""The training engine on the toy task: learning, events, seeding, NaN, stop/resume, export."""

from __future__ import annotations

import threading

import pytest
import torch

from medviz.train.checkpoint import LAST, CheckpointError, load_checkpoint
from medviz.train.engine import BEST, TrainConfig, TrainingError, export_model, train
from medviz.train.events import EventLog
from medviz.train.registry import get_task_class, task_names
from tests.train.toy_task import ToyOptions, ToyTask

CFG = dict(epochs=3, batch_size=8, lr=1e-2, device="cpu")


def _run(run_dir, options=None, listeners=(), stop_event=None, resume=False, **cfg):
    task = ToyTask(options)
    return train(task, TrainConfig(**{**CFG, **cfg}), run_dir, listeners=listeners, stop_event=stop_event,
                 resume=resume)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_toy_run_improves_and_reports(tmp_path):
    log = EventLog()
    r = _run(tmp_path, listeners=[log])
    assert r.status == "completed" and len(r.history) == 3
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"]
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    kinds = [e.kind for e in log.snapshot()]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3 and kinds.count("step") == 24
    start = log.snapshot()[0]
    assert start.metrics["summary"]["train"] == 64 and len(start.metrics["samples"]) == 4
    step = next(e for e in log.snapshot() if e.kind == "step")
    assert step.lr == pytest.approx(1e-2) and step.throughput > 0 and step.memory_mb > 0
    assert not r.model.training
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 3 and (tmp_path / BEST).exists()


def test_same_seed_same_curve_other_seed_differs(tmp_path):
    curves = [[h["train_loss"] for h in _run(tmp_path / str(i), ToyOptions(augment=True), seed=s, epochs=2).history]
              for i, s in enumerate((7, 7, 8))]
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


def test_nan_loss_names_the_step_and_keeps_last_checkpoint(tmp_path):
    log = EventLog()
    with pytest.raises(TrainingError, match=r"epoch 2, step 3"):
        _run(tmp_path, ToyOptions(nan_at_step=11), listeners=[log])  # 8 steps per epoch
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 1
    assert log.snapshot()[-1].kind == "error"


def test_nonfinite_steps_are_skipped_when_allowed(tmp_path):
    """--skip-nonfinite: a NaN loss (step 11) and a NaN gradient with a finite loss (step 13) leave the
    weights untouched and are counted; one more than allowed fails like before."""
    r = _run(tmp_path / "a", ToyOptions(nan_at_step=11, nan_grad_at_step=13), skip_nonfinite=2)
    assert r.status == "completed" and [h.get("skipped_steps", 0) for h in r.history] == [0, 2, 0]
    assert all(torch.isfinite(v).all() for v in r.model.state_dict().values() if v.is_floating_point())
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    with pytest.raises(TrainingError, match=r"2 optimiser steps .* epoch 2, step 5; --skip-nonfinite 1"):
        _run(tmp_path / "b", ToyOptions(nan_at_step=11, nan_grad_at_step=13), skip_nonfinite=1)
    # without the option the NaN gradient itself is not detected, but the next loss is NaN
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2, step 6"):
        _run(tmp_path / "c", ToyOptions(nan_grad_at_step=13))


def test_stop_saves_nothing_partial_and_resume_matches_uninterrupted(tmp_path):
    ref = _run(tmp_path / "ref")
    stop = threading.Event()

    def stopper(e):
        if e.kind == "step" and e.epoch == 1 and e.step == 3:
            stop.set()

    r = _run(tmp_path / "run", listeners=[stopper], stop_event=stop)
    assert r.status == "stopped"
    assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] == 1  # the partial epoch 2 was not saved
    assert not list((tmp_path / "run").glob(".*.tmp"))
    done = _run(tmp_path / "run", resume=True)
    assert done.status == "completed" and [h["epoch"] for h in done.history] == [1, 2, 3]
    assert _same_state(load_checkpoint(tmp_path / "run" / LAST)["model"], load_checkpoint(tmp_path / "ref" / LAST)["model"])
    assert _same_state(done.model.state_dict(), ref.model.state_dict())


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        _run(tmp_path, resume=True)


def test_early_stopping_and_finished_run_resumes_to_same_status(tmp_path):
    r = _run(tmp_path, epochs=30, patience=1, lr=0.5)
    assert r.status == "early_stopped" and len(r.history) < 30
    again = _run(tmp_path, epochs=30, patience=1, lr=0.5, resume=True)
    assert again.status == "early_stopped" and len(again.history) == len(r.history)


def test_export_registers_a_loadable_model(tmp_path):
    from medviz.models.weights import load_model

    task = ToyTask(ToyOptions())
    r = train(task, TrainConfig(**{**CFG, "epochs": 1}), tmp_path / "run")
    entry = export_model(task, r, tmp_path / "w", "toy-model", "python -m medviz.train --task toy", register=True)
    model, e = load_model("toy-model", weights_dir=tmp_path / "w")
    assert e.raw["sha256"] == entry["sha256"]
    assert _same_state(model.state_dict(), r.model.state_dict())


def test_task_registry_is_explicit(monkeypatch):
    assert "toy" in task_names() and get_task_class("toy") is ToyTask
    with pytest.raises(ValueError, match="Unknown task"):
        get_task_class("os:system")
    monkeypatch.setenv("MEDVIZ_TRAIN_TASKS", "bad entry")
    with pytest.raises(ValueError, match="name=module:Class"):
        task_names()
    monkeypatch.setenv("MEDVIZ_TRAIN_TASKS", "x=os:getcwd")
    with pytest.raises(TypeError, match="not a TrainTask"):
        get_task_class("x")


def test_worker_processes_give_the_same_result(tmp_path):
    a = _run(tmp_path / "a", epochs=2)
    b = _run(tmp_path / "b", epochs=2, num_workers=1)
    assert _same_state(a.model.state_dict(), b.model.state_dict())


def test_export_refuses_a_run_without_a_completed_epoch(tmp_path):
    stop = threading.Event()
    stop.set()
    task = ToyTask(ToyOptions())
    r = train(task, TrainConfig(**CFG), tmp_path / "run", stop_event=stop)
    assert r.status == "stopped" and r.best_epoch == 0
    with pytest.raises(TrainingError, match="no completed epoch"):
        export_model(task, r, tmp_path / "w", "x", "cmd")


def test_estimate_measures_steps():
    from medviz.train.estimate import estimate

    est = estimate(ToyTask(ToyOptions()), TrainConfig(**CFG))
    assert est["steps_per_epoch"] == 8 and est["step_s"] > 0 and est["params"] > 0
    assert est["train_s"] == pytest.approx(est["step_s"] * 8) and est["peak_mb"] >= est["param_state_mb"]
    # an epoch is its training steps and the validation the engine runs after them
    assert est["val_s"] > 0 and est["epoch_s"] == pytest.approx(est["train_s"] + est["val_s"])
    assert "validation timed on 16 of 16 samples" in est["method"]
    assert isinstance(est["rough"], bool) and est["method"].startswith("rough: ") == est["rough"]


def test_estimate_says_it_is_rough_on_a_busy_machine(monkeypatch):
    from medviz.train import estimate as estimate_module

    monkeypatch.setattr(estimate_module.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    est = estimate_module.estimate(ToyTask(ToyOptions()), TrainConfig(**CFG))
    assert est["rough"] and est["method"].startswith("rough: ") and "busy" in est["method"]


def test_unusable_device_is_a_training_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match="no CUDA device"):
        _run(tmp_path, device="cuda")
