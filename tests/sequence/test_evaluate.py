"""The sequence model's evaluate contract on a small real subset, and the shipped model's numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medviz.evaluate import main as evaluate_main
from tests.lgg_folders import lgg_folder, shipped_splits

pytestmark = pytest.mark.data

KEYS = {"model", "task", "n_patients", "n_slices", "auprc", "auroc", "log_loss", "extent_error", "baselines"}
BASELINES = {"position_prior", "per_slice", "per_slice_smoothed", "segmenter_smoothed"}


def _cases_folder(data_dir: Path, out: Path, n: int) -> Path:
    """An LGG-layout folder of ``n`` test patients without splits.json."""
    return lgg_folder(data_dir, out, {"test": shipped_splits(data_dir)["test"][:n]}, with_splits=False)


@pytest.fixture
def tiny_sequence_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with an untrained tiny sequence model and the shipped segmenter (linked)."""
    import torch

    from medviz.config import get_settings
    from medviz.models.nets import build_network
    from medviz.models.registry import get_entry, sha256_file, upsert_entry
    from medviz.models.weights import save_state_dict
    from medviz.sequence.encoder import FEATURES

    shipped = get_settings().weights_dir
    seg = get_entry("lgg_unet", shipped)
    wd = tmp_path / "weights"
    wd.mkdir()
    os.symlink(shipped / seg.spec.file, wd / seg.spec.file)
    models = json.loads((shipped / "manifest.json").read_text())["models"]
    upsert_entry(next(m for m in models if m["name"] == "lgg_unet"), wd)
    torch.manual_seed(0)
    arch = {"name": "SliceSequenceModel", "kwargs": {"n_features": FEATURES, "hidden": 4, "proj": 4, "dropout": 0.0}}
    path = wd / "tiny_seq.safetensors"
    save_state_dict(build_network(arch), path)
    upsert_entry({"name": "tiny_seq", "task": "sequence", "file": path.name, "sha256": sha256_file(path), "arch": arch,
                  "segmenter": "lgg_unet", "segmenter_sha256": seg.spec.sha256, "lr_flip": True,
                  "position_prior": [0.2] * 10, "per_slice_window": 3, "segmenter_window": 1, "per_slice_c": 0.1}, wd)
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(wd))
    return wd


def test_evaluate_contract_on_a_folder_without_splits(data_dir, tiny_sequence_registry, tmp_path, capsys):
    root = _cases_folder(data_dir, tmp_path / "two", 2)
    assert evaluate_main(["--model", "tiny_seq", "--json", "--data", str(root), "--bootstrap", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out) and out["task"] == "sequence" and out["split"] == "all"
    assert out["n_patients"] == 2 and out["n_slices"] > 20
    assert set(out["baselines"]) == BASELINES
    for b in out["baselines"].values():
        assert {"auprc", "auroc", "log_loss", "extent_error", "gru_minus_baseline"} <= set(b)
        d = b["gru_minus_baseline"]["auprc"]
        assert d["ci95_low"] <= d["difference"] <= d["ci95_high"]
    assert 0 <= out["auprc"] <= 1 and out["log_loss"] > 0
