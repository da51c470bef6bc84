"""Fixtures for the segmentation tests: a tiny registered UNet in a temporary weights folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medviz.models.specs import SegmenterSpec, parse_spec

TINY_ARCH = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "channels": [4, 8, 16],
                                        "strides": [2, 2], "num_res_units": 1, "norm": "batch"}}


def lgg_like_spec(**keys) -> SegmenterSpec:
    """The spec of a tiny UNet with the LGG model's input policy (3-channel MR, label "FLAIR abnormality") and
    the spec defaults (no TTA, threshold 0.5, no component filter); ``keys`` are extra manifest keys."""
    return parse_spec({"name": "tiny_lgg", "task": "segmentation", "file": "tiny_seg.safetensors", "arch": TINY_ARCH,
                       "classes": ["background", "FLAIR abnormality"], "input": {"modality": "MR"}, **keys})


@pytest.fixture
def tiny_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights dir with one seeded tiny segmentation model ``tiny_seg``; MEDVIZ_WEIGHTS_DIR points to it."""
    import torch

    from medviz.models.nets import build_network
    from medviz.models.registry import sha256_file, upsert_entry
    from medviz.models.weights import save_state_dict

    torch.manual_seed(0)
    model = build_network(TINY_ARCH)
    path = tmp_path / "tiny_seg.safetensors"
    save_state_dict(model, path)
    upsert_entry({"name": "tiny_seg", "task": "segmentation", "file": path.name, "sha256": sha256_file(path),
                  "arch": TINY_ARCH, "threshold": 0.5, "min_size": 0, "cam_layer": "model.1.submodule.2"}, tmp_path)
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def tiny_model(tiny_registry: Path):
    from medviz.models.weights import load_model

    return load_model("tiny_seg")[0]
