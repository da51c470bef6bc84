"""Probability-averaging ensemble of classifiers (the ``nn.Module`` only; built by
:func:`medviz.models.nets.build_network` from a manifest ``arch`` entry).

Manifest form::

    {"name": "Ensemble", "kwargs": {"members": [{"name": "ResNet", "kwargs": {...}}, ...]}}

The members are built through the same allowlist (:data:`medviz.models.nets.NETWORKS`); an
ensemble cannot contain another ensemble. The output is ``log(mean_k softmax(member_k(x)))``:
logits whose softmax is the mean of the members' probabilities, so temperature scaling, arg-max
accuracy and Grad-CAM targets work on it exactly as on a single classifier.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-12


class ProbabilityEnsemble(nn.Module):
    """``(B, C, H, W) -> (B, K)`` log of the members' mean class probabilities.

    Submodules are ``members.0``, ``members.1``, ... (Grad-CAM layers are named through them, e.g.
    ``members.0.layer3``).
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x).float(), dim=-1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(EPS))
