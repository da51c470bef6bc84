"""Checksum refusal, evaluation command and the shipped models on real data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medviz.models.registry import RegistryError


def test_sha256_mismatch_is_refused(tiny_weights, tmp_path):
    from medviz.models.weights import load_model

    bad = tmp_path / "weights"
    shutil.copytree(tiny_weights, bad)
    f = bad / "tiny.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="fails its checksum.*refusing to load"):
        load_model("tiny", weights_dir=bad)


@pytest.mark.data
def test_evaluate_command_on_64_breast_test_images(data_dir, capsys):
    from medviz.evaluate import main

    assert main(["--model", "breast_resnet", "--json", "--limit", "64", "--n-boot", "200"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["model"], r["task"], r["split"], r["n"]) == ("breast_resnet", "classification", "test", 64)
    assert 0.7 <= r["auc"] <= 1.0 and 0.6 <= r["acc"] <= 1.0
    assert r["auc_ci95"][0] <= r["auc"] <= r["auc_ci95"][1]
    assert 0 <= r["ece_calibrated"] <= 1 and r["references"][0]["method"] == "ResNet-18 (28)"


@pytest.mark.data
def test_evaluate_accepts_npz_file_and_prints_table(data_dir, capsys):
    from medviz.evaluate import main

    npz = data_dir / "medmnist" / "breastmnist.npz"
    assert main(["--model", "breast_resnet", "--data", str(npz), "--split", "val", "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "split val, n = 78" in out and "ResNet-18 (28)" in out


SHIPPED = ["pneumonia_resnet", "breast_resnet", "retina_resnet"]
#: Known misses of the ResNet-18 (28) bar, kept visible (strict: the test fails once a model clears it).
BELOW_BAR: dict[str, str] = {}


def _evaluate(name):
    from medviz.classification.evaluate import ClassificationEvalOptions, evaluate
    from medviz.models.registry import get_entry

    entry = get_entry(name)
    return entry, evaluate(entry, ClassificationEvalOptions(split="test", n_boot=100, device="cpu"))


@pytest.mark.data
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_reproduce_their_cards(name, data_dir):
    """``python -m medviz.evaluate`` reproduces the registered test metrics from the weights (<= 20 MB)."""
    entry, r = _evaluate(name)
    assert all(path.stat().st_size <= 20 * 2**20 for path, _ in entry.weight_files)
    card = entry.raw["metrics"]["test"]
    assert np.isclose(r["auc"], card["auc"], atol=1e-6) and np.isclose(r["acc"], card["acc"], atol=1e-9)
    assert r["n"] == card["n"] and r["references"][0]["method"] == "ResNet-18 (28)"


@pytest.mark.data
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=BELOW_BAR[n]))
                                  if n in BELOW_BAR else n for n in SHIPPED])
def test_shipped_models_beat_resnet18_28_on_test(name, data_dir):
    """The quality bar: test AUC and ACC both above MedMNIST v2 ResNet-18 (28)."""
    _, r = _evaluate(name)
    assert r["beats_resnet18_28"], (r["auc"], r["acc"], r["references"][0])
