"""Fixtures for the classification tests: a tiny classifier trained *through the engine* on
synthetic images whose evidence sits in the top-left quadrant, registered in a temporary
weights folder (the shipped registry is never touched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

QUADRANT = (slice(0, 14), slice(0, 14))  # rows, columns of the evidence (top-left)


def synthetic_image(rng: np.random.Generator, positive: bool, size: int = 28) -> np.ndarray:
    """``(size, size)`` uint8 noise; positives carry a bright 5x5 square inside the top-left quadrant."""
    img = rng.normal(70, 20, (size, size))
    if positive:
        r, c = rng.integers(1, 6, 2)
        img[r:r + 5, c:c + 5] += 150
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory) -> Path:
    """``<root>/<class>/*.png``: 120 'clear' and 120 'spot' images (seeded)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("quadrant_set")
    rng = np.random.default_rng(7)
    for label, cls in enumerate(("clear", "spot")):
        (root / cls).mkdir()
        for i in range(120):
            Image.fromarray(synthetic_image(rng, bool(label))).save(root / cls / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_weights(synthetic_folder, tmp_path_factory) -> Path:
    """Weights folder holding the registered model ``tiny`` (trained with ``python -m medviz.train``)."""
    from medviz.train.cli import main

    out = tmp_path_factory.mktemp("weights")
    rc = main(["--task", "classification", "--dataset", "folder", "--data", str(synthetic_folder),
               "--arch", "resnet10-tiny", "--epochs", "8", "--batch-size", "16", "--lr", "3e-3", "--seed", "0",
               "--rotate", "0", "--flip", "none", "--device", "cpu", "--quiet", "--modality", "OT",
               "--run-dir", str(tmp_path_factory.mktemp("run")), "--out", str(out), "--register", "--name", "tiny"])
    assert rc == 0
    return out


@pytest.fixture()
def tiny(tiny_weights, monkeypatch):
    """``(model, entry)`` of the tiny model, with MEDVIZ_WEIGHTS_DIR pointing at its folder."""
    from medviz.models.weights import load_model

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tiny_weights))
    return load_model("tiny")
