"""AppTest of the Classify page abstaining outside the model's domain, and saying calibration honestly."""

from __future__ import annotations

import numpy as np
import pytest
from apptest_helpers import ROOT, TIMEOUT

CLASSIFY = str(ROOT / "pages" / "classify.py")
ABSTAINS = "does not look like the model's training images"


@pytest.fixture(autouse=True)
def _shipped_weights(monkeypatch):
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(ROOT / "weights"))


def _page(volume, model: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT)
    at.session_state["medviz.volume"] = volume
    at.run()
    at.selectbox(key="classify.model").set_value(model).run()
    at.toggle(key="classify.auto").set_value(False).run()  # this model, whatever the input's size
    assert not at.exception, at.exception
    return at


def _abstains(at) -> bool:
    return any(ABSTAINS in e.value for e in at.error)


def _check_abstention_then_show_anyway(at) -> None:
    assert _abstains(at)
    assert len(at.metric) == 0  # no class label while abstaining
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the score against the val range, and what the model sees
    assert "validation images score" in " ".join(c.value for c in at.caption)
    toggle = at.toggle(key="classify.show_anyway")
    assert toggle.value is False
    toggle.set_value(True).run()
    assert not at.exception
    assert at.metric[0].label == "prediction (shown anyway)"
    assert any("Shown anyway" in w.value for w in at.warning)


def test_pneumonia_model_abstains_on_a_fundus_photograph_until_shown_anyway():
    from medviz.io import load_example

    _check_abstention_then_show_anyway(_page(load_example("retina_photo"), "pneumonia_resnet"))


@pytest.mark.data
def test_pneumonia_model_abstains_on_an_lgg_brain_slice(data_dir):
    from medviz.io import load_path

    png = data_dir / "lgg_flair_mri_seg" / "images" / "TCGA_CS_4943_20000902_10.png"
    volume = load_path(png).series[0].volume
    at = _page(volume, "pneumonia_resnet")
    _check_abstention_then_show_anyway(at)


@pytest.mark.data
def test_paediatric_chest_xray_is_answered_and_called_calibrated(data_dir):
    from medviz.io import load_path

    jpg = sorted((data_dir / "cxr_pneumonia_kermany" / "val" / "NORMAL").glob("*.jpg"))[0]
    at = _page(load_path(jpg).series[0].volume, "pneumonia_resnet")
    assert not _abstains(at) and at.metric[0].label == "prediction"
    assert at.metric[0].delta.endswith(" calibrated")  # temperature scaling lowered this model's test ECE


def test_breast_model_does_not_call_its_probability_calibrated():
    """Temperature scaling made breast_resnet's test ECE worse: the page says so, with the numbers."""
    from medviz.models.registry import get_entry
    from medviz.types import Volume, affine_from_spacing

    test = get_entry("breast_resnet").spec.test_metrics
    img = np.random.default_rng(0).integers(0, 255, (28, 28)).astype(np.uint8)
    volume = Volume(array=img[None].astype(np.float32), spacing=(1.0, 1.0, 1.0),
                    affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="US", name="noise")
    at = _page(volume, "breast_resnet")
    if _abstains(at):
        at.toggle(key="classify.show_anyway").set_value(True).run()
    assert "calibrated" not in at.metric[0].delta and "temperature-scaled" in at.metric[0].delta
    captions = " ".join(c.value for c in at.caption)
    assert "worse" in captions and f"{test['ece_calibrated']:.3f}" in captions and f"{test['ece']:.3f}" in captions
