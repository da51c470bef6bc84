"""AppTest of the Classify and Evaluate pages (the tiny model; the shipped BreastMNIST model on real data)."""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from medviz.types import Volume, affine_from_spacing
from tests.classification.conftest import synthetic_image

ROOT = Path(__file__).resolve().parents[2]
CLASSIFY = str(ROOT / "pages" / "classify.py")
EVALUATE = str(ROOT / "pages" / "evaluate.py")
TIMEOUT = 120


def _volume(img: np.ndarray, modality: str = "OT") -> Volume:
    return Volume(array=img[None].astype(np.float32), spacing=(1.0, 1.0, 1.0),
                  affine=affine_from_spacing((1.0, 1.0, 1.0)), modality=modality, name="synthetic")


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_classify_page_current_study(tiny):
    img = synthetic_image(np.random.default_rng(5), True)
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT)
    at.session_state["medviz.volume"] = _volume(img)
    at.run()
    assert not at.exception and not at.error
    assert at.metric[0].value == "spot"
    assert len(at.get("plotly_chart")) == 3
    assert any("Modality unknown" in w.value for w in at.warning)
    for method in ("GradCAM++", "HiResCAM", "EigenCAM"):
        at.selectbox(key="classify.cam").set_value(method).run()
        assert not at.exception and not at.error
    at.selectbox(key="classify.target").set_value("clear").run()
    assert not at.exception and "clear" in " ".join(c.value for c in at.caption) + at.selectbox(key="classify.target").value


def test_classify_page_upload_and_empty_state(tiny):
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT).run()
    assert not at.exception and any("Open a study" in i.value for i in at.info)
    at.radio(key="classify.source").set_value("upload").run()
    img = np.kron(synthetic_image(np.random.default_rng(6), False), np.ones((4, 6), np.uint8))  # 112 x 168
    at.file_uploader(key="classify.upload").set_value([("clear.png", _png(img), "image/png")]).run()
    assert not at.exception and not at.error
    assert at.metric[0].value == "clear"
    assert any("Aspect ratio" in w.value for w in at.warning)


def test_classify_page_bad_upload_shows_error(tiny):
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT).run()
    at.radio(key="classify.source").set_value("upload").run()
    at.file_uploader(key="classify.upload").set_value([("junk.png", b"not an image", "image/png")]).run()
    assert not at.exception and at.error


@pytest.mark.data
def test_evaluate_page_breast(data_dir):
    at = AppTest.from_file(EVALUATE, default_timeout=TIMEOUT)
    at.run()
    at.selectbox(key="evaluate.model").set_value("breast_resnet").run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 3
    sens = float(at.metric[0].value)
    at.slider(key="evaluate.threshold").set_value(0.9).run()
    assert float(at.metric[0].value) <= sens  # a stricter bar for 'malignant' can only lose sensitivity
    with mock.patch("streamlit.switch_page") as switch:
        at.button[0].click().run()
    assert switch.call_args[0][0] == "pages/viewer.py"
    assert at.session_state["medviz.volume"].shape == (1, 28, 28)


def test_the_cam_can_be_explored_in_the_interactive_viewer(tiny):
    img = synthetic_image(np.random.default_rng(5), True)
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT)
    at.session_state["medviz.volume"] = _volume(img)
    at.run()
    at.toggle(key="classify.cam_webgl").set_value(True).run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2  # probabilities and the model's input; the CAM is in the viewer
    assert len([e for e in at.main if type(e).__name__ == "UnknownElement" and e.type == "component_instance"]) == 1


def test_the_slice_slider_is_one_based(tiny):
    stack = np.stack([synthetic_image(np.random.default_rng(k), True) for k in range(5)])
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT)
    at.session_state["medviz.volume"] = Volume(array=stack.astype(np.float32), spacing=(1.0, 1.0, 1.0),
                                               affine=affine_from_spacing((1.0, 1.0, 1.0)), name="stack")
    at.run()
    slider = at.slider(key="classify.slice.5")
    assert (slider.min, slider.max, slider.value) == (1, 5, 3)
    assert not at.exception


@pytest.mark.data
def test_full_size_cxr_goes_to_the_224_px_model_and_a_thumbnail_to_the_28_px_one(data_dir, monkeypatch):
    """Issue #15: the bundled test-split radiograph is classified by pneumonia_cxr224 at 224 px, CAM at 256 px;
    the same image as a 28-px thumbnail goes to a 28-px model; the evaluation page covers the new model."""
    from medviz.io import load_example

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(ROOT / "weights"))
    at = AppTest.from_file(CLASSIFY, default_timeout=TIMEOUT)
    at.session_state["medviz.volume"] = load_example("cxr_pneumonia")
    at.run()
    assert not at.exception and not at.error
    routed = [c.value for c in [*at.info, *at.caption] if c.value.startswith("Model: ")]
    assert routed and routed[0].startswith("Model: pneumonia_cxr224: the image is a full-size image (short side 256 px)")
    assert at.metric[0].value in ("normal", "pneumonia")
    captions = " ".join(c.value for c in at.caption)
    assert "at 256×256 px" in captions and "resize 256x256 -> 224x224" in captions
    at.selectbox(key="classify.model").set_value("pneumonia_cxr224").run()
    thumb = np.asarray(at.session_state["medviz.volume"].array[0][:, 89:345]).astype(np.uint8)[::9, ::9][:28, :28]
    at.session_state["medviz.volume"] = _volume(thumb, "DX")
    at.run()
    assert not at.exception
    assert any(i.value.startswith("Model: pneumonia_resnet") for i in at.info)

    ev = AppTest.from_file(EVALUATE, default_timeout=TIMEOUT).run()
    ev.selectbox(key="evaluate.model").set_value("pneumonia_cxr224").run()
    assert not ev.exception and not ev.error
    assert len(ev.get("plotly_chart")) == 3
