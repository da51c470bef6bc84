"""The sequence model's out-of-distribution detector: the stack rule, the input check, the padding of slices of
any size, the shipped statistics, the test-look contract and the Segment page's abstention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medviz.models import ood_stats
from medviz.models.registry import get_entry, sha256_file
from medviz.sequence import ood
from medviz.sequence.encoder import pad_to_multiple, slice_features, total_stride
from tests.strip_app import read_all_slices

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@pytest.fixture(autouse=True)
def _shipped_weights(monkeypatch):
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(WEIGHTS))


def _stats(threshold: float = 3.0) -> ood.SequenceOOD:
    """A detector over the 256 bottleneck means: class means 0 and 1, identity precision."""
    d = 256
    return ood.SequenceOOD("mahalanobis_mean", threshold, np.stack([np.zeros(d), np.ones(d) / 16]), np.eye(d),
                           np.sort(np.linspace(0.5, 2.5, 50)), 0.0)


def _features(n: int, offset: float) -> np.ndarray:
    f = np.zeros((n, 514), np.float32)
    f[:, :256] = offset / 16.0  # distance to the mean 0: offset (256 * (offset/16)^2 = offset^2)
    return f


def test_a_stack_abstains_when_more_than_half_of_its_slices_are_unfamiliar():
    assert not ood.stack_abstains(np.array([1.0, 5.0, 1.0]), 3.0)
    assert ood.stack_abstains(np.array([1.0, 5.0, 5.0]), 3.0)
    assert not ood.stack_abstains(np.array([3.0, 3.0]), 3.0)  # at the threshold: answered
    # the rule is the median: of an even count, half above abstains when the middle two average above it
    assert ood.stack_abstains(np.array([1.0, 1.0, 7.0, 7.0]), 3.0)
    assert not ood.stack_abstains(np.array([1.0, 1.0, 4.0, 4.0]), 3.0)

    stats = _stats()
    near = ood.assess(stats, _features(10, 0.5), "MR")
    assert not near.abstain and near.fraction_above == 0.0 and near.slice_scores.shape == (10,)
    far = ood.assess(stats, np.concatenate([_features(6, 10.0), _features(4, 0.5)]), "MR")
    assert far.abstain and far.fraction_above == pytest.approx(0.6)
    assert "60% of its slices score above the threshold 3" in far.reasons[0]
    assert far.val_range == (0.5, pytest.approx(1.5), 2.5)


def test_a_declared_modality_other_than_mr_abstains_on_its_own():
    stats = _stats()
    ct = ood.assess(stats, _features(5, 0.5), "CT")
    assert ct.abstain and ct.reasons == ["its modality CT is not the model's (brain MR)"]
    assert not ood.assess(stats, _features(5, 0.5), "OT").abstain  # unknown (NIfTI, PNG): the score decides
    assert not ood.assess(stats, _features(5, 0.5), None).abstain


def test_slices_of_any_size_are_padded_to_the_unet_stride_and_read_unpadded():
    import torch

    from medviz.models.nets import build_network

    torch.manual_seed(0)
    unet = build_network({"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1,
                                                     "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1}})
    assert total_stride(unet) == 4
    x = np.random.default_rng(0).random((3, 3, 30, 22), dtype=np.float32)
    padded, (top, left) = pad_to_multiple(x, 4)
    assert padded.shape == (3, 3, 32, 24) and (top, left) == (1, 1)
    assert np.array_equal(padded[..., 1:31, 1:23], x) and padded[..., 0, :].max() == 0
    f = slice_features(unet, x, lr_flip=False)  # 30 x 22 failed in the UNet's skip connections before
    assert f.shape == (3, 2 * 16 + 2) and np.isfinite(f).all()
    with torch.no_grad():  # the probability features read the original area of the padded slice, not the padding
        prob = torch.sigmoid(unet.eval()(torch.from_numpy(padded)))[:, 0].numpy()
    inner = prob[:, 1:31, 1:23]
    assert np.allclose(f[:, -2], inner.max(axis=(1, 2)), atol=1e-6)
    assert np.allclose(f[:, -1], (inner > 0.5).mean(axis=(1, 2)), atol=1e-6)
    assert np.array_equal(pad_to_multiple(padded, 4)[0], padded)


def test_the_sequence_entry_records_its_detector_and_every_test_look():
    spec = get_entry("lgg_slice_gru").spec
    o = spec.ood
    assert o is not None and o.score in ood.SCORES and o.score in o.SCORES
    assert o.record["test"]["command"].endswith("--ood --json")
    assert len(o.record["earlier_tests"]) == 1 and not o.record["earlier_tests"][0]["bar_met"]
    assert "declared modality is not MR" in o.record["criterion"]
    assert sha256_file(WEIGHTS / o.file) == o.sha256


@pytest.mark.data
def test_shipped_statistics_are_the_models_val_scores_and_place_the_threshold(data_dir):
    """The stored val-slice scores are what the model computes on the val stacks; the threshold follows from the
    stored scores by the gap rule; no val stack abstains."""
    from safetensors.numpy import load_file

    from medviz.sequence.infer import load_models

    entry = get_entry("lgg_slice_gru")
    stats = ood.load_stats(entry)
    _, segmenter, _ = load_models("lgg_slice_gru")
    feats, _ = ood.split_features(segmenter, entry.spec.lr_flip, ood.lgg_root(data_dir), "val")
    per_stack = [stats.slice_scores(f) for f in feats]
    assert np.allclose(np.sort(np.concatenate(per_stack)), stats.val_scores, rtol=1e-4, atol=1e-4)
    arrays = load_file(str(WEIGHTS / entry.spec.ood.file))
    fams = {k[len("oodval_"):]: v for k, v in arrays.items() if k.startswith("oodval_")}
    assert set(fams) == set(ood.VALIDATION_FAMILIES)
    t, cp, q = ood_stats.gap_threshold(stats.val_scores, fams)
    assert t == pytest.approx(stats.threshold) and cp < t < q
    assert not any(ood.stack_abstains(s, stats.threshold) for s in per_stack)
    chosen_on = [path for _, paths in ood.VALIDATION_FAMILIES.values() for path in paths]
    looked_at = [path for _, paths in ood.EVALUATION_FAMILIES.values() for path in paths]
    assert not [(a, b) for a in chosen_on for b in looked_at if a.startswith(b) or b.startswith(a)]
    o = entry.spec.ood  # the manifest's rates are those of the stored scores
    assert o.record["val_slice_abstention"] == pytest.approx(ood_stats.abstention_rate(stats.val_scores, t))
    assert o.record["ood_val_abstention"] == {f: pytest.approx(ood_stats.abstention_rate(v, t)) for f, v in fams.items()}
    assert o.val_abstention == np.mean([ood.stack_abstains(s, t) for s in per_stack])


@pytest.mark.data
def test_the_ood_evaluation_contract_on_one_small_family(data_dir):
    result = ood.evaluate_ood(get_entry("lgg_slice_gru"), data_dir,
                              families={"ct_liver": ood.EVALUATION_FAMILIES["ct_liver"]})
    idr, (row,) = result["in_distribution"], result["families"]
    assert idr["n_stacks"] == 6 and idr["n_slices"] == 220 and idr["stacks_abstaining"] == 0
    assert row["n_stacks"] == 1 and row["n_slices"] == 3 and row["stacks_abstaining"] == 1 and row["auroc"] >= 0.95
    assert row["stacks_abstaining_score_only"] == 1 and row["slice_abstention"] == 1.0  # by its score, not only CT
    assert result["bar"]["met"] and "ct_liver" in ood.format_ood_table(result)


@pytest.mark.data
def test_the_segment_page_abstains_on_a_ct_series_and_shows_it_only_when_asked(data_dir):
    from medviz.io.loader import load_path
    from medviz.ui.sequence import strip_key

    at, charts = read_all_slices(load_path(data_dir / "dicom_series_ct_totalsegmentator").series[0].volume, 600)
    assert any("The sequence model abstains" in e.value and "modality CT" in e.value for e in at.error)
    assert len(at.get("plotly_chart")) == charts + 1, "the strip is drawn although the model abstains"
    score_chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert score_chart["data"][0]["name"] == "this stack"
    assert score_chart["layout"]["yaxis"]["title"]["text"] == "mahalanobis_mean score"
    token = at.session_state["medviz.viewer.token"]
    at.toggle(key=f"{strip_key(token)}.show_anyway").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == charts + 2  # the score figure and the strip
    assert any("(shown anyway)" in c.value for c in at.caption)


def test_a_fit_that_does_not_register_may_not_overwrite_the_registered_statistics(tmp_path):
    from medviz.models.ood_record import stats_out_dir
    from medviz.models.ood_stats import OODError

    with pytest.raises(OODError, match="another folder"):
        stats_out_dir(None, False, WEIGHTS)
    assert stats_out_dir(tmp_path, False, WEIGHTS) == tmp_path and stats_out_dir(None, True, WEIGHTS) == WEIGHTS


def test_the_command_refuses_a_second_look_and_a_look_of_another_model_in_words(tmp_path, capsys):
    spec = get_entry("lgg_slice_gru").spec
    look = {"model": "lgg_slice_gru", "ood": True, "ood_sha256": spec.ood.sha256}
    path = tmp_path / "result.json"
    for result, words in ((look, "already recorded"), ({**look, "model": "retina_resnet"}, "not an OOD evaluation")):
        path.write_text(json.dumps(result))
        assert ood.main(["--model", "lgg_slice_gru", "--card", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "Error" not in err
