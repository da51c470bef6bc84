"""``python -m medviz.evaluate`` for segmentation on a small real subset (one LGG test patient)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medviz.models.specs import parse_spec

pytestmark = pytest.mark.data


@pytest.fixture
def one_patient(data_dir, tmp_path: Path) -> tuple[Path, str]:
    """An LGG-style folder without splits.json holding one test patient (paths point to the shared data)."""
    from medviz.datasets.lgg import cases, read_pairs

    root = data_dir / "lgg_flair_mri_seg"
    case = cases(root, "test")[0]
    rows = [p for p in read_pairs(root) if p.case_id == case]
    lines = ["case_id,slice,image,mask"] + [f"{p.case_id},{p.slice},{p.image},{p.mask}" for p in rows[::-1]]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    return tmp_path, case


def _run(args: list[str], capsys) -> dict:
    from medviz.evaluate import main

    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_json_contract_on_one_patient(tiny_registry, one_patient, capsys) -> None:
    folder, case = one_patient
    out = _run(["--model", "tiny_seg", "--json", "--data", str(folder), "--split", "test", "--bootstrap", "200"], capsys)
    for key in ("model", "task", "n_patients", "dice_mean_per_patient", "per_patient", "fp_rate_empty_slices",
                "dice_ci95", "published_reference"):
        assert key in out, key
    assert out["model"] == "tiny_seg" and out["task"] == "segmentation"
    assert out["n_patients"] == 1 and list(out["per_patient"]) == [case]
    assert 0.0 <= out["dice_mean_per_patient"] <= 1.0
    assert out["dice_mean_per_patient"] == pytest.approx(out["per_patient"][case])
    assert 0.0 <= out["fp_rate_empty_slices"] <= 1.0 and out["empty_slices"] > 0


def test_shipped_model_on_one_test_patient(one_patient, capsys) -> None:
    from medviz.models.registry import list_models

    if "lgg_unet" not in [e.name for e in list_models(task="segmentation")]:
        pytest.skip("lgg_unet is not registered in weights/ (train it: see weights/lgg_unet.md)")
    folder, case = one_patient
    out = _run(["--model", "lgg_unet", "--json", "--data", str(folder), "--bootstrap", "100"], capsys)
    assert out["n_patients"] == 1
    # sane, not tuned: far above chance on a patient it never saw
    assert out["dice_mean_per_patient"] > 0.3
    assert out["fp_rate_empty_slices"] < 0.5


def test_shipped_model_reproduces_its_card_and_meets_the_bar(data_dir, capsys) -> None:
    """The evaluate command, on the whole test split with the manifest's val-chosen TTA and post-processing,
    gives the registered test Dice, and that is the project's bar (mean per-patient Dice >= 0.80)."""
    from medviz.models.registry import list_models
    from medviz.segmentation.card import QUALITY_BAR

    entries = {e.name: e for e in list_models(task="segmentation")}
    if "lgg_unet" not in entries:
        pytest.skip("lgg_unet is not registered in weights/ (train it: see weights/lgg_unet.md)")
    entry = entries["lgg_unet"]
    assert all(path.stat().st_size <= 20 * 2**20 for path, _ in entry.weight_files)
    out = _run(["--model", "lgg_unet", "--json", "--split", "test", "--bootstrap", "100"], capsys)
    assert out["n_patients"] == 6 and out["tta"] == entry.spec.tta
    assert out["dice_mean_per_patient"] == pytest.approx(entry.spec.provenance["test_dice_patient"], abs=1e-6)
    assert out["dice_mean_per_patient"] >= QUALITY_BAR, out["per_patient"]


def test_bootstrap_and_tuning_are_deterministic() -> None:
    from medviz.segmentation.evaluate import bootstrap_ci, score, tune

    lo, hi = bootstrap_ci([0.7, 0.8, 0.9], n=500)
    assert 0.7 <= lo <= 0.8 <= hi <= 0.9
    assert bootstrap_ci([0.7, 0.8, 0.9], n=500) == (lo, hi)
    prob = np.zeros((4, 16, 16), np.float32)
    truth = np.zeros((4, 16, 16), np.uint8)
    truth[1:3, 4:10, 4:10] = 1
    prob[1:3, 4:10, 4:10] = 0.65
    prob[0, 0, 0] = 0.9  # one false-positive voxel on an empty slice
    preds = {"a": (prob, truth)}
    s = score(preds, 0.5, 0, 0)
    assert s["fp_slices"] == 1 and s["empty_slices"] == 2
    t, m, d = tune(preds)
    assert d == pytest.approx(1.0) and t <= 0.6 and m > 0


def test_lgg_layout_export_chooses_tta_on_val_and_writes_it_into_the_card(data_dir, tmp_path) -> None:
    """A short run on four real LGG patients goes through the LGG export: TTA and post-processing chosen
    on val, test scored once with that choice, and the card states both (the shipped card's generator)."""
    import json as _json

    from medviz.datasets.lgg import cases, read_pairs
    from medviz.segmentation.train import SegmentationTrainOptions
    from medviz.train.command import RunOptions, TrainCommand, command_line, to_argv
    from medviz.train.engine import TrainConfig, export_model, train

    src = data_dir / "lgg_flair_mri_seg"
    split = {"train": cases(src, "train")[:2], "val": cases(src, "val")[:1], "test": cases(src, "test")[:1]}
    keep = {c for v in split.values() for c in v}
    rows = [p for p in read_pairs(src) if p.case_id in keep]
    root = tmp_path / "lgg"
    root.mkdir()
    (root / "pairs.csv").write_text("case_id,slice,image,mask\n" + "".join(
        f"{p.case_id},{p.slice},{p.image},{p.mask}\n" for p in rows))
    (root / "splits.json").write_text(_json.dumps(split))
    cmd = TrainCommand("segmentation", run=RunOptions(data=root),
                       config=TrainConfig(device="cpu", epochs=1, batch_size=4, max_steps_per_epoch=2),
                       options=SegmentationTrainOptions(crop=64, unet_channels=[4, 8], res_units=0))
    task = cmd.build_task()
    entry = export_model(task, train(task, cmd.config, tmp_path / "run"), tmp_path / "w", "lgg_cand",
                         command_line(to_argv(cmd)))
    assert entry["layout"] == "lgg" and entry["tta"] in ("none", "lr_flip")
    spec = parse_spec(entry)  # what the export wrote parses into the typed spec
    assert spec.layout == "lgg" and spec.in_channels == 3 and spec.label_name == "FLAIR abnormality"
    assert entry["val_dice_patient"] == pytest.approx(max(entry["val_dice_by_tta"].values()), abs=1e-9)
    card = (tmp_path / "w" / "lgg_cand.md").read_text()
    assert "Test-time augmentation chosen on val" in card and "lr_flip" in card
    assert ("averaged with their left-right mirror" in card) == (entry["tta"] == "lr_flip")
    assert split["test"][0] in card and entry["test_dice_patient"] is not None
