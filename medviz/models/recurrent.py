"""Recurrent networks over slice stacks (``nn.Module`` only; the sequence task is :mod:`medviz.sequence`):
slice features -> bidirectional GRU -> one tumour logit per slice.

MONAI has no recurrent layers, so the recurrence is ``torch.nn.GRU(bidirectional=True)``. Each slice's
input is its standardised feature vector, its differences to the previous and the next slice (zero at the
ends of the stack) and its normalised position ``t / (L - 1)`` in the stack. Stacks of different lengths
are padded to one length and packed (``pack_padded_sequence``), so padding never reaches the recurrence
and the output of a stack does not depend on how much it was padded.

A model may be a deep ensemble (Lakshminarayanan et al., NeurIPS 2017) of ``members`` such GRUs
(:class:`GRUEnsemble`): each member is initialised on its own and trained on its own loss, and the
ensemble's logit is that of the members' mean probability.

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

    def fit_standardise(self, features: torch.Tensor) -> None:
        """Set the standardisation from ``(N, F)`` training features."""
        self.standardise.fit(features)

    def member_logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(1, B, T)``: the one member's logits (see :meth:`GRUEnsemble.member_logits`)."""
        return self(features, lengths)[None]

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = features.shape[1]
        z = self.standardise(features)
        h = self.project(sequence_inputs(z, lengths))
        packed = pack_padded_sequence(h, lengths.cpu().long(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=t)
        logits = self.head(out)[..., 0]
        valid = torch.arange(t, device=features.device)[None, :] < lengths[:, None]
        return torch.where(valid, logits, torch.zeros_like(logits))


class GRUEnsemble(nn.Module):
    """``members`` independently initialised :class:`SliceGRU` s: ``(B, T, F)`` features and ``(B,)`` lengths
    -> ``(B, T)`` logit of the members' mean probability (padding positions: 0)."""

    def __init__(self, n_features: int, members: int, hidden: int = 32, proj: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, not {members}")
        self.members = nn.ModuleList(SliceGRU(n_features, hidden, proj, dropout) for _ in range(members))

    @property
    def standardise(self) -> Standardise:
        """The training features' statistics (the same in every member)."""
        return self.members[0].standardise

    def fit_standardise(self, features: torch.Tensor) -> None:
        """Set every member's standardisation from ``(N, F)`` training features."""
        for m in self.members:
            m.standardise.fit(features)

    def member_logits(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(K, B, T)``: every member's logits (each member is trained on its own loss)."""
        return torch.stack([m(features, lengths) for m in self.members])

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = features.shape[1]
        p = torch.sigmoid(self.member_logits(features, lengths).float()).mean(dim=0)
        logits = torch.logit(p, eps=1e-7).to(features.dtype)
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


#: What the GRU reads: every slice feature, or the stacked inputs (:meth:`SequenceModel.stacked_inputs`).
INPUTS = ("features", "stacked")


class SequenceModel(nn.Module):
    """What ships: the GRU (``gru``: one :class:`SliceGRU`, or a :class:`GRUEnsemble` when ``members`` > 1)
    and, beside it, the per-slice baseline head (``per_slice``) on the slice features; the GRU reads the same
    features or, for ``inputs="stacked"``, the head's logit and a few of them. ``forward`` returns the GRU's
    ``(B, T)`` logits.

    Args:
        inputs: ``"features"``: the GRU reads every standardised slice feature; ``"stacked"``: it reads
            :meth:`stacked_inputs` -- the per-slice head's logit and the features at ``context_features``
            (stacked generalisation, Wolpert 1992: the head is fitted first and frozen, and in training the
            GRU reads out-of-fold logits of the head, so that the head's own fit to those stacks does not reach
            the GRU; the slice features themselves may still come from an encoder trained on those stacks).
        context_features: indices of the raw features the stacked GRU also reads.
    """

    def __init__(self, n_features: int, hidden: int = 32, proj: int = 64, dropout: float = 0.3,
                 members: int = 1, inputs: str = "features", context_features: tuple[int, ...] = ()) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, not {inputs!r}")
        self.inputs = inputs
        self.context_features = tuple(int(i) for i in context_features)
        width = n_features if inputs == "features" else 1 + len(self.context_features)
        self.gru: SliceGRU | GRUEnsemble = (SliceGRU(width, hidden, proj, dropout) if members == 1
                                            else GRUEnsemble(width, members, hidden, proj, dropout))
        self.per_slice = PerSliceHead(n_features)

    def stacked_inputs(self, features: torch.Tensor, per_slice_logits: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, F)`` features -> ``(B, T, 1 + C)``: the per-slice head's logit (or the given
        ``per_slice_logits`` ``(B, T)``, e.g. out-of-fold ones in training) and the ``context_features``."""
        logit = self.per_slice(features) if per_slice_logits is None else per_slice_logits
        return torch.cat([logit[..., None].to(features.dtype), features[..., list(self.context_features)]], dim=-1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, gru_inputs: torch.Tensor | None = None,
                per_member: bool = False) -> torch.Tensor:
        """``(B, T)`` logits of ``(B, T, F)`` features. Training passes ``gru_inputs`` (what the GRU reads, e.g.
        noisy or out-of-fold stacked inputs) and ``per_member=True`` for every member's ``(K, B, T)`` logits,
        through this forward so that a DistributedDataParallel wrapper sees the call."""
        if gru_inputs is None:
            gru_inputs = self.stacked_inputs(features) if self.inputs == "stacked" else features
        return self.gru.member_logits(gru_inputs, lengths) if per_member else self.gru(gru_inputs, lengths)
