"""The super-resolution task trains through the one engine: a pixel-loss run, then a tiny adversarial run that
updates both networks, streams the generator's and the discriminator's losses as separate curves, and resumes
after a stop with both networks exactly as an uninterrupted run."""

from __future__ import annotations

import threading

import pytest
import torch

from medviz.superres.train import SuperResTask, SuperResTrainOptions
from medviz.train.checkpoint import LAST, load_checkpoint
from medviz.train.engine import TrainConfig, train
from medviz.train.events import TrainEvent
from medviz.ui.training import curves_figure
from tests.lgg_folders import lgg_folder, shipped_splits

TINY = [4, 4, 8, 8, 16, 4]


@pytest.fixture(scope="module")
def lgg_two(data_dir, tmp_path_factory):
    splits = shipped_splits(data_dir)
    return lgg_folder(data_dir, tmp_path_factory.mktemp("sr") / "lgg",
                      {"train": splits["train"][:1], "val": splits["val"][:1], "test": splits["test"][:1]})


@pytest.fixture(scope="module")
def pixel_weights(lgg_two, tmp_path_factory):
    run = tmp_path_factory.mktemp("sr_pixel")
    task = SuperResTask(SuperResTrainOptions(features=TINY, crop=32, val_limit=4), data=lgg_two)
    result = train(task, TrainConfig(device="cpu", epochs=1, batch_size=4, max_steps_per_epoch=2), run)
    assert result.best_epoch == 1 and result.monitor == "val_psnr"
    return run / "best.safetensors"


def _gan(lgg_two, init) -> SuperResTask:
    return SuperResTask(SuperResTrainOptions(mode="gan", init=init, twin="tiny", features=TINY, crop=32, val_limit=4,
                                             disc_channels=8, disc_layers=2), data=lgg_two)


pytestmark = pytest.mark.data


def test_a_tiny_adversarial_run_updates_both_networks_and_streams_both_losses(lgg_two, pixel_weights, tmp_path):
    from medviz.models.weights import load_state_dict

    cfg = TrainConfig(device="cpu", epochs=1, batch_size=4, max_steps_per_epoch=3, seed=0)
    task = _gan(lgg_two, pixel_weights)
    torch.manual_seed(cfg.seed)  # the engine builds the model right after seeding with cfg.seed
    start = {k: v.clone() for k, v in task.build_model().state_dict().items()}
    events: list[TrainEvent] = []
    result = train(_gan(lgg_two, pixel_weights), cfg, tmp_path / "run", [events.append])
    end = result.model.state_dict()
    init = load_state_dict(pixel_weights)
    assert all(torch.equal(start[f"generator.{k}"], v) for k, v in init.items())  # it starts from B
    for player in ("generator.", "discriminator."):
        changed = [k for k in end if k.startswith(player) and end[k].is_floating_point()
                   and not torch.equal(end[k], start[k])]
        assert changed, f"the {player[:-1]} was not updated"
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 3
    for e in steps:
        assert {"loss", "generator_loss", "discriminator_loss", "pixel_loss", "adversarial_loss"} <= set(e.metrics)
        assert e.metrics["loss"] == pytest.approx(e.metrics["generator_loss"] + e.metrics["discriminator_loss"], rel=1e-4)
    h = result.history[0]
    assert {"train_generator_loss", "train_discriminator_loss", "val_fid", "val_gan_score", "val_twin_fid"} <= set(h)
    assert result.monitor == "val_gan_score"
    names = {t.name for t in curves_figure(events).data}
    assert {"step generator loss", "step discriminator loss", "train_generator_loss",
            "train_discriminator_loss"} <= names


def test_a_stopped_adversarial_run_resumes_both_networks_exactly(lgg_two, pixel_weights, tmp_path):
    cfg = TrainConfig(device="cpu", epochs=2, batch_size=4, max_steps_per_epoch=3, scheduler="none", seed=1)
    train(_gan(lgg_two, pixel_weights), cfg, tmp_path / "ref")
    stop = threading.Event()
    stopper = lambda e: e.kind == "step" and e.epoch == 1 and e.step == 2 and stop.set()  # noqa: E731
    assert train(_gan(lgg_two, pixel_weights), cfg, tmp_path / "run", [stopper], stop).status == "stopped"
    assert train(_gan(lgg_two, pixel_weights), cfg, tmp_path / "run", resume=True).status == "completed"
    a, b = load_checkpoint(tmp_path / "ref" / LAST), load_checkpoint(tmp_path / "run" / LAST)
    assert any(k.startswith("discriminator.") for k in a["model"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_gan_needs_its_start_weights():
    from medviz.types import MedvizError

    with pytest.raises(MedvizError, match="--init"):
        SuperResTask(SuperResTrainOptions(mode="gan"))
