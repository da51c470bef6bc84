"""The super-resolution task's parts: the degradation, bicubic, the metrics against scikit-image and MONAI,
the Fréchet distance, the adversarial pair's gradients and the spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviz.models.adversarial import AdversarialPair
from medviz.models.errors import RegistryError
from medviz.models.specs import SuperResSpec, parse_spec
from medviz.superres.data import brain_mask, is_brain_slice, scale_to_max
from medviz.superres.degrade import SuperResError, bicubic, degrade
from medviz.superres.metrics import frechet_distance, hfen, psnr, ssim


def test_the_degradation_is_the_block_mean_and_exactly_reproducible(rng):
    x = rng.random((64, 48)).astype(np.float32)
    lr = degrade(x)
    assert lr.shape == (16, 12)
    np.testing.assert_allclose(lr, x.reshape(16, 4, 12, 4).mean(axis=(1, 3)), rtol=1e-6)
    assert np.array_equal(lr, degrade(x.copy()))  # bit for bit, every time


def test_a_size_that_is_not_a_multiple_of_the_scale_is_refused_in_words():
    with pytest.raises(SuperResError, match="multiples of 4"):
        degrade(np.zeros((30, 32), np.float32))


@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_bicubic_of_a_constant_image_is_constant(value):
    up = bicubic(np.full((16, 20), value, np.float32))
    assert up.shape == (64, 80)
    np.testing.assert_allclose(up, value, atol=1e-6)


def test_bicubic_is_not_shifted_against_the_block_it_averaged():
    """A bright block stays centred on itself after degrade + bicubic (align_corners=False)."""
    x = np.zeros((64, 64), np.float32)
    x[24:28, 36:40] = 1.0
    up = bicubic(degrade(x))
    r, c = np.unravel_index(np.argmax(up), up.shape)
    assert 24 <= r < 28 and 36 <= c < 40


def test_psnr_and_ssim_agree_with_scikit_image_and_monai(rng):
    from monai.metrics import PSNRMetric
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ref = rng.random((64, 64))
    est = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    assert psnr(ref, est) == pytest.approx(peak_signal_noise_ratio(ref, est, data_range=1.0), rel=1e-9)
    monai_psnr = PSNRMetric(max_val=1.0)(torch.tensor(est)[None, None], torch.tensor(ref)[None, None]).item()
    assert psnr(ref, est) == pytest.approx(monai_psnr, rel=1e-6)
    assert ssim(ref, est) == pytest.approx(structural_similarity(ref, est, data_range=1.0), rel=1e-9)


def test_masked_metrics_read_only_the_mask(rng):
    ref = rng.random((32, 32))
    est = ref.copy()
    est[:, 16:] = 0  # wrong only on the right half
    left = np.zeros_like(ref, bool)
    left[:, :16] = True
    assert psnr(ref, est, left) == float("inf")
    assert psnr(ref, est, ~left) < 20
    assert np.isnan(psnr(ref, est, np.zeros_like(left)))


def test_hfen_is_zero_for_a_perfect_estimate_and_grows_with_blur(rng):
    from scipy.ndimage import gaussian_filter, gaussian_laplace

    ref = gaussian_filter(rng.random((64, 64)), 1.0)
    assert hfen(ref, ref) == 0.0
    assert hfen(ref, gaussian_filter(ref, 1.0)) < hfen(ref, gaussian_filter(ref, 2.0))
    est = gaussian_filter(ref, 1.0)
    want = np.linalg.norm(gaussian_laplace(est, 1.5) - gaussian_laplace(ref, 1.5)) / np.linalg.norm(gaussian_laplace(ref, 1.5))
    assert hfen(ref, est) == pytest.approx(want)


def test_the_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift(rng):
    f = rng.normal(size=(200, 16))
    assert abs(frechet_distance(f, f)) < 1e-6
    assert frechet_distance(f, f + 0.5) == pytest.approx(16 * 0.25, rel=1e-3)  # |mean shift|^2, same covariance
    assert frechet_distance(f, f + 1.0) > frechet_distance(f, f + 0.5)


def test_brain_slices_and_masks():
    x = np.zeros((64, 64), np.float32)
    assert not is_brain_slice(x)
    yy, xx = np.mgrid[:64, :64]
    head = ((yy - 32) ** 2 + (xx - 32) ** 2) < 20 ** 2
    x[head] = 0.6
    x[(yy - 32) ** 2 + (xx - 32) ** 2 < 5 ** 2] = 0.02  # a dark ventricle inside the head
    assert is_brain_slice(x)
    m = brain_mask(x)
    assert m[32, 32] and not m[2, 2] and m.sum() == pytest.approx(head.sum(), rel=0.05)
    scaled, peak = scale_to_max(x * 200)
    assert peak == pytest.approx(120) and scaled.max() == pytest.approx(1.0)


def test_the_adversarial_pair_keeps_each_players_gradient_apart():
    torch.manual_seed(0)
    gen = torch.nn.Conv2d(1, 1, 3, padding=1)
    disc = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 3))
    pair = AdversarialPair(gen, disc)
    x, real = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    out = pair(x, real)
    # the generator's adversarial loss reaches only the generator
    out["d_fake_for_generator"].mean().backward(retain_graph=True)
    assert gen.weight.grad.abs().sum() > 0 and all(p.grad is None for p in disc.parameters())
    gen.zero_grad(set_to_none=False)
    # the discriminator's loss reaches only the discriminator
    ((out["d_real"] ** 2).mean() + (out["d_fake"] ** 2).mean()).backward()
    assert gen.weight.grad.abs().sum() == 0 and all(p.grad.abs().sum() > 0 for p in disc.parameters())


def test_a_gan_entry_must_name_its_pixel_loss_twin():
    base = {"name": "g", "task": "superres", "file": "g.safetensors", "arch": {"name": "BasicUNet"}}
    with pytest.raises(RegistryError, match="twin"):
        parse_spec({**base, "mode": "gan"})
    spec = parse_spec({**base, "mode": "gan", "twin": "p"})
    assert isinstance(spec, SuperResSpec) and spec.scale == 4 and spec.segmenter == "lgg_unet"
    with pytest.raises(RegistryError, match="mode"):
        parse_spec({**base, "mode": "diffusion"})
