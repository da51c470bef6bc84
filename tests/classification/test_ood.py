"""Out-of-distribution detection of the classifiers: the statistics, the threshold rule, the shipped files,
separation on real data, the shared-model guard, ``python -m medviz.predict`` and the manifest field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from medviz.classification import ood
from medviz.classification.calibration import shown_probability
from medviz.classification.ood_data import Family, family_inputs, lgg_images, validation_families
from medviz.classification.preprocess import input_abstain_reasons, is_colourful
from medviz.models import ood_record, ood_stats
from medviz.models.errors import RegistryError
from medviz.models.registry import get_entry, list_models, sha256_file
from medviz.models.specs import parse_spec
from medviz.models.weights import load_model
from tests.model_guard import assert_model_untouched

SHIPPED = ("pneumonia_resnet", "retina_resnet", "breast_resnet", "pneumonia_cxr224")
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@pytest.fixture(autouse=True)
def _shipped_weights(monkeypatch):
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(WEIGHTS))


@pytest.fixture(scope="module")
def pneumonia():
    from medviz.models.weights import load_model

    return load_model("pneumonia_resnet", weights_dir=WEIGHTS)


# ---- statistics (no data) ------------------------------------------------------------------------


def test_threshold_keeps_at_most_five_percent_above_and_is_the_smallest_such():
    rng = np.random.default_rng(0)
    for n in (1, 2, 19, 20, 21, 78, 120, 524):
        v = rng.normal(size=n)
        t = ood_stats.threshold_for(v)
        assert ood_stats.abstention_rate(v, t) <= 0.05
        lower = np.sort(v)[np.sort(v) < t]
        if lower.size:  # any lower threshold would let more than 5 % abstain
            assert ood_stats.abstention_rate(v, lower[-1]) > 0.05


def test_val_threshold_keeps_the_upper_confidence_bound_at_five_percent():
    """The shipped rule: with the val count k above it, the 95 % Clopper-Pearson upper bound of the rate is at
    most 5 %, and one more image above it would break that; below 59 val images (where even 0 of n leaves a
    bound above 5 %) the threshold is the largest val score."""
    from scipy.stats import beta

    rng = np.random.default_rng(7)
    for n in (20, 58, 59, 78, 120, 524, 2000):
        v = rng.normal(size=n)
        t = ood_stats.val_threshold(v)
        k = int(np.sum(v > t))
        assert t in v and k <= 0.05 * n
        if n >= 59:
            assert beta.ppf(0.95, k + 1, n - k) <= 0.05 < beta.ppf(0.95, k + 2, n - k - 1)
            assert ood_stats.upper_bound(k, n) == pytest.approx(beta.ppf(0.95, k + 1, n - k))
        else:
            assert t == v.max()
    assert ood_stats.upper_bound(0, 78) == pytest.approx(1 - 0.05 ** (1 / 78))  # k = 0 has a closed form


def test_the_threshold_sits_in_the_middle_of_the_val_gap_by_hand():
    """The third detectors' rule: midpoint between the val threshold and the lowest 1st percentile of the
    validation OOD families; the val threshold itself when a family reaches below it or there is none."""
    idv = np.arange(100, dtype=float)  # val threshold 98: 1 of 100 above keeps the bound at 4.7 %
    t_val = ood_stats.val_threshold(idv)
    near = np.linspace(200.0, 300.0, 101)  # 1st percentile 201
    far = np.linspace(1000.0, 2000.0, 101)
    t, cp, q = ood_stats.gap_threshold(idv, {"near": near, "far": far})
    assert (cp, q) == (t_val, pytest.approx(201.0)) and t == pytest.approx((t_val + 201.0) / 2)
    assert ood_stats.abstention_rate(idv, t) <= ood_stats.abstention_rate(idv, t_val) <= 0.05
    overlapping = np.linspace(50.0, 60.0, 101)
    assert ood_stats.gap_threshold(idv, {"near": near, "overlap": overlapping})[0] == t_val
    assert ood_stats.gap_threshold(idv, {}) == (t_val, t_val, None)


def test_ledoit_wolf_shrinks_a_rank_deficient_covariance_to_an_invertible_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 40))  # fewer rows than dimensions: the sample covariance is singular
    cov, a = ood_stats.ledoit_wolf(x - x.mean(0))
    assert 0 < a <= 1
    assert np.linalg.eigvalsh(cov).min() > 0
    from sklearn.covariance import ledoit_wolf

    for n, d in ((10, 40), (200, 8), (3000, 5)):  # the same estimate as scikit-learn's
        x = rng.normal(size=(n, d)) * np.arange(1, d + 1)
        x -= x.mean(0)
        ref, ref_a = ledoit_wolf(x, assume_centered=True)
        cov, a = ood_stats.ledoit_wolf(x)
        assert a == pytest.approx(ref_a) and np.allclose(cov, ref)


def test_mahalanobis_and_energy_rank_far_points_higher():
    rng = np.random.default_rng(2)
    train = np.concatenate([rng.normal(0, 1, (200, 8)), rng.normal(4, 1, (200, 8))])
    labels = np.repeat([0, 1], 200)
    means, precision, _ = ood_stats.fit_gaussians(train, labels, 2)
    near, far = rng.normal(0, 1, (50, 8)), rng.normal(12, 1, (50, 8))
    score = ood_stats.mahalanobis_score(np.stack([np.concatenate([near, far])]), means[None], precision[None])
    assert ood_stats.auroc(score[:50], score[50:]) == 1.0
    confident = np.array([[[10.0, 0.0]]])  # large logits: low energy (in distribution)
    flat = np.array([[[0.0, 0.0]]])
    assert ood.energy_score(confident)[0] < ood.energy_score(flat)[0]
    with pytest.raises(ood_stats.OODError):
        ood_stats.fit_gaussians(train, np.zeros(400, int), 2)  # a class without training images


def test_auroc_counts_ties_as_half():
    assert ood_stats.auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert ood_stats.auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    assert ood_stats.auroc(np.array([3.0]), np.array([1.0])) == 0.0


def test_input_checks_that_abstain_on_their_own():
    spec = get_entry("pneumonia_resnet").spec.input
    grey = np.random.default_rng(3).integers(0, 255, (64, 64)).astype(np.uint8)
    assert input_abstain_reasons(grey, spec, "DX") == []
    assert input_abstain_reasons(grey, spec, None) == []  # unknown modality only warns
    assert input_abstain_reasons(grey, spec, "CR") == []  # CR and DX are both radiographs
    assert any("modality MR" in r for r in input_abstain_reasons(grey, spec, "MR"))
    assert any("blank" in r for r in input_abstain_reasons(np.zeros((9, 9), np.uint8), spec, None))
    grey_rgb = np.repeat(grey[..., None], 3, axis=-1)
    assert not is_colourful(grey_rgb) and input_abstain_reasons(grey_rgb, spec, None) == []
    colour = grey_rgb.copy()
    colour[..., 0] = 255 - colour[..., 0]
    assert any("colour image" in r for r in input_abstain_reasons(colour, spec, None))
    retina = get_entry("retina_resnet").spec.input
    assert any("grey image" in r for r in input_abstain_reasons(grey, retina, None))


# ---- the manifest field --------------------------------------------------------------------------


def _entry(name: str) -> dict:
    return copy.deepcopy(get_entry(name).raw)


def test_ood_field_parses_and_older_entries_stay_valid():
    raw = _entry("pneumonia_resnet")
    spec = parse_spec(raw)
    assert spec.ood is not None and spec.ood.score in spec.ood.SCORES and spec.ood.layers
    raw.pop("ood")
    assert parse_spec(raw).ood is None  # an entry written before the field existed


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(treshold=1.0), "unknown key 'ood.treshold'"),
    (lambda o: o.update(score="softmax"), "'ood.score' must be one of"),
    (lambda o: o.pop("sha256"), "missing required key 'ood.sha256'"),
])
def test_bad_ood_field_is_refused(change, message):
    raw = _entry("pneumonia_resnet")
    change(raw["ood"])
    with pytest.raises(RegistryError, match=message):
        parse_spec(raw)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_statistics_match_their_checksum_and_the_threshold_rule(name):
    entry = get_entry(name)
    spec = entry.spec
    assert spec.ood is not None, f"{name} has no OOD statistics"
    path = WEIGHTS / spec.ood.file
    assert sha256_file(path) == spec.ood.sha256
    assert path.stat().st_size <= 20 * 2**20
    stats = ood.load_stats(entry)
    # <= 5 % of the model's own val images above the threshold, and the stored rate is that fraction
    assert ood_stats.abstention_rate(stats.val_scores, stats.threshold) <= ood_stats.MAX_VAL_ABSTENTION
    assert ood_stats.abstention_rate(stats.val_scores, stats.threshold) == pytest.approx(spec.ood.val_abstention)
    # the threshold rule, recomputed from the stored val scores of the model's own images and of every
    # validation OOD family
    from safetensors.numpy import load_file

    families = {k[len("oodval_"):]: v for k, v in load_file(str(path)).items() if k.startswith("oodval_")}
    assert families, f"{name}'s statistics lack the validation OOD family scores"
    t, cp, q = ood_stats.gap_threshold(stats.val_scores, families)
    assert stats.threshold == pytest.approx(t)
    assert (spec.ood.record["val_threshold"], spec.ood.record["ood_val_quantile"]) == (pytest.approx(cp), pytest.approx(q))
    assert spec.ood.record["threshold_rule"] == ood.THRESHOLD_RULE
    assert spec.ood.record["ood_val_abstention"] == {f: pytest.approx(ood_stats.abstention_rate(v, stats.threshold))
                                                     for f, v in families.items()}
    assert len(stats.val_scores) == spec.metrics["val"]["n"]


def test_statistics_failing_their_checksum_are_refused(tmp_path):
    entry = get_entry("pneumonia_resnet")
    (tmp_path / entry.spec.ood.file).write_bytes((WEIGHTS / entry.spec.ood.file).read_bytes()[:-1] + b"\0")
    bad = type(entry)(raw=entry.raw, weights_dir=tmp_path)
    with pytest.raises(ood_stats.OODError, match="checksum"):
        ood.load_stats(bad)


def test_probability_is_called_calibrated_only_where_scaling_lowered_the_test_ece():
    for e in list_models(task="classification"):
        spec = e.spec
        test = spec.test_metrics
        shown = shown_probability(spec.temperature, test)
        if test and spec.temperature != 1.0:
            assert shown.calibrated == (test["ece_calibrated"] < test["ece"])
            assert f"{test['ece_calibrated']:.3f}" in shown.sentence()
    assert not shown_probability(0.59, {"ece": 0.038, "ece_calibrated": 0.058}).calibrated
    assert "worse" in shown_probability(0.59, {"ece": 0.038, "ece_calibrated": 0.058}).sentence()
    assert shown_probability(1.1, {"ece": 0.026, "ece_calibrated": 0.022}).label == "calibrated"


# ---- the model and its guard ---------------------------------------------------------------------


def test_features_come_from_the_final_layer_and_leave_the_shared_model_untouched(tiny):
    import torch

    model, entry = tiny
    x = np.random.default_rng(4).random((5, *entry.spec.input.shape)).astype(np.float32)
    feats, logits = assert_model_untouched(model, lambda: ood.features_and_logits(model, x, ood.feature_layers(entry.spec)))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert feats.shape[:2] == (1, 5) and np.allclose(logits[0], expected, atol=1e-5)


def test_stage_scores_read_every_stage_and_leave_the_shared_model_untouched(tiny):
    """The stage Gaussians on the tiny model's train-like images: the pooled stage outputs have the stages' channel
    counts, the standardised train distances average 0, and images far from training (inverted, noise) score
    higher than the training images themselves."""
    model, entry = tiny
    rng = np.random.default_rng(8)
    x = rng.random((40, *entry.spec.input.shape)).astype(np.float32) * 0.2 + 0.4
    y = np.arange(40) % entry.spec.n_classes
    fitted = assert_model_untouched(model, lambda: ood.fit_stages(model, x, y, entry.spec))
    assert fitted.layers == ood.stage_layers(entry.spec) == ("layer1", "layer2", "layer3", "layer4")
    pooled = assert_model_untouched(model, lambda: ood.stage_features(model, x, fitted.layers))
    assert [f.shape[0] for f in pooled] == [40] * 4 and len({f.shape[1] for f in pooled}) >= 2
    scores = fitted.scores(pooled)
    assert set(scores) == set(ood.STAGE_SCORES)
    assert abs(float(np.mean(scores["mahalanobis_stages"]))) < 1e-3
    far = fitted.scores(ood.stage_features(model, 1.0 - 4 * (x - 0.4), fitted.layers))
    assert np.median(far["mahalanobis_stages"]) > np.max(scores["mahalanobis_stages"])


def test_ensemble_assessment_leaves_the_model_untouched():
    from medviz.classification.preprocess import prepare_input
    from medviz.models.weights import load_model

    model, entry = load_model("breast_resnet", weights_dir=WEIGHTS)
    stats = ood.load_stats(entry)
    image = np.random.default_rng(5).integers(0, 255, (40, 40)).astype(np.uint8)
    prep = prepare_input(image, entry.spec)
    result = assert_model_untouched(model, lambda: ood.assess(model, entry.spec, stats, prep, image, None))
    assert result.score is not None and result.threshold == stats.threshold


# ---- medviz.predict ------------------------------------------------------------------------------


def _predict(capsys, *args: str) -> tuple[int, list[dict]]:
    from medviz.predict import main

    rc = main(["--model", "pneumonia_resnet", *args, "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return rc, lines


def test_predict_abstains_on_a_bundled_ct_slice_and_names_a_missing_file(capsys, tmp_path):
    from pydicom.data import get_testdata_file

    rc, rows = _predict(capsys, get_testdata_file("CT_small.dcm"), str(tmp_path / "missing.png"))
    assert rc == 1 and len(rows) == 2
    ct, missing = rows
    assert set(ct) >= {"file", "model", "abstain", "ood_score", "ood_threshold", "probs", "prediction", "warnings"}
    assert ct["abstain"] is True and ct["prediction"] is None and ct["ood_score"] > ct["ood_threshold"]
    assert any("modality CT" in r for r in ct["abstain_reasons"])
    assert set(ct["probs"]) == {"normal", "pneumonia"} and abs(sum(ct["probs"].values()) - 1) < 1e-6
    assert missing["error"] and "no such file" in missing["error"] and "Error" not in missing["error"]


def test_predict_reads_the_middle_slice_of_a_bundled_nifti(capsys):
    from importlib import resources

    nii = Path(str(resources.files("nibabel").joinpath("tests", "data", "anatomical.nii")))
    rc, (row,) = _predict(capsys, str(nii))
    assert rc == 0 and row["error"] is None
    assert any("one slice of 25" in w for w in row["warnings"])  # a 3D head MR: its middle slice
    assert row["abstain"] is True and row["prediction"] is None and row["prediction_if_shown"] in ("normal", "pneumonia")


@pytest.mark.data
def test_predict_abstains_on_an_lgg_slice_and_answers_on_a_paediatric_chest_xray(capsys, data_dir):
    lgg = data_dir / "lgg_flair_mri_seg" / "images" / "TCGA_CS_4943_20000902_10.png"
    cxr = sorted((data_dir / "cxr_pneumonia_kermany" / "val" / "NORMAL").glob("*.jpg"))[0]
    rc, (brain, chest) = _predict(capsys, str(lgg), str(cxr))
    assert rc == 0
    assert brain["abstain"] is True and brain["prediction"] is None and brain["ood_score"] > brain["ood_threshold"]
    assert chest["error"] is None and chest["ood_score"] < brain["ood_score"]


# ---- real data -----------------------------------------------------------------------------------


@pytest.mark.data
def test_score_separates_fifty_test_images_from_fifty_lgg_slices(pneumonia, data_dir):
    model, entry = pneumonia
    stats = ood.load_stats(entry)
    x_test, _ = ood.split_inputs(entry.spec, "test", data_dir)
    from medviz.classification.ood_data import family_inputs

    lgg = lgg_images(data_dir, "test")[::4][:50]
    x_lgg, reasons = family_inputs(entry.spec, lgg)
    s_in = stats.score_images(model, x_test[:50])
    s_out = stats.score_images(model, x_lgg)
    assert len(s_out) == 50 and ood_stats.auroc(s_in, s_out) >= 0.95
    assert np.mean(s_out > stats.threshold) >= 0.9 and np.mean(s_in > stats.threshold) <= 0.1


@pytest.mark.data
@pytest.mark.parametrize("name", ["pneumonia_resnet", "retina_resnet"])
def test_stored_val_scores_are_what_the_model_computes(name, data_dir):
    from medviz.models.weights import load_model

    model, entry = load_model(name, weights_dir=WEIGHTS)
    stats = ood.load_stats(entry)
    x_val, _ = ood.split_inputs(entry.spec, "val", data_dir)
    scores = stats.score_images(model, x_val)
    assert np.allclose(np.sort(scores), stats.val_scores, rtol=1e-4, atol=1e-4)
    assert np.mean(scores > stats.threshold) <= 0.05


@pytest.mark.data
def test_stored_validation_family_scores_are_what_the_model_computes(data_dir):
    """The threshold rule reads the stored scores of the validation OOD families: they must be the model's
    scores of those families (one family of each shipped 28-px model, the cheapest: RetinaMNIST val or
    BreastMNIST val)."""
    from safetensors.numpy import load_file

    for name, family in (("breast_resnet", "retinamnist"), ("pneumonia_resnet", "breastmnist"),
                         ("retina_resnet", "breastmnist")):
        model, entry = load_model(name, weights_dir=WEIGHTS)
        stats = ood.load_stats(entry)
        images = validation_families(entry.spec, data_dir)[family]
        scores = stats.score_images(model, family_inputs(entry.spec, images)[0])
        stored = load_file(str(ood.stats_path(entry)))[f"oodval_{family}"]
        assert stored.shape == scores.shape
        assert np.allclose(stored, scores, rtol=1e-4, atol=1e-4), name


@pytest.mark.data
def test_ood_evaluation_on_a_small_family_reports_the_bar(pneumonia, data_dir):
    from medviz.classification.ood_eval import evaluate_ood, format_ood_table

    model, entry = pneumonia
    fam = Family("lgg_mri", "LGG slices (subset)", lgg_images(data_dir, "test")[::10])
    result = assert_model_untouched(model, lambda: evaluate_ood(model, entry, data_dir, families=[fam]))
    row = result["families"][0]
    assert row["n"] == len(fam) and 0 <= row["fpr_at_95_tpr"] <= 1 and row["auroc"] >= 0.95
    assert row["abstention"] >= row["abstention_score_only"]
    assert result["in_distribution"]["n"] == 624 and result["in_distribution"]["abstention"] <= 0.1
    assert set(result["bar"]) >= {"met", "failing"}
    assert "lgg_mri" in format_ood_table(result)


def _look(entry, abstention: float) -> dict:
    """A minimal OOD result of ``entry``'s registered detector, as ``evaluate_ood`` returns it."""
    spec = entry.spec
    rates = {"abstention": abstention, "abstention_score_only": abstention, "abstention_input_checks": 0.0}
    return {"model": spec.name, "ood": True, "ood_sha256": spec.ood.sha256, "score": spec.ood.score,
            "threshold": spec.ood.threshold, "val_abstention": spec.ood.val_abstention,
            "in_distribution": {"what": "test split", "n": 100, **rates}, "families": [],
            "pooled": {"n": 10, "auroc": 0.99, "fpr_at_95_tpr": 0.0},
            "bar": {"auroc_min": 0.95, "abstention_min": 0.95, "id_abstention_max": 0.05, "met": abstention <= 0.05,
                    "failing": [] if abstention <= 0.05 else ["test-split abstention"],
                    "families_auroc_below_bar": []}}


def test_a_refitted_detector_keeps_the_earlier_look_and_records_its_own_once(tmp_path):
    """Every test look stays on record: a refitted detector carries the earlier look in ``earlier_tests``, the
    card keeps the earlier section headed as superseded and lists both looks, and a second look at the same
    detector is refused."""
    from medviz.classification.card import OOD_HEADING, OOD_SUPERSEDED, record_ood_test

    entry = get_entry("retina_resnet")
    raw = copy.deepcopy(entry.raw)
    raw["ood"].pop("test", None)
    raw["ood"].pop("earlier_tests", None)
    raw["card"] = "card.md"
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [raw]}))
    (tmp_path / "card.md").write_text("# card\n")
    first = type(entry)(raw=raw, weights_dir=tmp_path)
    record_ood_test(first, _look(first, 0.075))
    recorded = get_entry("retina_resnet", weights_dir=tmp_path)
    assert recorded.spec.ood.record["test"]["test_abstention"] == 0.075
    with pytest.raises(RegistryError, match="already recorded"):
        record_ood_test(recorded, _look(recorded, 0.02))

    refit = copy.deepcopy(recorded.raw)
    refit["ood"].pop("test")
    refit["ood"].update(ood_record.earlier_looks(recorded.spec.ood), threshold=recorded.spec.ood.threshold + 1.0)
    second = type(entry)(raw=refit, weights_dir=tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [refit]}))
    record_ood_test(second, _look(second, 0.02))
    card = (tmp_path / "card.md").read_text()
    assert card.count(f"{OOD_SUPERSEDED}\n") == 1 and card.count(f"{OOD_HEADING}\n") == 1
    assert card.index(OOD_SUPERSEDED) < card.index(f"{OOD_HEADING}\n")
    assert "test-split abstention 7.5%" in card and "this detector's only look" in card
    final = get_entry("retina_resnet", weights_dir=tmp_path).spec.ood.record
    assert final["test"]["test_abstention"] == 0.02 and final["earlier_tests"][0]["test_abstention"] == 0.075


def test_a_refit_that_chooses_the_same_detector_keeps_its_look_and_a_changed_one_moves_it(tmp_path):
    """A refit whose score, threshold, layers and statistics are those already tested keeps the test look
    (it is a function of these alone) and notes the refit in the card; any difference (here the threshold, or
    one Gaussian's shrinkage) moves the look to ``earlier_tests``, so the new detector needs its own."""
    from medviz.classification.card import note_unchanged_refit

    spec = get_entry("breast_resnet").spec
    o = spec.ood
    shrink, rule = list(o.record["shrinkage"]), o.record["criterion"]
    assert rule == ood.CRITERION  # the shipped refit's rule is the one in the code
    same = ood_record.unchanged_detector
    assert o.record.get("test") and same(o, o.score, o.threshold, list(o.layers), shrink, rule)
    assert ood_record.test_looks(o, True)["test"] == o.record["test"]
    assert not same(o, o.score, o.threshold + 1e-9, list(o.layers), shrink, rule)
    assert not same(o, o.score, o.threshold, list(o.layers), [shrink[0] * 2, *shrink[1:]], rule)
    assert not same(o, "mahalanobis_layer1", o.threshold, list(o.layers), shrink, rule)
    assert not same(o, o.score, o.threshold, list(o.layers), shrink, rule + "; and a new input check")
    assert not same(None, o.score, o.threshold, list(o.layers), shrink, rule)
    moved = ood_record.test_looks(o, False)
    assert "test" not in moved and moved["earlier_tests"][-1]["threshold"] == o.threshold
    assert moved["earlier_tests"][-1]["criterion"] == rule

    raw = copy.deepcopy(get_entry("breast_resnet").raw)
    raw["card"] = "card.md"
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [raw]}))
    (tmp_path / "card.md").write_text("# card\n- the look\n")
    note_unchanged_refit(get_entry("breast_resnet", weights_dir=tmp_path), "2030-01-01", "the families grew")
    note_unchanged_refit(get_entry("breast_resnet", weights_dir=tmp_path), "2030-01-02", "the families grew")
    card = (tmp_path / "card.md").read_text()
    assert card.startswith("# card\n- the look\n- 2030-01-01: refitted after the families grew;")
    assert card.count("refitted after") == 1  # the same refit run again is noted once
    assert f"threshold {o.threshold:.4g}" in card and "no new look was taken" in card


@pytest.mark.data
def test_the_lgg_validation_family_is_every_non_test_patient_and_no_test_patient(data_dir):
    """The LGG validation OOD family holds the slices of the 59 train and val patients (the spread between
    patients that 10 val patients did not show) and none of a test patient."""
    from medviz.datasets import lgg

    root = data_dir / "lgg_flair_mri_seg"
    fam = validation_families(get_entry("retina_resnet").spec, data_dir)["lgg_mri"]
    pairs = lgg.read_pairs(root)
    test = set(lgg.cases(root, "test"))
    keep = {p.image.name for p in pairs if p.case_id not in test}
    assert len(set(lgg.cases(root, "train")) | set(lgg.cases(root, "val"))) == 59
    names = [im.source.split(":", 1)[0] for im in fam.images]  # "<file>:<series key>"
    assert sorted(names) == sorted(keep) and len(names) == 2113
    assert not set(names) & {p.image.name for p in pairs if p.case_id in test}


@pytest.mark.data
def test_a_kermany_model_is_scored_on_its_own_patient_split_and_not_chosen_on_its_own_domain(data_dir):
    """The 224-px chest X-ray model: its OOD train/val images are the patient-level halves of the Kermany train/
    folder (the split its card states), its test images the official test split; PneumoniaMNIST (the same
    patients at 28 px) is never a validation OOD family and is reported apart, outside the bar."""
    from medviz.classification import kermany
    from medviz.classification.ood_data import _medmnist

    spec = get_entry("pneumonia_cxr224").spec
    root = kermany.data_root(data_dir)
    rows = kermany.read_labels(root)
    val, labels = ood.split_images(spec, "val", data_dir)
    expected = kermany.split_rows(rows, "val", ood.KERMANY_SPLIT_SEED)
    assert len(val) == len(expected) == len(labels) and all(im.ndim == 2 and im.dtype == np.uint8 for im in val[:5])
    assert labels.tolist() == [r.label for r in expected]
    train_ids = {r.patient_id for r in kermany.split_rows(rows, "train", ood.KERMANY_SPLIT_SEED)}
    assert not train_ids & {r.patient_id for r in expected}
    assert len(ood.split_images(spec, "test", data_dir)[0]) == 624
    choosing = {f.name: f for f in _medmnist(spec, "val", data_dir, choosing=True)}
    reporting = {f.name: f for f in _medmnist(spec, "test", data_dir)}
    assert "pneumoniamnist" not in choosing and {"breastmnist", "retinamnist"} <= set(choosing)
    assert not reporting["pneumoniamnist"].in_bar and reporting["breastmnist"].in_bar
