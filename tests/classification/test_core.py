"""Inference, calibration, guardrails and Grad-CAM on a tiny model trained inside the tests."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from medviz.classification.calibration import expected_calibration_error, fit_temperature, nll, softmax
from medviz.classification.preprocess import check_input, prepare_input
from medviz.classification.infer import predict, predict_tta
from medviz.classification.preprocess import preprocess_batch, preprocess_image
from medviz.explain import CamMethod, ExplainError, explain, overlay
from tests.classification.conftest import synthetic_image


def _positives(n=6, seed=11):
    rng = np.random.default_rng(seed)
    return [synthetic_image(rng, True) for _ in range(n)]


def test_probabilities_sum_to_one_and_are_deterministic(tiny):
    model, entry = tiny
    prep = prepare_input(_positives(1)[0], entry.raw)
    a, b = predict(model, entry.raw, prep.x), predict(model, entry.raw, prep.x)
    assert a.probs.shape == (2,) and a.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.logits, b.logits)
    tta = predict_tta(model, entry.raw, prep.x)
    assert tta.samples.shape == (len(tta.names), 2) and tta.mean.sum() == pytest.approx(1.0)
    assert np.all(tta.std >= 0) and np.array_equal(tta.samples, predict_tta(model, entry.raw, prep.x).samples)


def test_tiny_model_learned_and_cam_peaks_in_evidence_quadrant(tiny):
    model, entry = tiny
    assert entry.raw["metrics"]["test"]["acc"] >= 0.9, entry.raw["metrics"]["test"]
    for method in (CamMethod.GRADCAM, CamMethod.GRADCAM_PP, CamMethod.HIRESCAM):
        hits = 0
        for img in _positives():
            x = prepare_input(img, entry.raw).x
            cam = explain(model, x, entry.raw["cam_layer"], 1, method)
            assert cam.shape == (28, 28) and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1
            quads = [cam[:14, :14].mean(), cam[:14, 14:].mean(), cam[14:, :14].mean(), cam[14:, 14:].mean()]
            peak = np.unravel_index(np.argmax(cam), cam.shape)
            hits += int(np.argmax(quads) == 0 and peak[0] < 14 and peak[1] < 14)
        assert hits >= 5, f"{method}: CAM peaked in the evidence quadrant for only {hits}/6 images"


def test_explanations_leave_shared_model_unchanged(tiny):
    model, entry = tiny
    layer = model.get_submodule(entry.raw["cam_layer"])
    x = prepare_input(_positives(1)[0], entry.raw).x
    xt = torch.from_numpy(x[None])
    with torch.inference_mode():
        before = model(xt).clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    errors = []

    def work(method):
        try:
            explain(model, x, entry.raw["cam_layer"], 0, method)
        except Exception as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(m,)) for m in ("GradCAM", "HiResCAM")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    explain(model, x, entry.raw["cam_layer"], 1, "EigenCAM")
    with torch.inference_mode():
        assert torch.equal(model(xt), before)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for m in (layer, model):
        assert not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks


def test_explain_errors_are_clear(tiny):
    model, entry = tiny
    x = prepare_input(_positives(1)[0], entry.raw).x
    with pytest.raises(ExplainError, match="no layer 'layer9'"):
        explain(model, x, "layer9", 0)
    with pytest.raises(ExplainError, match="Unknown CAM method"):
        explain(model, x, "layer3", 0, "ScoreCAM!")
    with pytest.raises(ExplainError, match="class 5 outside"):
        explain(model, x, "layer3", 5)
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
    val = entry.raw["metrics"]["val"]
    assert val["nll_calibrated"] <= val["nll"] + 1e-12
    assert entry.raw["temperature"] > 0 and entry.card_path.exists()


def test_guardrails_warn_on_mismatch(tiny):
    _, entry = tiny
    spec = dict(entry.raw["input"], modality="DX", modality_label="chest X-ray")
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
