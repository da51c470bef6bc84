"""Inference paths: 2D, slice stack and the 3D sliding-window path on synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.segmentation.infer import gradcam_slice, postprocess, predict_probs, segment_volume, tta_uncertainty
from medviz.segmentation.preprocess import prepare_input
from medviz.types import Volume, affine_from_spacing


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
    r = segment_volume(tiny_model, rgb, path="sliding_window")
    assert r.mask.shape == (5, 32, 32) and r.mask.dtype == np.uint8 and r.path == "sliding_window"
    assert r.notes == ["No GPU: the sliding window ran and was stitched on the CPU (slower)."]
    single = _volume(rng.random((1, 32, 32)).astype(np.float32), modality="CT")
    r2 = segment_volume(tiny_model, single)
    assert r2.path == "2d" and r2.mask.shape == (1, 32, 32)
    assert any("replicated" in n for n in r2.notes) and any("Modality CT" in n for n in r2.notes)
    assert not tiny_model.training


def test_prepare_input_normalises_per_channel() -> None:
    a = np.zeros((2, 4, 4, 3), np.uint8)
    a[..., 0] = 100
    a[0, 0, 0, 0], a[1, 1, 1, 1] = 200, 50
    x, notes = prepare_input(_volume(a))
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
    mean, unc = tta_uncertainty(tiny_model, x)
    assert mean.shape == unc.shape == (2, 32, 32) and 0 <= unc.min() and unc.max() <= 1
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cam = gradcam_slice(tiny_model, x[0], np.ones((32, 32)), layer="model.1.submodule.2")
    assert cam.shape == (32, 32) and 0 <= cam.min() and cam.max() <= 1
    assert not tiny_model.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in tiny_model.modules())
    for k, v in tiny_model.state_dict().items():
        assert (v == before[k]).all(), k
    with pytest.raises(Exception, match="not found"):
        gradcam_slice(tiny_model, x[0], np.ones((32, 32)), layer="no.such.layer")


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
    from medviz.segmentation.infer import predict_tta

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


def test_segment_volume_follows_the_entry_tta_and_says_so(tiny_model, rng) -> None:
    vol = _volume(rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    entry = {"tta": "lr_flip"}
    with_tta = segment_volume(tiny_model, vol, entry=entry)
    assert any("left-right mirror" in n for n in with_tta.notes)
    without = segment_volume(tiny_model, vol, entry=entry, tta="none")
    assert not any("mirror" in n for n in without.notes)
    assert np.abs(with_tta.prob - without.prob).max() > 1e-4
    assert np.array_equal(segment_volume(tiny_model, vol).prob, without.prob)  # no entry: no TTA
