"""NIfTI image/label pair folders as a segmentation training source (medviz.segmentation.nifti_pairs)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medviz.datasets.lgg import DataLayoutError
from medviz.models.specs import SegmenterSpec, parse_spec
from medviz.segmentation import nifti_pairs

CASES = ("case_a", "case_b", "case_c", "case_d")


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _pair_folder(root: Path, img_dir: str = "images", lbl_dir: str = "labels", shape=(32, 32, 6)) -> Path:
    """4 cases (X, Y, Z) = 32×32×6, 2 mm voxels, RAS affine: noise plus a bright cube labelled 1."""
    rng = np.random.default_rng(0)
    (root / img_dir).mkdir(parents=True)
    (root / lbl_dir).mkdir()
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    for i, case in enumerate(CASES):
        img = rng.normal(100, 10, shape).astype(np.int16)
        lbl = np.zeros(shape, np.uint8)
        x0 = 6 + 3 * i
        lbl[x0:x0 + 10, 8:18, 1:5] = 1
        lbl[2:4, 2:4, 0] = 2  # a second label value
        img[lbl == 1] += 400
        _write(root / img_dir / f"{case}.nii.gz", img, affine)
        _write(root / lbl_dir / f"{case}.nii.gz", lbl, affine)
    return root


def test_reader_returns_matching_lps_slices(tmp_path):
    root = _pair_folder(tmp_path / "d")
    assert nifti_pairs.detect_layout(root) == "nifti"
    assert list(nifti_pairs.find_pairs(root)) == list(CASES)
    image, mask = nifti_pairs.load_case(root, "case_a")
    # RAS (X, Y, Z) file -> LPS+ (Z, Y, X) with a channel axis; intensities unchanged.
    assert image.shape == (6, 32, 32, 1) and mask.shape == (6, 32, 32) and mask.dtype == np.uint8
    raw_img = np.asarray(nib.load(str(root / "images" / "case_a.nii.gz")).dataobj)
    raw_lbl = np.asarray(nib.load(str(root / "labels" / "case_a.nii.gz")).dataobj)
    expected = np.transpose(raw_img, (2, 1, 0))[:, ::-1, ::-1]  # R->L and A->P flips
    np.testing.assert_array_equal(image[..., 0], expected.astype(np.float32))
    np.testing.assert_array_equal(mask, (np.transpose(raw_lbl, (2, 1, 0))[:, ::-1, ::-1] > 0))
    assert mask.sum() == (raw_lbl > 0).sum()
    # the bright cube is where the label is, slice by slice
    assert image[..., 0][mask.astype(bool) & (np.transpose(raw_lbl, (2, 1, 0))[:, ::-1, ::-1] == 1)].min() > 300
    _, only2 = nifti_pairs.load_case(root, "case_a", label_value=2)
    assert only2.sum() == (raw_lbl == 2).sum() == 4


def test_msd_names_and_hash_split(tmp_path):
    root = _pair_folder(tmp_path / "msd", "imagesTr", "labelsTr")
    (root / "imagesTr" / "._case_a.nii.gz").write_bytes(b"junk")  # macOS resource fork: ignored
    train, val = nifti_pairs.cases(root, "train"), nifti_pairs.cases(root, "val")
    assert len(val) == 1 and len(train) == 3 and not set(train) & set(val)
    assert nifti_pairs.cases(root, "val") == val  # deterministic
    assert nifti_pairs.cases(root, "test") == []
    assert "hash split" in nifti_pairs.split_source(root)
    (root / "splits.json").write_text(json.dumps({"train": ["case_a", "case_b"], "val": ["case_c"], "test": ["case_d"]}))
    assert nifti_pairs.cases(root, "test") == ["case_d"]
    (root / "splits.json").write_text(json.dumps({"train": ["nope"], "val": ["case_c"]}))
    with pytest.raises(DataLayoutError, match="nope"):
        nifti_pairs.cases(root, "train")


def test_mismatch_errors_name_the_case(tmp_path):
    root = _pair_folder(tmp_path / "d")
    _write(root / "labels" / "case_b.nii.gz", np.zeros((32, 30, 6), np.uint8), np.diag([2.0, 2.0, 3.0, 1.0]))
    with pytest.raises(DataLayoutError, match=r"case case_b: image .*shape .*\(6, 32, 32\).*\(6, 30, 32\)"):
        nifti_pairs.load_case(root, "case_b")
    _write(root / "labels" / "case_c.nii.gz", np.zeros((32, 32, 6), np.uint8), np.diag([1.0, 2.0, 3.0, 1.0]))
    with pytest.raises(DataLayoutError, match="case case_c: image and label affines differ"):
        nifti_pairs.load_case(root, "case_c")
    (root / "labels" / "case_d.nii.gz").unlink()
    with pytest.raises(DataLayoutError, match="1 image.* without a label, e.g. case_d"):
        nifti_pairs.find_pairs(root)


def test_unknown_layout_lists_accepted_layouts(tmp_path):
    (tmp_path / "x" / "images").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match=r"unknown layout; accepted layouts: pairs.csv.*imagesTr/ \+ labelsTr/"):
        nifti_pairs.detect_layout(tmp_path / "x")


def test_tiny_training_on_nifti_pairs_lowers_loss(tmp_path):
    from medviz.segmentation.train import SegmentationTask, SegmentationTrainOptions
    from medviz.train.engine import TrainConfig, train

    root = _pair_folder(tmp_path / "d")
    options = SegmentationTrainOptions(crop=32, unet_channels=[4, 8], res_units=0, dropout=0.0)
    task = SegmentationTask(options, data=root)
    cfg = TrainConfig(device="cpu", scheduler="none", epochs=2, batch_size=8, lr=0.01, max_steps_per_epoch=4, seed=0)
    result = train(task, cfg, tmp_path / "run")
    s = task.build_data().summary
    assert s["train_cases"] == 3 and s["val_cases"] == 1 and s["in_channels"] == 1
    assert s["train_slices"] == 18 and "hash split" in s["split"]
    assert task.arch()["kwargs"]["in_channels"] == 1
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 2 and losses[-1] < losses[0], losses
    assert 0.0 <= result.history[-1]["val_dice_patient"] <= 1.0


def test_lgg_layout_keeps_three_channels(tmp_path):
    from medviz.segmentation.train import SegmentationTask

    (tmp_path / "pairs.csv").write_text("case_id,slice,image,mask\n")
    task = SegmentationTask(data=tmp_path)
    assert task.layout() == "lgg" and task.arch()["kwargs"]["in_channels"] == 3


@pytest.mark.data
def test_real_totalsegmentator_ct_pair(data_dir, tmp_path):
    src = data_dir / "ct_abdomen_3d_totalsegmentator"
    for f in ("example_ct_sm.nii.gz", "example_seg.nii.gz"):
        if not (src / f).exists():
            pytest.skip(f"{src / f} not found")
    root = tmp_path / "ts"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    os.symlink(src / "example_ct_sm.nii.gz", root / "images" / "example.nii.gz")
    os.symlink(src / "example_seg.nii.gz", root / "labels" / "example.nii.gz")
    image, mask = nifti_pairs.load_case(root, "example")
    assert image.shape == (30, 101, 122, 1) and mask.shape == (30, 101, 122)
    assert image.min() < -500  # HU kept (air), not rescaled
    assert 0 < mask.mean() < 1


def test_nifti_run_exports_evaluates_and_segments(tmp_path, monkeypatch, capsys):
    """A run on single-channel NIfTI pairs goes the whole way: export + card + registry, the
    evaluate contract (default data = the training folder), and inference on a grey Volume."""
    from medviz.evaluate import main as evaluate_main
    from medviz.io import load_path
    from medviz.models.weights import load_model
    from medviz.segmentation.infer import segment_volume
    from medviz.segmentation.train import SegmentationTrainOptions
    from medviz.train.command import RunOptions, TrainCommand, command_line, to_argv
    from medviz.train.engine import TrainConfig, export_model, train

    root = _pair_folder(tmp_path / "d")
    (root / "splits.json").write_text(json.dumps({"train": ["case_a", "case_b"], "val": ["case_c"],
                                                  "test": ["case_d"]}))
    cmd = TrainCommand("segmentation", run=RunOptions(data=root),
                       config=TrainConfig(device="cpu", scheduler="none", epochs=6, batch_size=8, lr=0.02,
                                          max_steps_per_epoch=6, seed=0),
                       options=SegmentationTrainOptions(crop=32, unet_channels=[8, 16, 32], res_units=1, dropout=0.0))
    task = cmd.build_task()
    result = train(task, cmd.config, tmp_path / "run")
    weights = tmp_path / "weights"
    entry = export_model(task, result, weights, "ct_cube", command_line(to_argv(cmd)), register=True)
    assert entry["arch"]["kwargs"]["in_channels"] == 1 and entry["layout"] == "nifti"
    spec = parse_spec(entry)  # what the export wrote parses into the typed spec
    assert isinstance(spec, SegmenterSpec) and spec.in_channels == 1 and spec.layout == "nifti"
    assert (spec.threshold, spec.min_size, spec.tta, spec.data) == (entry["threshold"], entry["min_size"],
                                                                    entry["tta"], str(root.resolve()))
    assert entry["data"] == str(root.resolve()) and entry["classes"] == ["background", "foreground"]
    card = (weights / "ct_cube.md").read_text()
    assert "case_d" in card and "train 2 / val 1 / test 1 cases" in card and "--epochs 6" in card
    assert entry["test_dice_patient"] is not None
    # test-time augmentation is chosen on val together with the post-processing, and the card says so
    assert set(entry["val_dice_by_tta"]) == {"none", "lr_flip"} and entry["tta"] in entry["val_dice_by_tta"]
    assert entry["val_dice_patient"] == pytest.approx(max(entry["val_dice_by_tta"].values()), abs=1e-6)
    assert entry["val_dice_patient"] == pytest.approx(entry["val_dice_by_tta"][entry["tta"]], abs=1e-6)
    assert "Test-time augmentation chosen on val" in card
    from medviz.evaluate import evaluation_report

    report = evaluation_report(task, result, tmp_path / "run", split="val")  # the Training page's report
    assert not report["note"] and [c for c, _ in report["per_case"]] == ["case_c"], report["note"]

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(weights))
    assert evaluate_main(["--model", "ct_cube", "--json", "--device", "cpu", "--bootstrap", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "segmentation" and out["split"] == "test" and list(out["per_patient"]) == ["case_d"]
    assert out["dice_mean_per_patient"] == pytest.approx(entry["test_dice_patient"], abs=1e-6)
    assert out["tta"] == entry["tta"]  # evaluate follows the manifest's choice
    other = "none" if entry["tta"] == "lr_flip" else "lr_flip"
    assert evaluate_main(["--model", "ct_cube", "--json", "--device", "cpu", "--bootstrap", "50", "--tta", other]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == other
    assert out["dice_mean_per_patient"] > 0.5, out  # the bright cube is easy: the run must have learnt it
    (root / "splits.json").unlink()  # a folder without splits is evaluated whole
    assert evaluate_main(["--model", "ct_cube", "--json", "--device", "cpu", "--bootstrap", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["per_patient"]) == list(CASES) and out["split"].startswith("all cases")

    model, e = load_model("ct_cube", device="cpu")
    volume = load_path(root / "images" / "case_d.nii.gz").series[0].volume
    assert volume.array.ndim == 3  # grey volume, as the model expects
    seg = segment_volume(model, volume, e.spec)  # the spec's threshold, min size and TTA
    _, truth = nifti_pairs.load_case(root, "case_d")
    assert seg.mask.shape == truth.shape
    assert [n for n in seg.notes if "left-right mirror" not in n] == []  # grey input as trained: nothing to warn
    assert len(seg.notes) == (e.spec.tta == "lr_flip")  # only the TTA note, when val chose TTA
    inter = (seg.mask.astype(bool) & truth.astype(bool)).sum()
    assert 2 * inter / (seg.mask.sum() + truth.sum()) == pytest.approx(out["per_patient"]["case_d"], abs=1e-6)
    from dataclasses import replace

    rgb = replace(volume, array=np.repeat(volume.array[..., None], 3, axis=-1), units="RGB")
    seg_rgb = segment_volume(model, rgb, e.spec)
    assert any("averaged to one grey channel" in n for n in seg_rgb.notes)
    np.testing.assert_array_equal(seg_rgb.mask, seg.mask)  # grey replicated to RGB and averaged back


def test_skip_test_export_and_init_from_weights(tmp_path):
    """Candidate runs export without scoring the test split; --init starts a run from saved weights."""
    import torch

    from medviz.models.weights import load_state_dict
    from medviz.segmentation.train import SegmentationTask, SegmentationTrainOptions
    from medviz.train.engine import TrainConfig, export_model, train

    root = _pair_folder(tmp_path / "d")
    (root / "splits.json").write_text(json.dumps({"train": ["case_a", "case_b"], "val": ["case_c"],
                                                  "test": ["case_d"]}))
    options = SegmentationTrainOptions(crop=32, unet_channels=[4, 8], res_units=0, skip_test=True)
    cfg = TrainConfig(device="cpu", epochs=1, batch_size=8, max_steps_per_epoch=2)
    task = SegmentationTask(options, data=root)
    entry = export_model(task, train(task, cfg, tmp_path / "run"), tmp_path / "w", "cand", "cmd")
    card = (tmp_path / "w" / "cand.md").read_text()
    assert entry["test_dice_patient"] is None and "Not computed: candidate run exported with `--skip-test`" in card
    weights = tmp_path / "w" / "cand.safetensors"
    again = SegmentationTask(replace(options, init=weights), data=root)
    again.build_data()
    model = again.build_model()
    saved = load_state_dict(weights)
    assert all(torch.equal(v.float(), saved[k]) for k, v in model.state_dict().items() if v.is_floating_point())
