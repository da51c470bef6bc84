"""The shared-model runtime (``using``, the OOM ladder) and the test helper that every task's tests use."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
import torch

from medviz.models import runtime
from medviz.models.runtime import model_lock, run_with_oom_fallback, using
from tests.model_guard import assert_model_untouched

CAM_LAYER = "model.1.submodule.2"  # decoder block of the tiny UNet below


def _unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1, norm="batch").eval()


def _resnet() -> torch.nn.Module:
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=2, n_input_channels=1, num_classes=2).eval()


def _x(shape=(1, 1, 32, 32)) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).random(shape, dtype=np.float32))


def _modes(model):
    return {n: m.training for n, m in model.named_modules()}


def _old_segmentation_gradcam(model, x_slice: np.ndarray, mask2d: np.ndarray, layer: str) -> np.ndarray:
    """The removed ``medviz.segmentation.infer.gradcam_slice``: eval_mode + enable_grad, no requires_grad guard."""
    from monai.networks.utils import eval_mode
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    t = torch.from_numpy(np.ascontiguousarray(x_slice[None], dtype=np.float32))
    with eval_mode(model), torch.enable_grad():
        with GradCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
            out = cam(input_tensor=t, targets=[SemanticSegmentationTarget(0, mask2d.astype(np.float32))])
    return np.nan_to_num(out[0].astype(np.float32))


# --- the helper must be able to fail ---------------------------------------------------------------

def test_helper_fails_on_the_old_unguarded_segmentation_gradcam():
    model = _unet()
    x = _x()[0].numpy()
    with pytest.raises(AssertionError, match=r"\.grad left on"):
        assert_model_untouched(model, lambda: _old_segmentation_gradcam(model, x, np.ones((32, 32)), CAM_LAYER))


def test_helper_passes_on_the_shared_explain_entry():
    from medviz.explain import explain, segmentation_target

    model = _unet()
    x = _x()[0].numpy()
    cam = assert_model_untouched(model, lambda: explain(model, x, CAM_LAYER, segmentation_target(np.ones((32, 32)))))
    assert cam.shape == (32, 32) and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1


@pytest.mark.parametrize("damage", ["weights", "buffer", "train_mode", "submodule_mode", "flag", "forward_hook",
                                    "pre_hook", "backward_hook", "tensor_hook", "thread"])
def test_helper_detects_each_kind_of_damage(damage):
    model = _resnet()
    stop = threading.Event()

    def harm():
        if damage == "weights":
            with torch.no_grad():
                next(model.parameters()).add_(1e-3)
        elif damage == "buffer":
            next(b for n, b in model.named_buffers() if "running_mean" in n).add_(1.0)
        elif damage == "train_mode":
            model.train()
        elif damage == "submodule_mode":
            model.layer1.train()
        elif damage == "flag":
            next(model.parameters()).requires_grad_(False)
        elif damage == "forward_hook":
            model.layer2.register_forward_hook(lambda *a: None)
        elif damage == "pre_hook":
            model.register_forward_pre_hook(lambda *a: None)
        elif damage == "backward_hook":
            model.fc.register_full_backward_hook(lambda *a: None)
        elif damage == "tensor_hook":
            next(model.parameters()).register_hook(lambda g: g)
        elif damage == "thread":
            threading.Thread(target=stop.wait, daemon=True).start()

    try:
        with pytest.raises(AssertionError):
            assert_model_untouched(model, harm, thread_grace_s=0.1)
    finally:
        stop.set()


# --- using ----------------------------------------------------------------------------------------

def test_using_restores_modes_flags_and_grads_after_an_exception():
    model = _resnet()
    model.train()
    model.layer2.eval()  # a mixed state must come back exactly
    first = next(model.parameters())
    first.requires_grad_(False)
    modes, flags = _modes(model), [p.requires_grad for p in model.parameters()]
    for grad in (False, True):
        with pytest.raises(RuntimeError, match="boom"):
            with using(model, grad=grad) as m:
                assert m is model and not any(mod.training for mod in model.modules())
                assert torch.is_inference_mode_enabled() is (not grad)
                if grad:
                    assert not any(p.requires_grad for p in model.parameters())
                    model.fc.weight.grad = torch.ones_like(model.fc.weight)  # a .grad that appears is cleared
                raise RuntimeError("boom")
        assert _modes(model) == modes
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())


def test_using_without_grad_builds_no_graph_and_with_grad_reaches_the_input_only():
    model = _resnet()
    x = _x().requires_grad_(True)
    with using(model) as m:
        y = m(x)
    assert y.grad_fn is None and not y.requires_grad
    with using(model, grad=True) as m:
        y = m(x)
        assert y.requires_grad
        y[0, 1].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_using_keeps_a_gradient_that_was_there_before():
    model = _resnet()
    g = torch.full_like(model.fc.bias, 3.0)
    model.fc.bias.grad = g
    with using(model, grad=True) as m:
        m.zero_grad()  # what pytorch-grad-cam does
    assert model.fc.bias.grad is g


def test_using_is_reentrant_and_each_level_restores_its_own_state():
    model = _resnet().train()
    with using(model, grad=True) as outer:
        with using(outer) as inner:
            assert inner is model and not model.training and torch.is_inference_mode_enabled()
        assert not model.training and not torch.is_inference_mode_enabled()
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_a_grad_block_works_inside_a_callers_inference_mode():
    model = _resnet()
    with torch.inference_mode():
        with using(model, grad=True) as m:
            x = _x().requires_grad_(True)
            m(x)[0, 1].backward()
    assert x.grad is not None and all(p.grad is None for p in model.parameters())


def test_concurrent_threads_on_one_model_are_serialised():
    model = _resnet()
    inside, peak, guard = [0], [0], threading.Lock()

    def work():
        with using(model) as m:
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            m(_x())
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert peak[0] == 1


def test_different_models_do_not_wait_for_each_other():
    a, b = _resnet(), _resnet()
    entered = threading.Event()

    def other():
        with using(b):
            entered.set()

    with using(a):
        t = threading.Thread(target=other)
        t.start()
        assert entered.wait(timeout=10), "using(b) waited for the lock of another model"
    t.join()


def test_one_lock_per_model_and_none_left_for_dead_models():
    model = _resnet()
    assert model_lock(model) is model_lock(model)
    assert model_lock(model) is not model_lock(_resnet())
    gc.collect()
    n = len(runtime._LOCKS)
    for _ in range(3):
        with using(_resnet()):
            pass
    gc.collect()
    assert len(runtime._LOCKS) == n


# --- the out-of-memory ladder ---------------------------------------------------------------------

def test_oom_ladder_halves_the_batch_then_stitches_then_copies_to_cpu(monkeypatch):
    model = _resnet()
    monkeypatch.setattr(runtime, "model_device", lambda m: "cuda:0")  # pretend the model sits on a GPU
    seen = []

    def attempt(m, bs, device, stitch):
        seen.append((m is model, bs, device, stitch))
        assert not m.training and torch.is_inference_mode_enabled()
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return m(_x()).shape

    shape, device, notes = assert_model_untouched(model, lambda: run_with_oom_fallback(model, attempt, 4, stitch=True))
    assert shape == (1, 2) and device == "cpu"
    assert notes == ["GPU out of memory: batch size reduced to 2.", "GPU out of memory: batch size reduced to 1.",
                     "GPU out of memory: stitching the sliding-window output on the CPU.",
                     "GPU out of memory: running on the CPU instead."]
    assert seen[:4] == [(True, 4, "cuda:0", "cuda:0"), (True, 2, "cuda:0", "cuda:0"), (True, 1, "cuda:0", "cuda:0"),
                        (True, 1, "cuda:0", "cpu")]
    assert seen[4] == (False, 4, "cpu", "cpu")  # a CPU copy with the original batch size; the shared model stays


def test_oom_on_the_cpu_is_raised_and_leaves_the_model_untouched():
    model = _resnet()

    def attempt(m, bs, device, stitch):
        raise torch.OutOfMemoryError("out of memory (simulated)")

    with pytest.raises(torch.OutOfMemoryError):
        assert_model_untouched(model, lambda: run_with_oom_fallback(model, attempt, 2))
    assert not model.training
