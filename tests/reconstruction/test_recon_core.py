"""Invariants of the simulated acquisition, the data-consistency step and the metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviz.reconstruction import infer, kspace, metrics
from tests.model_guard import assert_model_untouched


@pytest.mark.parametrize("acc", [4, 8])
def test_equispaced_mask_fraction_matches_acceleration(acc):
    for seed in range(5):
        m = kspace.make_mask(256, "equispaced", acc, seed=seed)
        assert set(np.unique(m)) <= {0.0, 1.0}
        assert abs(m.mean() - 1 / acc) < 0.015, m.mean()


@pytest.mark.parametrize("acc", [4, 8])
def test_random_mask_fraction_matches_acceleration_on_average(acc):
    fractions = [kspace.make_mask(256, "random", acc, seed=s).mean() for s in range(40)]
    assert abs(np.mean(fractions) - 1 / acc) < 0.02


@pytest.mark.parametrize("kind", ["random", "equispaced"])
def test_mask_centre_fully_sampled_and_seeded(kind):
    m = kspace.make_mask(256, kind, 4, center_fraction=0.08, seed=3)
    n = round(256 * 0.08)
    start = (256 - n + 1) // 2
    assert m[start:start + n].all()
    assert np.array_equal(m, kspace.make_mask(256, kind, 4, center_fraction=0.08, seed=3))


def test_undersampling_keeps_exactly_the_sampled_lines(phantom):
    m = kspace.make_mask(64, "random", 4, seed=1)
    k = kspace.to_kspace(phantom).numpy()
    k_us = kspace.undersample(k, m).numpy()
    assert np.array_equal(k_us[:, m == 1], k[:, m == 1])
    assert not np.any(k_us[:, m == 0])


def test_zero_filled_of_fully_sampled_kspace_equals_input(phantom):
    full = kspace.make_mask(64, "random", 1)
    sim = kspace.simulate_undersampling(phantom, full)
    assert full.all()
    np.testing.assert_allclose(sim["zero_filled"], phantom, atol=1e-5)


def test_data_consistency_restores_measured_lines(phantom):
    m = kspace.make_mask(64, "equispaced", 4, seed=0)
    sim = kspace.simulate_undersampling(phantom, m)
    wrong = torch.randn(64, 64, 2)
    fixed = kspace.data_consistency(wrong, torch.as_tensor(sim["kspace_us"]), m)
    k_fixed = kspace.to_kspace_complex(fixed).numpy()
    np.testing.assert_allclose(k_fixed[:, m == 1], sim["kspace_us"][:, m == 1], atol=1e-4)


def test_bad_mask_parameters_raise():
    with pytest.raises(kspace.ReconError, match="mask kind"):
        kspace.make_mask(64, "spiral", 4)
    with pytest.raises(kspace.ReconError, match="centre fraction"):
        kspace.make_mask(64, "random", 8, center_fraction=0.5)
    with pytest.raises(kspace.ReconError, match="2D"):
        kspace.scale_slice(np.zeros((2, 3, 4)))


def test_metrics_agree_with_scikit_image_and_monai(phantom):
    from monai.metrics import PSNRMetric, SSIMMetric
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    est = np.clip(phantom + np.random.default_rng(0).normal(0, 0.05, phantom.shape), 0, 1).astype(np.float32)
    t = lambda a: torch.as_tensor(a)[None, None]  # noqa: E731
    assert metrics.psnr(phantom, est) == pytest.approx(peak_signal_noise_ratio(phantom, est, data_range=1.0), abs=1e-4)
    assert metrics.psnr(phantom, est) == pytest.approx(float(PSNRMetric(max_val=1.0)(t(est), t(phantom))), abs=1e-3)
    assert metrics.ssim(phantom, est) == pytest.approx(float(SSIMMetric(spatial_dims=2, data_range=1.0)(t(est), t(phantom))),
                                                 abs=2e-3)
    expected = mean_squared_error(phantom, est) * phantom.size / float(np.sum(phantom.astype(np.float64) ** 2))
    assert metrics.nmse(phantom, est) == pytest.approx(expected, rel=1e-6)
    assert metrics.ssim(phantom, phantom) == pytest.approx(1.0)


def test_rician_noise_is_seeded_and_has_the_requested_level(phantom):
    a = kspace.add_rician_noise(phantom, 0.05, seed=1)
    assert np.array_equal(a, kspace.add_rician_noise(phantom, 0.05, seed=1))
    inside = phantom > 0.4  # high SNR: Rician ~ Gaussian
    assert np.std((a - phantom)[inside]) == pytest.approx(0.05, rel=0.2)
    assert (a >= 0).all()


def test_blank_slice_gives_finite_output(tiny_models):
    model = tiny_models["recon"]
    out = infer.reconstruct(model, np.zeros((32, 32), np.float32), kspace.make_mask(32, "random", 4))
    assert np.isfinite(out["reconstruction"]).all()
    assert not out["reconstruction"].any()


@pytest.mark.parametrize("mode", ["recon", "denoise"])
def test_compare_returns_aligned_panels_and_metrics(phantom, mode, tiny_models):
    model = tiny_models[mode]
    before = phantom.copy()
    res = assert_model_untouched(
        model, lambda: infer.compare(model, mode, phantom * 300, acceleration=4, sigma=0.05, slow_baseline=False))
    assert np.array_equal(phantom, before)
    for k in ("reference", "degraded", "output", "difference"):
        assert res[k].shape == phantom.shape
    np.testing.assert_allclose(res["reference"], phantom, atol=1e-6)
    expected = {"model", "zero_filled"} if mode == "recon" else {"model", "noisy", "nlm"}
    assert set(res["metrics"]) == expected
    assert all(set(v) == {"psnr", "ssim", "nmse"} for v in res["metrics"].values())
    with pytest.raises(kspace.ReconError):
        infer.compare(model, "deblur", phantom)


@pytest.mark.parametrize("cascades", [1, 2])
def test_reconstruct_and_denoise_leave_the_shared_model_untouched(phantom, tiny_models, cascades):
    recon, den = tiny_models["recon"], tiny_models["denoise"]
    mask = kspace.make_mask(64, "random", 4, seed=3)
    out = assert_model_untouched(recon, lambda: infer.reconstruct(recon, phantom, mask, cascades=cascades))
    assert out["reconstruction"].shape == (64, 64) and np.isfinite(out["reconstruction"]).all()
    noisy = kspace.add_rician_noise(phantom, 0.05, seed=0)
    y = assert_model_untouched(den, lambda: infer.denoise(den, noisy))
    assert y.shape == (64, 64) and np.isfinite(y).all()
    den.train()  # a model left in train mode runs in eval mode (batch-norm statistics frozen) and stays in train
    assert np.array_equal(assert_model_untouched(den, lambda: infer.denoise(den, noisy)), y)
    assert den.training


def test_shared_model_calls_from_concurrent_sessions_are_serialised(phantom, tiny_models, monkeypatch):
    import contextlib
    import threading
    import time

    from medviz.models import runtime

    model = tiny_models["denoise"]
    inside, peak, guard = [0], [0], threading.Lock()
    real_using = runtime.using

    @contextlib.contextmanager
    def counting_using(m, grad=False):  # the real runtime, counting the calls inside it at once
        with real_using(m, grad) as net:
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            try:
                yield net
            finally:
                with guard:
                    inside[0] -= 1

    monkeypatch.setattr(infer, "using", counting_using)
    outs = []

    def session():
        outs.append(infer.compare(model, "denoise", phantom, sigma=0.05, slow_baseline=False)["output"])

    def sessions():
        threads = [threading.Thread(target=session) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert_model_untouched(model, sessions)
    assert peak[0] == 1 and len(outs) == 4
    assert all(np.array_equal(o, outs[0]) for o in outs)


def test_unrolled_cascades_keep_measured_lines(phantom, tiny_models):
    m = kspace.make_mask(64, "random", 4, seed=2)
    sim = kspace.simulate_undersampling(phantom, m)
    z = torch.as_tensor(sim["zero_filled_complex"])[None, None]
    k = torch.as_tensor(sim["kspace_us"])[None, None]
    mm = torch.as_tensor(m)[None, None, None, :, None]
    with torch.inference_mode():
        one = infer.recon_forward(tiny_models["recon"], z, k, mm, cascades=1)
        two = infer.recon_forward(tiny_models["recon"], z, k, mm, cascades=2)
    assert one.shape == two.shape == (1, 1, 64, 64)
    assert not torch.allclose(one, two)
