"""Explicit allowlist of network builders referenced by manifest ``arch`` entries.

A manifest names a network (``{"name": "DenseNet121", "kwargs": {...}}``); only names listed in
:data:`NETWORKS` can be built, so a manifest can never make the app import arbitrary code.
"""

from __future__ import annotations

from typing import Any, Callable


def _monai(name: str) -> Callable[..., Any]:
    def build(**kwargs: Any) -> Any:
        import monai.networks.nets as nets

        return getattr(nets, name)(**kwargs)

    build.__name__ = f"monai_{name}"
    return build


def _complex_unet(**kwargs: Any) -> Any:
    from monai.apps.reconstruction.networks.nets.complex_unet import ComplexUnet

    return ComplexUnet(**kwargs)


def _ensemble(**kwargs: Any) -> Any:
    from medviz.models.ensemble import build_ensemble

    return build_ensemble(**kwargs)


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
    "Ensemble": _ensemble,  # members built through this same allowlist (medviz.models.ensemble)
}


def build_network(arch: dict[str, Any]) -> Any:
    """Build an (untrained) network from ``{"name": ..., "kwargs": {...}}``."""
    from medviz.models.registry import RegistryError

    name = arch.get("name")
    if name not in NETWORKS:
        raise RegistryError(f"Unknown network {name!r}; allowed: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name](**arch.get("kwargs", {}))
