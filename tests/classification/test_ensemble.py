"""Probability-averaging ensembles assembled from finished runs (``python -m medviz.train --members``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.model_guard import assert_model_untouched


def _train_member(folder, run, seed: int) -> None:
    from medviz.train.cli import main

    assert main(["--task", "classification", "--dataset", "folder", "--data", str(folder), "--arch", "resnet10-tiny",
                 "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--seed", str(seed), "--rotate", "0",
                 "--flip", "none", "--device", "cpu", "--quiet", "--run-dir", str(run), "--out", str(run / "export"),
                 "--name", f"member{seed}"]) == 0


def test_members_assemble_into_a_registered_ensemble(synthetic_folder, tmp_path, monkeypatch):
    from medviz.classification.infer import batch_logits
    from medviz.explain import classifier_target, explain
    from medviz.models.nets import build_network
    from medviz.models.registry import RegistryError
    from medviz.models.weights import load_model, load_state_dict
    from medviz.train.cli import main

    runs = [tmp_path / "m0", tmp_path / "m1"]
    for seed, run in enumerate(runs):
        _train_member(synthetic_folder, run, seed)
    out = tmp_path / "weights"
    # Shipped files are capped in size: make this small ensemble big enough to be split into shards.
    monkeypatch.setattr("medviz.models.weights.MAX_FILE_BYTES", 64 * 1024)
    assert main(["--task", "classification", "--dataset", "folder", "--data", str(synthetic_folder),
                 "--arch", "resnet10-tiny", "--device", "cpu", "--quiet", "--members", *map(str, runs),
                 "--members-note", "two seeds of the tiny recipe", "--class-weights", "none",
                 "--label-smoothing", "0.1", "--out", str(out), "--register", "--name", "ens"]) == 0
    metrics = json.loads((out / "ens.metrics.json").read_text())
    assert metrics["status"] == "assembled" and metrics["history"][0]["assembled_from"] == list(map(str, runs))
    card = (out / "ens.md").read_text()
    assert "Ensemble of 2 MONAI `ResNet`" in card and "two seeds of the tiny recipe" in card
    assert "loss: unweighted cross-entropy, label smoothing 0.1." in card
    shards = json.loads((out / "manifest.json").read_text())["models"][0]["shards"]
    assert len(shards) > 1 and all((out / s["file"]).stat().st_size <= 80 * 1024 for s in shards)
    assert f"Weights in {len(shards)} shards (`ens-00001-of-" in card

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(out))
    model, entry = load_model("ens", device="cpu")  # every shard sha256-checked
    assert entry.raw["file"] == shards[0]["file"] and entry.raw["sha256"] == shards[0]["sha256"]
    assert entry.raw["cam_layer"] == "members.0.layer3,members.1.layer3"
    spec = entry.spec  # the assembled ensemble's export parses into the typed spec
    assert spec.arch.is_ensemble and len(spec.arch.members) == 2 and [s.file for s in spec.shards] == [s["file"] for s in shards]
    assert spec.loss.label_smoothing == 0.1 and len(spec.provenance["members"]) == 2
    # The ensemble's softmax is the mean of its members' softmax (members read from their runs).
    members = []
    for run in runs:
        m = build_network(entry.raw["arch"]["kwargs"]["members"][0])
        m.load_state_dict(load_state_dict(run / "best.safetensors"))
        members.append(m.half().float().eval())  # the shipped ensemble is fp16
    x = np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)
    expected = np.mean([torch.softmax(torch.from_numpy(batch_logits(m, x)), -1).numpy() for m in members], axis=0)
    got = torch.softmax(torch.from_numpy(batch_logits(model, x)), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    cam = assert_model_untouched(  # one map from both members' layers
        model, lambda: explain(model, x[0], entry.raw["cam_layer"], classifier_target(1), "GradCAM"))
    assert cam.shape == (28, 28) and 0.0 <= cam.min() and cam.max() <= 1.0

    with pytest.raises(RegistryError, match="cannot itself be an ensemble"):
        build_network({"name": "Ensemble", "kwargs": {"members": [entry.raw["arch"], entry.raw["arch"]]}})


def test_missing_member_weights_are_a_clear_error(synthetic_folder, tmp_path, capsys):
    from medviz.train.cli import main

    rc = main(["--task", "classification", "--dataset", "folder", "--data", str(synthetic_folder), "--arch",
               "resnet10-tiny", "--device", "cpu", "--quiet", "--members", str(tmp_path), str(tmp_path / "x"),
               "--out", str(tmp_path / "w"), "--name", "ens"])
    assert rc == 2 and "no best.safetensors" in capsys.readouterr().err


def test_ensemble_layers_and_network_are_described_for_people():
    from medviz.explain import describe_layers
    from medviz.models.registry import get_entry
    from medviz.ui.classification import card_summary

    assert describe_layers("layer3") == "Grad-CAM layer `layer3`"
    five = ",".join(f"members.{i}.layer3" for i in range(5))
    assert describe_layers(five) == "Grad-CAM layer `layer3` of each of the 5 ensemble members (maps averaged)"
    assert describe_layers("layer2,layer3") == "Grad-CAM layers `layer2`, `layer3` (maps averaged)"
    entry = get_entry("breast_resnet")  # shipped as a five-member ensemble
    n = len(entry.raw["arch"]["kwargs"]["members"])
    assert f"network: ensemble of {n} MONAI ResNet (resnet18-half)" in card_summary(entry)
