"""The labels.csv chest X-ray layout: patient-level split, ``--data DIR``, one preprocessing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medviz.classification import kermany
from medviz.classification.data import DataError
from medviz.classification.preprocess import preprocess_image
from medviz.classification.train import ClassificationTask, ClassificationTrainOptions

FIELDS = ["path", "split", "label", "class_name", "subtype", "patient_id", "person_num_in_other_official_split"]


def write_layout(root: Path, rng: np.random.Generator, n_patients: int = 12) -> Path:
    """A tiny folder in the Kermany layout: per split and class, patients with 1-2 images (80x60 px)."""
    from PIL import Image

    rows = []
    for split, n in (("train", n_patients), ("val", 2), ("test", 4)):
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for p in range(n):
                pid = f"{split}-{cls}-{p}"
                for i in range(1 + p % 2):
                    rel = f"{split}/{cls}/{pid}-{i}.jpg"
                    img = np.clip(rng.normal(90 + 60 * label, 25, (60, 80)), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(root / rel)
                    rows.append({"path": rel, "split": split, "label": label, "class_name": cls, "subtype": "none",
                                 "patient_id": pid, "person_num_in_other_official_split": "7" if split == "test" and label and p == 0 else ""})
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return write_layout(tmp_path_factory.mktemp("cxr"), np.random.default_rng(3))


def test_split_is_by_patient_stratified_and_seeded(layout):
    rows = kermany.read_labels(layout)
    a, b = kermany.patient_split(rows, seed=0), kermany.patient_split(rows, seed=0)
    assert a == b
    train_ids, val_ids = {r.patient_id for r in a["train"]}, {r.patient_id for r in a["val"]}
    assert train_ids and val_ids and not train_ids & val_ids
    assert {r.label for r in a["val"]} == {0, 1}
    assert len(a["train"]) + len(a["val"]) == sum(r.split == "train" for r in rows)


@pytest.mark.data
def test_real_split_has_no_patient_on_both_sides(data_dir):
    rows = kermany.read_labels(kermany.data_root())
    parts = kermany.patient_split(rows, seed=0)
    train_ids, val_ids = {r.patient_id for r in parts["train"]}, {r.patient_id for r in parts["val"]}
    assert not train_ids & val_ids
    assert (len(parts["train"]), len(parts["val"])) == (1338, 228)
    test = kermany.split_rows(rows, "test")
    assert len(test) == 624 and sum(r.person_flag for r in test) == 320


def test_data_dir_and_errors(layout, tmp_path):
    part = kermany.load_split("test", 32, layout)
    assert part.x.shape == (len(part.rows), 1, 32, 32) and part.person_flag.sum() == 1
    assert kermany.data_root(layout.parent / layout.name) == layout
    with pytest.raises(DataError, match="labels.csv"):
        kermany.data_root(tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        kermany.split_rows(kermany.read_labels(layout), "extra")


def test_training_uses_the_one_preprocessing(layout):
    task = ClassificationTask(ClassificationTrainOptions(dataset="kermany_cxr", arch="resnet10-tiny", image_size=32),
                              data=layout, seed=0)
    data = task.build_data()
    rows = kermany.split_rows(kermany.read_labels(layout), "train", seed=0)
    expected = preprocess_image(kermany.read_image(layout, rows[0]), 1, 32)[0]
    np.testing.assert_array_equal(data.train[0]["image"], expected)
    np.testing.assert_array_equal(task.split("test")[0], kermany.load_split("test", 32, layout).x)


@pytest.fixture(scope="module")
def cxr_weights(layout, tmp_path_factory) -> Path:
    """A tiny Kermany-layout model trained and exported through ``python -m medviz.train`` (test look included)."""
    from medviz.train.cli import main

    out = tmp_path_factory.mktemp("w")
    rc = main(["--task", "classification", "--dataset", "kermany_cxr", "--data", str(layout), "--arch", "resnet10-tiny",
               "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--flip", "none", "--device", "cpu",
               "--quiet", "--run-dir", str(tmp_path_factory.mktemp("run")), "--out", str(out), "--register",
               "--name", "cxr_tiny"])
    assert rc == 0
    return out


def test_export_records_threshold_test_look_and_card(cxr_weights):
    from medviz.models.registry import get_entry

    spec = get_entry("cxr_tiny", weights_dir=cxr_weights).spec
    assert spec.dataset_key == "kermany_cxr" and spec.input.native_size == 256
    assert 0.0 <= spec.operating_threshold <= 1.0
    test = spec.test_metrics
    assert test["n"] == 12 and {"sensitivity", "specificity", "threshold", "auc_ci95", "subsets", "comparison"} <= set(test)
    assert test["subsets"]["person_flag_only"]["n"] == 1 and test["subsets"]["person_flag_only"]["specificity"] is None
    assert "error" in test["comparison"]["pneumonia_resnet"]  # not registered in this folder
    assert spec.metrics["val"]["official_val"]["n"] == 6
    card = (cxr_weights / "cxr_tiny.md").read_text()
    assert "Test look:" in card and "Youden" in card and "| official val" in card


def test_evaluate_reproduces_the_card_and_page_uses_the_same_input(cxr_weights, layout, monkeypatch, capsys):
    import json

    from medviz.classification.preprocess import prepare_input
    from medviz.evaluate import main
    from medviz.models.registry import get_entry

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(cxr_weights))
    assert main(["--model", "cxr_tiny", "--json", "--data", str(layout)]) == 0
    result = json.loads(capsys.readouterr().out)
    spec = get_entry("cxr_tiny", weights_dir=cxr_weights).spec
    for key in ("auc", "acc", "sensitivity", "specificity", "threshold", "acc_ci95"):
        assert result[key] == pytest.approx(spec.test_metrics[key], abs=1e-9), key
    # the page's prepare_input gives the model exactly the array evaluation gave it
    part = kermany.load_split("test", 32, layout)
    x = prepare_input(kermany.read_image(layout, part.rows[0]), spec).x
    np.testing.assert_array_equal(x, part.x[0])


@pytest.mark.data
def test_shipped_model_evaluation_reproduces_its_card(data_dir, capsys):
    """``python -m medviz.evaluate --model pneumonia_cxr224 --json`` gives the test numbers the card records."""
    import json

    from medviz.evaluate import main
    from medviz.models.registry import get_entry

    spec = get_entry("pneumonia_cxr224").spec
    assert main(["--model", "pneumonia_cxr224", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    card = (Path(__file__).resolve().parents[2] / "weights" / "pneumonia_cxr224.md").read_text()
    assert result["n"] == 624 and result["subsets"]["without_person_flag"]["n"] == 304
    for key in ("auc", "acc", "sensitivity", "specificity", "threshold", "auc_ci95", "sensitivity_ci95"):
        assert result[key] == pytest.approx(spec.test_metrics[key], abs=1e-6), key
    assert f"{result['auc']:.3f}" in card and f"{result['acc']:.3f}" in card
    base = result["comparison"]["pneumonia_resnet"]
    assert base["n"] == 624 and base["auc"] == pytest.approx(spec.test_metrics["comparison"]["pneumonia_resnet"]["auc"])
