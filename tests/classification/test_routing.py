"""The Classify page's model choice: a full-size radiograph -> a radiograph model, a thumbnail -> a 28-px one."""

from __future__ import annotations

import copy

import numpy as np

from medviz.classification.routing import choose_classifier
from medviz.models.registry import get_entry
from medviz.models.specs import ClassifierSpec


def _specs() -> dict[str, ClassifierSpec]:
    """The shipped 28-px models plus a radiograph model made from the pneumonia entry (224 px, 256-px images)."""
    out = {n: get_entry(n).spec for n in ("breast_resnet", "pneumonia_resnet", "retina_resnet")}
    raw = copy.deepcopy(get_entry("pneumonia_resnet").raw)
    raw["name"] = "cxr_big"
    raw["input"].update(size=224, native_size=256)
    out["cxr_big"] = ClassifierSpec.from_entry(raw)
    return out


def test_full_size_radiograph_goes_to_the_radiograph_model():
    img = np.random.default_rng(0).integers(0, 255, (256, 364), dtype=np.uint8)
    for selected in ("pneumonia_resnet", "breast_resnet"):
        route = choose_classifier(img, "OT", selected, _specs())
        assert route.name == "cxr_big" and route.switched
        assert "256 px" in route.reason and "reduce it to 28 px" in route.reason


def test_thumbnail_goes_to_a_28_px_model_and_keeps_the_choice():
    img = np.random.default_rng(1).integers(0, 255, (28, 28), dtype=np.uint8)
    assert choose_classifier(img, "OT", "breast_resnet", _specs()).name == "breast_resnet"
    route = choose_classifier(img, "OT", "cxr_big", _specs())
    assert route.name == "pneumonia_resnet" and route.switched and "enlarge" in route.reason
    assert not choose_classifier(img, "OT", "pneumonia_resnet", _specs()).switched


def test_declared_modality_and_colour_decide_first():
    rng = np.random.default_rng(2)
    us = rng.integers(0, 255, (300, 300), dtype=np.uint8)
    assert choose_classifier(us, "US", "pneumonia_resnet", _specs()).name == "breast_resnet"
    colour = np.stack([rng.integers(0, 255, (300, 300)), np.zeros((300, 300)), np.zeros((300, 300))], -1).astype(np.uint8)
    assert choose_classifier(colour, "OT", "cxr_big", _specs()).name == "retina_resnet"
    ct = rng.normal(0, 500, (300, 300)).astype(np.float32)
    route = choose_classifier(ct, "CT", "cxr_big", _specs())
    assert route.name == "cxr_big" and not route.switched and "No registered classifier" in route.reason
