"""Inference, calibration, guardrails and Grad-CAM on a tiny model trained inside the tests."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from medviz.classification.calibration import expected_calibration_error, fit_temperature, nll, softmax
from medviz.classification.infer import predict, predict_tta
from medviz.classification.preprocess import check_input, prepare_input, preprocess_batch, preprocess_image
from medviz.explain import CamMethod, ExplainError, classifier_target, explain, overlay
from medviz.models.specs import ClassifierSpec
from tests.classification.conftest import synthetic_image
from tests.model_guard import assert_model_untouched


def _positives(n=6, seed=11):
    rng = np.random.default_rng(seed)
    return [synthetic_image(rng, True) for _ in range(n)]


def test_probabilities_sum_to_one_and_are_deterministic(tiny):
    model, entry = tiny
    prep = prepare_input(_positives(1)[0], entry.spec)
    a = assert_model_untouched(model, lambda: predict(model, entry.spec, prep.x))
    b = predict(model, entry.spec, prep.x)
    assert a.probs.shape == (2,) and a.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.logits, b.logits)
    tta = assert_model_untouched(model, lambda: predict_tta(model, entry.spec, prep.x))
    assert tta.samples.shape == (len(tta.names), 2) and tta.mean.sum() == pytest.approx(1.0)
    assert np.all(tta.std >= 0) and np.array_equal(tta.samples, predict_tta(model, entry.spec, prep.x).samples)


def test_tiny_model_learned_and_cam_peaks_in_evidence_quadrant(tiny):
    model, entry = tiny
    assert entry.spec.test_metrics["acc"] >= 0.9, entry.spec.test_metrics
    for method in (CamMethod.GRADCAM, CamMethod.GRADCAM_PP, CamMethod.HIRESCAM):
        hits = 0
        for img in _positives():
            x = prepare_input(img, entry.spec).x
            cam = explain(model, x, entry.spec.cam_layer, classifier_target(1), method)
            assert cam.shape == (28, 28) and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1
            quads = [cam[:14, :14].mean(), cam[:14, 14:].mean(), cam[14:, :14].mean(), cam[14:, 14:].mean()]
            peak = np.unravel_index(np.argmax(cam), cam.shape)
            hits += int(np.argmax(quads) == 0 and peak[0] < 14 and peak[1] < 14)
        assert hits >= 5, f"{method}: CAM peaked in the evidence quadrant for only {hits}/6 images"


def test_explanations_leave_shared_model_unchanged(tiny):
    model, entry = tiny
    x = prepare_input(_positives(1)[0], entry.spec).x
    xt = torch.from_numpy(x[None])
    with torch.inference_mode():
        before = model(xt).clone()
    errors = []

    def work(method):
        try:
            explain(model, x, entry.spec.cam_layer, classifier_target(0), method)
            predict_tta(model, entry.spec, x)
        except Exception as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    def concurrent_sessions():
        threads = [threading.Thread(target=work, args=(m,)) for m in ("GradCAM", "HiResCAM", "GradCAM++")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert_model_untouched(model, concurrent_sessions)  # sessions sharing one cached model
    assert not errors
    for method in CamMethod:  # every method, one at a time
        cam = assert_model_untouched(model, lambda m=method: explain(model, x, entry.spec.cam_layer,
                                                                     classifier_target(1), m))
        assert cam.shape == (28, 28)
    model.train()  # a model someone left in train mode is explained in eval mode and left in train mode
    assert_model_untouched(model, lambda: explain(model, x, entry.spec.cam_layer, classifier_target(1)))
    assert model.training
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(xt), before)


def test_explain_errors_are_clear(tiny):
    model, entry = tiny
    x = prepare_input(_positives(1)[0], entry.spec).x
    with pytest.raises(ExplainError, match="no layer 'layer9'"):
        explain(model, x, "layer9", classifier_target(0))
    with pytest.raises(ExplainError, match="Unknown CAM method"):
        explain(model, x, "layer3", classifier_target(0), "ScoreCAM!")
    with pytest.raises(ExplainError, match="class 5 outside"):
        assert_model_untouched(model, lambda: explain(model, x, "layer3", classifier_target(5)))
    with pytest.raises(ExplainError, match="pytorch-grad-cam target"):
        explain(model, x, "layer3", 1)  # a bare class index is not a target
    assert not model.get_submodule("layer3")._forward_hooks


def test_overlay_shapes_and_blank_map():
    img = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    out = overlay(img, np.zeros((28, 28), np.float32), 0.5, "inferno")
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    with pytest.raises(ExplainError):
        overlay(img, np.zeros((28, 28)), 1.5)


def test_temperature_scaling_lowers_nll_and_keeps_argmax():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    logits = rng.normal(0, 1, (400, 3))
    logits[np.arange(400), labels] += 1.5
    logits *= 4.0  # over-confident
    t = fit_temperature(logits, labels)
    assert t > 1.5
    assert nll(logits, labels, t) < nll(logits, labels) - 0.1
    assert np.array_equal(softmax(logits, t).argmax(1), softmax(logits).argmax(1))
    assert expected_calibration_error(softmax(logits, t), labels) < expected_calibration_error(softmax(logits), labels)


def test_shipped_tiny_card_has_calibration_on_val(tiny):
    _, entry = tiny
    spec = ClassifierSpec.from_entry(entry.raw)  # the export's entry parses into the typed spec
    assert spec == entry.spec and spec.input.shape == (1, 28, 28) and spec.from_folder
    val = spec.metrics["val"]
    assert val["nll_calibrated"] <= val["nll"] + 1e-12
    assert spec.temperature > 0 and entry.card_path.exists()


def test_guardrails_warn_on_mismatch(tiny):
    _, entry = tiny
    spec = dataclasses.replace(entry.spec.input, modality="DX", modality_label="chest X-ray")
    ct = np.full((300, 200), -1000.0, np.float32)
    ct[50:100, 50:100] = 400
    warns = " ".join(check_input(ct, spec, "CT", n_slices=30))
    for word in ("Modality CT", "Aspect ratio", "outside the 8-bit range", "3D study", "fine detail"):
        assert word in warns
    rgb = " ".join(check_input(np.zeros((28, 28, 3), np.uint8), spec, None))
    assert "Colour image" in rgb and "blank" in rgb and "Modality unknown" in rgb
    assert check_input(_positives(1)[0], spec, "DX") == []


def test_preprocessing_matches_training_and_leaves_input_alone():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    for batch, ch in ((grey, 1), (grey, 3), (rgb, 3), (rgb, 1)):
        copy = batch.copy()
        fast = preprocess_batch(batch, ch, 28)
        slow = np.stack([preprocess_image(im, ch, 28)[0] for im in batch])
        assert fast.shape == (5, ch, 28, 28) and np.allclose(fast, slow, atol=1e-6)
        assert np.array_equal(batch, copy)
    big, steps = preprocess_image(np.tile(grey[0].astype(np.float32) * 4, (20, 10)), 1, 28)
    assert big.shape == (1, 28, 28) and 0 <= big.min() and big.max() <= 1 and any("crop" in s for s in steps)
