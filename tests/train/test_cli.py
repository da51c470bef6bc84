"""The command line is derived from the options dataclasses: argv parses into the right dataclasses,
options -> argv -> options is exact, every historical flag still exists, and ranges are checked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from medviz.classification.train import ClassificationTrainOptions
from medviz.options import EvalOptions, check, describe
from medviz.reconstruction.evaluate import ReconstructionEvalOptions
from medviz.reconstruction.train import ReconstructionTrainOptions
from medviz.segmentation.evaluate import SegmentationEvalOptions
from medviz.segmentation.train import SegmentationTrainOptions
from medviz.train.cli import build_parser, parse
from medviz.train.command import RunOptions, TrainCommand, to_argv
from medviz.train.engine import TrainConfig
from tests.train.toy_task import ToyOptions


def test_segmentation_argv_parses_into_its_dataclasses():
    cmd = parse(["--task", "segmentation", "--data", "/d", "--epochs", "3", "--lr", "0.003", "--no-amp",
                 "--max-steps-per-epoch", "4", "--crop", "96", "--pos-neg", "3", "1", "--unet-channels", "8", "16",
                 "--skip-test", "--init", "w.safetensors", "--init-note", "from run 7", "--label-value", "2"])
    assert cmd == TrainCommand(
        "segmentation", run=RunOptions(data=Path("/d")),
        config=TrainConfig(epochs=3, lr=0.003, amp=False, max_steps_per_epoch=4),
        options=SegmentationTrainOptions(crop=96, pos_neg=(3.0, 1.0), unet_channels=[8, 16], skip_test=True,
                                         init=Path("w.safetensors"), init_note="from run 7", label_value=2))
    assert parse(["--task", "segmentation"]).options == SegmentationTrainOptions()


# (task, command fields): commands are built in the test, once the toy task is registered
COMMANDS = {
    "toy-defaults": ("toy", {}),
    "toy-all": ("toy", dict(
        run=RunOptions(name="t", register=True, resume=True, quiet=True),
        config=TrainConfig(epochs=2, batch_size=8, lr=0.01, weight_decay=0.0, scheduler="none", patience=3, seed=7,
                           device="cpu", amp=False, num_workers=1, max_steps_per_epoch=5, grad_clip=1.5,
                           skip_nonfinite=2),
        options=ToyOptions(n_train=8, augment=True, step_delay=0.05, trace=Path("/tmp/trace")))),
    "classification": ("classification", dict(
        run=RunOptions(data=Path("/x.npz")),
        options=ClassificationTrainOptions(dataset="breastmnist", arch="resnet10-tiny", image_size=64,
                                           class_weights="sqrt", label_smoothing=0.1, flip="hv",
                                           members=[Path("a"), Path("b")], members_note="two seeds"))),
    "segmentation": ("segmentation", dict(options=SegmentationTrainOptions(pos_neg=(1.0, 1.0), dropout=0.0))),
    "reconstruction": ("reconstruction", dict(options=ReconstructionTrainOptions(
        mode="denoise", crop=(64, 128), features=[8] * 6, accelerations=[4.0]))),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_options_to_argv_to_options_is_exact(name):
    task, fields = COMMANDS[name]
    cmd = TrainCommand(task, **fields)
    assert parse(to_argv(cmd)) == cmd


def test_defaults_write_no_flags_and_historical_flags_exist():
    assert to_argv(TrainCommand("segmentation")) == ["--task", "segmentation"]
    flags = {s for a in build_parser("segmentation")._actions for s in a.option_strings}
    assert {"--crop", "--pos-neg", "--unet-channels", "--res-units", "--dropout", "--cache-rate", "--skip-test",
            "--init", "--init-note", "--label-value", "--data", "--name", "--out", "--register", "--run-dir",
            "--resume", "--quiet", "--epochs", "--batch-size", "--lr", "--weight-decay", "--scheduler",
            "--patience", "--seed", "--device", "--no-amp", "--num-workers", "--max-steps-per-epoch",
            "--grad-clip", "--skip-nonfinite"} <= flags
    flags = {s for a in build_parser("classification")._actions for s in a.option_strings}
    assert {"--dataset", "--arch", "--image-size", "--class-weights", "--label-smoothing", "--rotate", "--flip",
            "--modality", "--download", "--skip-test", "--members", "--members-note"} <= flags
    flags = {s for a in build_parser("reconstruction")._actions for s in a.option_strings}
    assert {"--mode", "--accelerations", "--max-sigma", "--crop", "--features", "--cascades", "--init",
            "--init-note", "--val-limit"} <= flags


def test_every_option_has_words_for_the_page():
    for cls in (RunOptions, TrainConfig, ClassificationTrainOptions, SegmentationTrainOptions,
                ReconstructionTrainOptions, EvalOptions, SegmentationEvalOptions, ReconstructionEvalOptions):
        for o in describe(cls):
            assert o.label and not o.label.startswith("-") and "_" not in o.label, (cls.__name__, o.name)


def test_ranges_and_choices_are_checked():
    check(TrainCommand("segmentation").options)
    with pytest.raises(ValueError, match=r"Training crop size \(pixels\) \(--crop\): 8 is below the minimum 16"):
        check(SegmentationTrainOptions(crop=8))
    with pytest.raises(ValueError, match=r"\(--pos-neg\) needs 2 values, got 1"):
        check(SegmentationTrainOptions(pos_neg=(1.0,)))
    with pytest.raises(ValueError, match="not one of"):
        check(replace(TrainConfig(), scheduler="linear"))
    assert TrainCommand("toy", config=TrainConfig(epochs=0)).problems() == [
        "Epochs (--epochs): 0 is below the minimum 1"]


def test_a_command_refuses_another_tasks_options():
    with pytest.raises(TypeError, match="takes ToyOptions"):
        TrainCommand("toy", options=SegmentationTrainOptions())
