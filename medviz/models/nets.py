"""Explicit allowlist of network builders referenced by manifest ``arch`` entries.

A manifest names a network (``{"name": "DenseNet121", "kwargs": {...}}``); only names listed in
:data:`NETWORKS` can be built, so a manifest can never make the app import arbitrary code.
"""

from __future__ import annotations

from typing import Any, Callable

from medviz.models.ensemble import ProbabilityEnsemble
from medviz.models.recurrent import SequenceModel
from medviz.models.registry import RegistryError


def _monai(name: str) -> Callable[..., Any]:
    def build(**kwargs: Any) -> Any:
        import monai.networks.nets as nets

        return getattr(nets, name)(**kwargs)

    build.__name__ = f"monai_{name}"
    return build


def _complex_unet(**kwargs: Any) -> Any:
    from monai.apps.reconstruction.networks.nets.complex_unet import ComplexUnet

    return ComplexUnet(**kwargs)


def _ensemble(members: list[dict[str, Any]], activation: str = "softmax") -> ProbabilityEnsemble:
    """The (untrained) ensemble of ``members`` (manifest ``arch`` entries, each built through this allowlist;
    an ensemble cannot contain another ensemble); ``activation``: ``"softmax"`` (classifiers) or ``"sigmoid"``
    (binary segmenters)."""
    if any(m.get("name") == "Ensemble" for m in members):
        raise RegistryError("an ensemble member cannot itself be an ensemble")
    try:
        return ProbabilityEnsemble([build_network(m) for m in members], activation=activation)
    except ValueError as e:
        raise RegistryError(str(e)) from e


NETWORKS: dict[str, Callable[..., Any]] = {
    "DenseNet121": _monai("DenseNet121"),
    "DenseNet": _monai("DenseNet"),
    "ResNet": _monai("ResNet"),
    "EfficientNetBN": _monai("EfficientNetBN"),
    "UNet": _monai("UNet"),
    "BasicUNet": _monai("BasicUNet"),
    "DynUNet": _monai("DynUNet"),
    "AttentionUnet": _monai("AttentionUnet"),
    "AutoEncoder": _monai("AutoEncoder"),
    "ComplexUnet": _complex_unet,
    "SliceSequenceModel": SequenceModel,  # medviz.models.recurrent: features -> bidirectional GRU
    "Ensemble": _ensemble,  # members built through this same allowlist (medviz.models.ensemble)
}


def build_network(arch: dict[str, Any]) -> Any:
    """Build an (untrained) network from ``{"name": ..., "kwargs": {...}}``."""
    name = arch.get("name")
    if name not in NETWORKS:
        raise RegistryError(f"Unknown network {name!r}; allowed: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name](**arch.get("kwargs", {}))
