"""Inference paths: 2D, slice stack and the 3D sliding-window path on synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.explain import ExplainError, explain, segmentation_target
from medviz.segmentation.infer import (
    CAM_LAYER,
    postprocess,
    predict_probs,
    predict_tta,
    segment_volume,
    tta_uncertainty,
)
from medviz.segmentation.preprocess import prepare_input
from medviz.types import Volume, affine_from_spacing
from tests.model_guard import assert_model_untouched
from tests.segmentation.conftest import lgg_like_spec

TINY_CAM_LAYER = "model.1.submodule.2"  # the decoder block of the tiny UNet (its manifest ``cam_layer``)


def _volume(array: np.ndarray, modality: str = "MR") -> Volume:
    return Volume(array=array, spacing=(2.0, 1.0, 1.0), affine=affine_from_spacing((2.0, 1.0, 1.0)),
                  modality=modality, units="RGB" if array.ndim == 4 else "a.u.", orientation="LPS")


def test_sliding_window_equals_stack_on_synthetic_volume(tiny_model, rng) -> None:
    x = rng.random((7, 3, 40, 48)).astype(np.float32)
    p_stack, dev, _ = predict_probs(tiny_model, x, "stack", batch_size=3)
    p_sw, _, _ = predict_probs(tiny_model, x, "sliding_window", batch_size=3)
    assert dev == "cpu"
    assert p_stack.shape == p_sw.shape == (7, 40, 48)
    np.testing.assert_allclose(p_sw, p_stack, atol=1e-5)


def test_sliding_window_tiles_large_slices(tiny_model, rng) -> None:
    x = rng.random((2, 3, 300, 40)).astype(np.float32)  # taller than the 256 tile
    p, _, _ = predict_probs(tiny_model, x, "sliding_window", batch_size=4)
    assert p.shape == (2, 300, 40)
    assert np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1


def test_segment_volume_paths_and_notes(tiny_model, rng) -> None:
    rgb = _volume(rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    r = segment_volume(tiny_model, rgb, lgg_like_spec(), path="sliding_window")
    assert r.mask.shape == (5, 32, 32) and r.mask.dtype == np.uint8 and r.path == "sliding_window"
    assert r.notes == ["No GPU: the sliding window ran and was stitched on the CPU (slower)."]
    single = _volume(rng.random((1, 32, 32)).astype(np.float32), modality="CT")
    r2 = segment_volume(tiny_model, single, lgg_like_spec())
    assert r2.path == "2d" and r2.mask.shape == (1, 32, 32)
    assert any("replicated" in n for n in r2.notes) and any("Modality CT" in n for n in r2.notes)
    assert not tiny_model.training


def test_prepare_input_normalises_per_channel() -> None:
    a = np.zeros((2, 4, 4, 3), np.uint8)
    a[..., 0] = 100
    a[0, 0, 0, 0], a[1, 1, 1, 1] = 200, 50
    x, notes = prepare_input(_volume(a), lgg_like_spec())
    assert x.shape == (2, 3, 4, 4) and x.min() == 0 and x[:, 0].max() == 1 and x[:, 1].max() == 1
    assert x[:, 2].max() == 0  # constant channel -> 0, no division by zero
    assert notes == []


def test_postprocess_removes_small_components() -> None:
    p = np.zeros((3, 20, 20), np.float32)
    p[1, 2:4, 2:4] = 0.9  # 4 voxels
    p[:, 10:15, 10:15] = 0.8  # 75 voxels
    assert postprocess(p, 0.5, 0).sum() == 79
    assert postprocess(p, 0.5, 10).sum() == 75
    assert postprocess(p, 0.85, 0).sum() == 4


def test_tta_and_gradcam_leave_model_unchanged(tiny_model, rng) -> None:
    x = rng.random((2, 3, 32, 32)).astype(np.float32)
    mean, unc = assert_model_untouched(tiny_model, lambda: tta_uncertainty(tiny_model, x))
    assert mean.shape == unc.shape == (2, 32, 32) and 0 <= unc.min() and unc.max() <= 1
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 10:24] = 1
    for m in (mask, np.zeros_like(mask)):  # an empty mask explains the whole slice
        cam = assert_model_untouched(tiny_model, lambda m=m: explain(tiny_model, x[0], TINY_CAM_LAYER,
                                                                     segmentation_target(m)))
        assert cam.shape == (32, 32) and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1
        assert cam.max() > 0
    with pytest.raises(ExplainError, match="no layer 'no.such.layer'"):
        assert_model_untouched(tiny_model, lambda: explain(tiny_model, x[0], "no.such.layer", segmentation_target(mask)))
    with pytest.raises(ExplainError, match="output channel 1 outside 0..0"):
        explain(tiny_model, x[0], TINY_CAM_LAYER, segmentation_target(mask, category=1))
    assert not tiny_model.training


def test_inference_paths_leave_the_shared_model_untouched(tiny_model, rng) -> None:
    x = rng.random((3, 3, 32, 32)).astype(np.float32)
    for path in ("stack", "sliding_window"):
        prob, _, _ = assert_model_untouched(tiny_model, lambda p=path: predict_probs(tiny_model, x, p, batch_size=2))
        assert prob.shape == (3, 32, 32)
        assert_model_untouched(tiny_model, lambda p=path: predict_tta(tiny_model, x, "lr_flip", p, batch_size=2))
    vol = _volume(rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    res = assert_model_untouched(tiny_model, lambda: segment_volume(tiny_model, vol, lgg_like_spec(tta="lr_flip")))
    assert res.mask.shape == (3, 32, 32)


def test_a_model_left_in_train_mode_is_run_in_eval_mode_and_left_as_found(tiny_model, rng) -> None:
    x = rng.random((4, 3, 32, 32)).astype(np.float32)
    expected, _, _ = predict_probs(tiny_model, x, "stack", batch_size=4)
    tiny_model.train()
    prob, _, _ = assert_model_untouched(tiny_model, lambda: predict_probs(tiny_model, x, "stack", batch_size=4))
    assert tiny_model.training
    np.testing.assert_allclose(prob, expected, atol=1e-6)  # batch-norm statistics frozen: eval mode was used


def test_segment_page_cam_map_uses_the_shared_explain_entry(tiny_registry, rng) -> None:
    from medviz.models.weights import load_model
    from medviz.ui.segmentation import cam_map

    model, entry = load_model("tiny_seg")
    vol = _volume(rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    mask = np.zeros((3, 32, 32), np.uint8)
    mask[1, 5:15, 5:15] = 1
    out = assert_model_untouched(model, lambda: cam_map(model, entry, vol, mask, 1))
    x, _ = prepare_input(vol, entry.spec)
    np.testing.assert_array_equal(out[1], explain(model, x[1], TINY_CAM_LAYER, segmentation_target(mask[1])))
    assert out.shape == (3, 32, 32) and not out[0].any() and not out[2].any()


def test_lgg_cam_layer_exists_in_the_shipped_architecture() -> None:
    from medviz.models.nets import build_network
    from medviz.models.registry import get_entry

    build_network(get_entry("lgg_unet").raw["arch"]).get_submodule(CAM_LAYER)  # raises if renamed


def test_out_of_memory_falls_back_to_smaller_batches(tiny_model, rng) -> None:
    import torch

    class Picky(torch.nn.Module):
        """Raises CUDA-style OOM for batches over 2 (simulates a small GPU)."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner(x)

    x = rng.random((5, 3, 32, 32)).astype(np.float32)
    expected, _, _ = predict_probs(tiny_model, x, "stack", batch_size=16)
    for path in ("stack", "sliding_window"):
        prob, _, notes = predict_probs(Picky(tiny_model).eval(), x, path, batch_size=16)
        assert any("batch size reduced to 2" in n for n in notes), notes
        np.testing.assert_allclose(prob, expected, atol=1e-5)


def test_lr_flip_tta_is_the_mean_of_the_slice_and_its_mirror(tiny_model, rng) -> None:
    from medviz.segmentation.preprocess import SegmentationError

    x = rng.random((3, 3, 32, 40)).astype(np.float32)
    plain, _, _ = predict_probs(tiny_model, x, "stack", batch_size=2)
    mirrored, _, _ = predict_probs(tiny_model, np.ascontiguousarray(x[..., ::-1]), "stack", batch_size=2)
    tta, dev, _ = predict_tta(tiny_model, x, "lr_flip", "stack", batch_size=2)
    assert dev == "cpu" and tta.shape == (3, 32, 40) and tta.dtype == np.float32
    np.testing.assert_allclose(tta, (plain + mirrored[..., ::-1]) / 2, atol=1e-6)
    assert np.abs(tta - plain).max() > 1e-4  # the random net is not mirror-symmetric: TTA changes the map
    np.testing.assert_array_equal(predict_tta(tiny_model, x, "none", "stack", 2)[0], plain)
    with pytest.raises(SegmentationError, match="unknown test-time augmentation"):
        predict_tta(tiny_model, x, "rotate90")


def test_segment_volume_follows_the_spec_tta_and_says_so(tiny_model, rng) -> None:
    vol = _volume(rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    spec = lgg_like_spec(tta="lr_flip")
    with_tta = segment_volume(tiny_model, vol, spec)
    assert any("left-right mirror" in n for n in with_tta.notes)
    without = segment_volume(tiny_model, vol, spec, tta="none")
    assert not any("mirror" in n for n in without.notes)
    assert np.abs(with_tta.prob - without.prob).max() > 1e-4
    assert np.array_equal(segment_volume(tiny_model, vol, lgg_like_spec()).prob, without.prob)  # default: no TTA


def test_segment_volume_post_processing_defaults_to_the_spec(tiny_model, rng) -> None:
    vol = _volume(rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    spec = lgg_like_spec(threshold=0.3, min_size=5)
    np.testing.assert_array_equal(segment_volume(tiny_model, vol, spec).mask,
                                  segment_volume(tiny_model, vol, lgg_like_spec(), threshold=0.3, min_size=5).mask)
