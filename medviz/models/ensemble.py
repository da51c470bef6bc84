"""Probability-averaging ensembles of classifiers and of binary segmenters (the ``nn.Module`` only; built by
:func:`medviz.models.nets.build_network` from a manifest ``arch`` entry).

Manifest form::

    {"name": "Ensemble", "kwargs": {"members": [{"name": "ResNet", "kwargs": {...}}, ...]}}
    {"name": "Ensemble", "kwargs": {"members": [{"name": "UNet", ...}, ...], "activation": "sigmoid"}}

The members are built through the same allowlist (:data:`medviz.models.nets.NETWORKS`); an
ensemble cannot contain another ensemble. With ``activation="softmax"`` (classifiers) the output is
``log(mean_k softmax(member_k(x)))``: logits whose softmax is the mean of the members' probabilities, so
temperature scaling, arg-max accuracy and Grad-CAM targets work on it exactly as on a single classifier.
With ``activation="sigmoid"`` (binary segmenters, one output channel) the output is ``logit(mean_k
sigmoid(member_k(x)))``: logits whose sigmoid is the mean of the members' voxel probabilities (the
nnU-Net way of combining cross-validation folds), so thresholds and post-processing apply unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-12


ACTIVATIONS = ("softmax", "sigmoid")


class ProbabilityEnsemble(nn.Module):
    """Softmax: ``(B, C, H, W) -> (B, K)`` log of the members' mean class probabilities. Sigmoid:
    ``(B, C, H, W) -> (B, 1, H, W)`` logit of the members' mean foreground probability.

    Submodules are ``members.0``, ``members.1``, ... (Grad-CAM layers are named through them, e.g.
    ``members.0.layer3``).
    """

    def __init__(self, members: list[nn.Module], activation: str = "softmax") -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        if activation not in ACTIVATIONS:
            raise ValueError(f"ensemble activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        self.members = nn.ModuleList(members)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "sigmoid":
            p = torch.stack([torch.sigmoid(m(x).float()) for m in self.members]).mean(dim=0)
            p = p.clamp(EPS, 1 - 1e-7)
            return torch.log(p) - torch.log1p(-p)
        probs = torch.stack([torch.softmax(m(x).float(), dim=-1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(EPS))
