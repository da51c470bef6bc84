"""Recurrent networks over slice stacks (``nn.Module`` only; the sequence task is :mod:`medviz.sequence`):
slice features -> bidirectional GRU -> one tumour logit per slice.

MONAI has no recurrent layers, so the recurrence is ``torch.nn.GRU(bidirectional=True)``. Each slice's
input is its standardised feature vector, its differences to the previous and the next slice (zero at the
ends of the stack) and its normalised position ``t / (L - 1)`` in the stack. Stacks of different lengths
are padded to one length and packed (``pack_padded_sequence``), so padding never reaches the recurrence
and the output of a stack does not depend on how much it was padded.

The per-slice baseline is :class:`PerSliceHead`: a logistic regression on the same standardised features,
without context.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Standardise(nn.Module):
    """``(x - mean) / std`` with the training set's per-feature statistics (stored with the weights)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, features: torch.Tensor) -> None:
        """Set the statistics from ``(N, F)`` training features (a constant feature keeps std 1)."""
        self.mean.copy_(features.mean(dim=0))
        std = features.std(dim=0)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def sequence_inputs(z: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, T, F)`` standardised features -> ``(B, T, 3F + 1)``: features, difference to the previous
    slice, difference to the next slice (both zero at the stack's ends and in the padding) and the
    normalised position. ``lengths``: ``(B,)`` valid slices per stack."""
    b, t, _ = z.shape
    idx = torch.arange(t, device=z.device)[None, :]
    valid = (idx < lengths[:, None]).to(z.dtype)[..., None]
    z = z * valid
    prev = torch.cat([z[:, :1], z[:, :-1]], dim=1)
    nxt = torch.cat([z[:, 1:], z[:, -1:]], dim=1)
    has_prev = (idx >= 1).to(z.dtype)[..., None] * valid
    has_next = (idx < lengths[:, None] - 1).to(z.dtype)[..., None] * valid
    pos = (idx / (lengths[:, None] - 1).clamp_min(1)).to(z.dtype)[..., None] * valid
    return torch.cat([z, (z - prev) * has_prev, (nxt - z) * has_next, pos], dim=-1)


class SliceGRU(nn.Module):
    """``(B, T, F)`` slice features and ``(B,)`` lengths -> ``(B, T)`` logits (padding positions: 0).

    Args:
        n_features: ``F``.
        hidden: GRU hidden size per direction.
        proj: width of the per-slice projection in front of the GRU.
        dropout: dropout after the projection and before the output layer.
    """

    def __init__(self, n_features: int, hidden: int = 32, proj: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.standardise = Standardise(n_features)
        self.project = nn.Sequential(nn.Linear(3 * n_features + 1, proj), nn.ReLU(), nn.Dropout(dropout))
        self.gru = nn.GRU(proj, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, 1))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = features.shape[1]
        z = self.standardise(features)
        h = self.project(sequence_inputs(z, lengths))
        packed = pack_padded_sequence(h, lengths.cpu().long(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=t)
        logits = self.head(out)[..., 0]
        valid = torch.arange(t, device=features.device)[None, :] < lengths[:, None]
        return torch.where(valid, logits, torch.zeros_like(logits))


class PerSliceHead(nn.Module):
    """The ``per_slice`` baseline: ``(..., F)`` features -> ``(...)`` logits, one slice at a time
    (logistic regression on the standardised features; no neighbours, no position)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.standardise = Standardise(n_features)
        self.linear = nn.Linear(n_features, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardise(features))[..., 0]


class SequenceModel(nn.Module):
    """What ships: the GRU (``gru``) and, beside it, the per-slice baseline head (``per_slice``), both on
    the same slice features. ``forward`` returns the GRU's ``(B, T)`` logits."""

    def __init__(self, n_features: int, hidden: int = 32, proj: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.gru = SliceGRU(n_features, hidden, proj, dropout)
        self.per_slice = PerSliceHead(n_features)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.gru(features, lengths)
