"""Fixtures for the reconstruction tests: a synthetic brain-like phantom and tiny registered models."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.models.registry import sha256_file, upsert_entry

TINY_RECON = {"name": "ComplexUnet", "kwargs": {"spatial_dims": 2, "features": [4, 4, 8, 8, 16, 4]}}
TINY_DENOISE = {"name": "BasicUNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                                "features": [4, 4, 8, 8, 16, 4], "norm": "batch"}}


@pytest.fixture
def phantom() -> np.ndarray:
    """A 64x64 float32 image in [0, 1]: an ellipse 'head' with brighter blobs, zero background."""
    y, x = np.mgrid[-1:1:64j, -1:1:64j]
    img = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1).astype(np.float32) * 0.5
    img += ((x - 0.2) ** 2 + (y + 0.1) ** 2 < 0.05) * 0.5
    img += ((x + 0.3) ** 2 + (y - 0.3) ** 2 < 0.02) * 0.3
    return (img / img.max()).astype(np.float32)


def register_tiny(weights_dir, name: str, mode: str):
    """Save an untrained tiny network under ``name`` in ``weights_dir``'s manifest; return the model."""
    import torch

    from medviz.models.nets import build_network
    from medviz.models.weights import save_state_dict

    arch = TINY_RECON if mode == "recon" else TINY_DENOISE
    torch.manual_seed(0)
    model = build_network(arch).eval()
    path = weights_dir / f"{name}.safetensors"
    save_state_dict(model, path)
    upsert_entry({"name": name, "task": "reconstruction", "mode": mode, "file": path.name,
                  "sha256": sha256_file(path), "arch": arch, "residual": True}, weights_dir)
    return model


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """A weights dir with one tiny recon and one tiny denoise model; MEDVIZ_WEIGHTS_DIR points to it."""
    wd = tmp_path / "weights"
    wd.mkdir()
    register_tiny(wd, "tiny_recon", "recon")
    register_tiny(wd, "tiny_denoise", "denoise")
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(wd))
    return wd


@pytest.fixture
def tiny_models() -> dict:
    """Untrained tiny networks ``{"recon": ComplexUnet, "denoise": UNet}`` in eval mode."""
    import torch

    from medviz.models.nets import build_network

    torch.manual_seed(0)
    return {"recon": build_network(TINY_RECON).eval(), "denoise": build_network(TINY_DENOISE).eval()}
