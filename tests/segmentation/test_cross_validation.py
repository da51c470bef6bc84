"""Patient-level cross-validation of the LGG segmenter: folds, the fold ensemble, and its export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medviz.models import weights
from medviz.models.nets import build_network
from medviz.models.registry import RegistryError
from medviz.models.specs import parse_spec
from medviz.segmentation.folds import FoldError, fold_pool, fold_split, folds_of, patient_folds
from medviz.segmentation.infer import postprocess
from tests.lgg_folders import lgg_folder, shipped_splits

TINY_UNET = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "channels": [4, 8],
                                        "strides": [2], "num_res_units": 0}}


@pytest.mark.parametrize("n, k", [(59, 5), (10, 3), (4, 4), (7, 2)])
def test_folds_are_disjoint_by_patient_cover_every_case_once_and_are_reproducible(n, k):
    ids = [f"P{i:03d}" for i in range(n)]
    folds = patient_folds(ids, k, seed=3)
    flat = [c for f in folds for c in f]
    assert sorted(flat) == ids and len(flat) == len(set(flat))  # each case in exactly one fold
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert patient_folds(list(reversed(ids)), k, seed=3) == folds  # the input order does not matter
    assert patient_folds(ids, k, seed=4) != folds or n == k


def test_too_few_cases_or_a_fold_out_of_range_is_refused(tmp_path):
    with pytest.raises(FoldError, match="at least k cases"):
        patient_folds(["a", "b"], 3)
    with pytest.raises(FoldError, match="k >= 2"):
        patient_folds(["a", "b"], 1)


def test_the_shared_folders_folds_pool_train_and_val_and_never_hold_a_test_patient(data_dir):
    root = data_dir / "lgg_flair_mri_seg"
    splits = shipped_splits(data_dir)
    pool = fold_pool(root)
    assert set(pool) == set(splits["train"]) | set(splits["val"]) and len(pool) == 59
    folds = folds_of(root, 5)
    assert sorted(c for f in folds for c in f) == sorted(pool) and not set(splits["test"]) & set(pool)
    for i in range(5):
        s = fold_split(root, 5, i)
        assert s["val"] == folds[i] and not set(s["train"]) & set(s["val"])
        assert sorted(s["train"] + s["val"]) == sorted(pool)
    with pytest.raises(FoldError, match="not one of 0..4"):
        fold_split(root, 5, 5)


def test_the_segmentation_ensemble_is_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    model = build_network({"name": "Ensemble", "kwargs": {"members": [TINY_UNET] * 3, "activation": "sigmoid"}}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        mean = torch.stack([torch.sigmoid(m(x)) for m in model.members]).mean(dim=0)
        assert torch.allclose(torch.sigmoid(model(x)), mean, atol=1e-6)
        assert not torch.allclose(torch.sigmoid(model.members[0](x)), mean, atol=1e-4)  # members differ
    with pytest.raises(RegistryError, match="activation"):
        build_network({"name": "Ensemble", "kwargs": {"members": [TINY_UNET] * 2, "activation": "tanh"}})


@pytest.mark.parametrize("min_size", [20, 50, 100, 200])
def test_post_processing_keeps_a_small_lesion_above_the_chosen_size_and_drops_one_below(min_size):
    prob = np.zeros((3, 64, 64), np.float32)
    side = int(np.ceil(np.sqrt(min_size + 1)))
    prob[1, 5:5 + side, 5:5 + side] = 0.9  # a lesion of side² >= min_size + 1 voxels on one slice
    prob[1, 40:42, 40:42] = 0.9  # 4 voxels: below every size tried
    mask = postprocess(prob, 0.5, min_size)
    assert mask[1, 5:5 + side, 5:5 + side].all() and not mask[1, 40:42, 40:42].any()
    assert int(mask.sum()) == side * side


def test_fold_runs_never_touch_test_and_their_ensemble_is_chosen_out_of_fold(data_dir, tmp_path, monkeypatch):
    from medviz.segmentation.train import SegmentationTrainOptions
    from medviz.train.command import RunOptions, TrainCommand, command_line, to_argv
    from medviz.train.engine import TrainConfig, export_model, train

    splits = shipped_splits(data_dir)
    keep = {"train": splits["train"][:3], "val": splits["val"][:1], "test": splits["test"][:1]}
    root = lgg_folder(data_dir, tmp_path / "lgg", keep)
    config = TrainConfig(device="cpu", epochs=1, batch_size=4, max_steps_per_epoch=2)
    small = dict(crop=64, unet_channels=[4, 8], res_units=0, folds=2, fold_seed=1)
    runs = []
    for fold in (0, 1):
        cmd = TrainCommand("segmentation", run=RunOptions(data=root), config=config,
                           options=SegmentationTrainOptions(fold=fold, **small))
        task = cmd.build_task()
        assert sorted(task.split_cases("val")) == folds_of(root, 2, 1)[fold]
        run = tmp_path / f"fold{fold}"
        entry = export_model(task, train(task, cmd.config, run), tmp_path / "w", f"fold{fold}", command_line(to_argv(cmd)))
        assert entry["test_dice_patient"] is None and entry["cv"] == {"folds": 2, "fold_seed": 1, "pool": 4, "fold": fold}
        assert keep["test"][0] not in (tmp_path / "w" / f"fold{fold}.md").read_text()
        runs.append(run)
    cmd = TrainCommand("segmentation", run=RunOptions(data=root), config=config,
                       options=SegmentationTrainOptions(members=runs, members_note="two 2-step runs", **small))
    task = cmd.build_task()
    result = task.assembled_result()
    assert result.status == "assembled" and len(result.model.members) == 2
    monkeypatch.setattr(weights, "MAX_FILE_BYTES", 1_000)  # shard it, as a 5-member LGG ensemble is sharded
    entry = export_model(task, result, tmp_path / "w", "cv_ens", command_line(to_argv(cmd)), register=True)
    assert len(entry["shards"]) > 1 and not (tmp_path / "w" / "cv_ens.safetensors").exists()
    shipped, _ = weights.load_model("cv_ens", weights_dir=tmp_path / "w")  # sha256 of every shard checked
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(shipped(x), result.model.float()(x), atol=2e-2)  # fp16 or fp32 copy of it
    spec = parse_spec(entry)
    assert spec.arch.name == "Ensemble" and spec.arch.kwargs["activation"] == "sigmoid"
    assert spec.cam_layer.count("members.") == 2
    cv = entry["cv"]
    assert cv["n_patients"] == 4 and sorted(cv["per_patient"]) == sorted(keep["train"] + keep["val"])
    assert [f["n_patients"] for f in cv["per_fold"]] == [2, 2]
    assert entry["val_dice_patient"] == pytest.approx(cv["dice_mean_per_patient"], abs=0.002)
    assert entry["test_dice_patient"] is not None  # the ensemble's one test look
    card = (tmp_path / "w" / "cv_ens.md").read_text()
    assert "## Cross-validation" in card and "out-of-fold" in card and "two 2-step runs" in card
    assert "train 3 / val 1 / test 1 patients" in card and keep["test"][0] in card
    json.dumps(entry)  # the manifest entry is plain JSON


def test_a_fold_ensemble_segments_a_volume_and_explains_it_through_every_member(tmp_path):
    from medviz.models.specs import SegmenterSpec
    from medviz.segmentation.infer import segment_volume
    from medviz.types import Volume, affine_from_spacing
    from medviz.ui.segmentation import cam_map
    from tests.model_guard import assert_model_untouched

    torch.manual_seed(0)
    arch = {"name": "Ensemble", "kwargs": {"members": [TINY_UNET] * 2, "activation": "sigmoid"}}
    spec = SegmenterSpec.from_entry({"name": "ens", "task": "segmentation", "file": "ens.safetensors", "arch": arch,
                                     "cam_layer": "members.0.model.1.submodule,members.1.model.1.submodule"})
    assert spec.in_channels == 3 and spec.network_kwargs["strides"] == [2]
    model = build_network(arch).eval()
    rng = np.random.default_rng(0)
    vol = Volume(array=rng.integers(0, 255, (3, 32, 32, 3)).astype(np.uint8), spacing=(1.0, 1.0, 1.0),
                 affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="MR", units="RGB")
    result = assert_model_untouched(model, lambda: segment_volume(model, vol, spec))
    cam = assert_model_untouched(model, lambda: cam_map(model, type("E", (), {"spec": spec})(), vol, result.mask, 1))
    assert result.prob.shape == (3, 32, 32) and cam.shape == (3, 32, 32) and np.isfinite(cam).all()
