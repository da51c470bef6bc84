"""The sequence network: padding and masking, direction symmetry, and what reaches the GRU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviz.models.recurrent import SequenceModel, SliceGRU, sequence_inputs


def _features(n: int, f: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, f)).astype(np.float32))


def test_padding_does_not_change_the_unpadded_part():
    torch.manual_seed(0)
    net = SliceGRU(6, hidden=5, proj=7, dropout=0.0).eval()
    x = _features(9)
    with torch.no_grad():
        alone = net(x[None], torch.tensor([9]))[0]
        for pad in (1, 13):
            padded = torch.cat([x, torch.full((pad, 6), 123.0)])[None]  # junk in the padding on purpose
            out = net(padded, torch.tensor([9]))[0]
            torch.testing.assert_close(out[:9], alone, rtol=1e-5, atol=1e-6)
            assert torch.all(out[9:] == 0)


def test_a_batch_gives_each_stack_its_own_result():
    torch.manual_seed(0)
    net = SliceGRU(6, hidden=5, proj=7, dropout=0.0).eval()
    a, b = _features(9, seed=1), _features(4, seed=2)
    batch = torch.zeros(2, 9, 6)
    batch[0], batch[1, :4] = a, b
    with torch.no_grad():
        both = net(batch, torch.tensor([9, 4]))
        torch.testing.assert_close(both[0], net(a[None], torch.tensor([9]))[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(both[1, :4], net(b[None], torch.tensor([4]))[0], rtol=1e-5, atol=1e-6)


def _symmetric(net: SliceGRU, f: int) -> SliceGRU:
    """Make the network direction-symmetric: the projection ignores the neighbour differences and the
    position (which change under reversal), the backward GRU equals the forward one, and the head weighs
    both directions alike."""
    with torch.no_grad():
        w = net.project[0].weight
        w[:, f:] = 0
        g = net.gru
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(g, name + "_reverse").copy_(getattr(g, name))
        head = net.head[1].weight
        half = head.shape[1] // 2
        head[:, half:] = head[:, :half]
    return net


def test_reversing_a_stack_reverses_the_output_of_a_symmetric_model():
    torch.manual_seed(0)
    net = _symmetric(SliceGRU(6, hidden=5, proj=7, dropout=0.0), 6).eval()
    x = _features(11)
    with torch.no_grad():
        out = net(x[None], torch.tensor([11]))[0]
        rev = net(x.flip(0)[None], torch.tensor([11]))[0]
    torch.testing.assert_close(rev, out.flip(0), rtol=1e-5, atol=1e-6)


def test_an_ordinary_model_is_not_direction_symmetric():
    """The check above can fail: without the symmetry the reversed output differs."""
    torch.manual_seed(0)
    net = SliceGRU(6, hidden=5, proj=7, dropout=0.0).eval()
    x = _features(11)
    with torch.no_grad():
        out, rev = net(x[None], torch.tensor([11]))[0], net(x.flip(0)[None], torch.tensor([11]))[0]
    assert not torch.allclose(rev, out.flip(0), atol=1e-4)


def test_sequence_inputs_by_hand():
    z = torch.tensor([[[1.0], [3.0], [6.0], [99.0]]])  # one stack of 3 slices, 1 feature, 1 padding slot
    out = sequence_inputs(z, torch.tensor([3]))[0]
    torch.testing.assert_close(out[:, 0], torch.tensor([1.0, 3.0, 6.0, 0.0]))   # features (padding zeroed)
    torch.testing.assert_close(out[:, 1], torch.tensor([0.0, 2.0, 3.0, 0.0]))   # minus previous slice
    torch.testing.assert_close(out[:, 2], torch.tensor([2.0, 3.0, 0.0, 0.0]))   # next slice minus this one
    torch.testing.assert_close(out[:, 3], torch.tensor([0.0, 0.5, 1.0, 0.0]))   # normalised position


def test_sequence_model_ships_both_heads():
    m = SequenceModel(6, hidden=4, proj=5, dropout=0.0).eval()
    x = _features(5)[None]
    with torch.no_grad():
        assert m(x, torch.tensor([5])).shape == (1, 5)
        assert m.per_slice(x).shape == (1, 5)
    assert {k.split(".")[0] for k in m.state_dict()} == {"gru", "per_slice"}


@pytest.mark.parametrize("length", [1, 2])
def test_very_short_stacks(length):
    net = SliceGRU(6, hidden=3, proj=4, dropout=0.0).eval()
    with torch.no_grad():
        out = net(_features(length)[None], torch.tensor([length]))
    assert out.shape == (1, length) and torch.isfinite(out).all()
