"""AppTest of pages/segment.py with a tiny registered model (no shipped weights needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviz.types import Volume, affine_from_spacing

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "segment.py")


def _app(volume: Volume | None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=240)
    if volume is not None:
        at.session_state["medviz.volume"] = volume
    return at.run()


def test_page_without_study_or_models(tiny_registry, tmp_path, monkeypatch) -> None:
    at = _app(None)
    assert not at.exception
    assert any("No study is open" in i.value for i in at.info)
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "empty"))
    at = _app(None)
    assert any("No segmentation model" in w.value for w in at.warning)


def test_page_segments_and_offers_exports(tiny_registry, rng) -> None:
    arr = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    vol = Volume(array=arr, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="MR",
                 units="RGB", spacing_known=False, name="synthetic")
    at = _app(vol)
    assert not at.exception
    at.button(key="seg.run").click().run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "overlay figure missing"
    assert any("Pixel width" in n.label for n in at.number_input)  # spacing is asked for
    assert at.get("download_button"), "exports missing"
    assert at.dataframe
    at.radio(key=f"seg.{at.session_state['medviz.segment.results']['token']}.mode").set_value("contour").run()
    assert not at.exception
    at.button(key="seg.tta").click().run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 2
    # every figure themed like the Viewer: Streamlit's theme repainted the uncertainty map (zero bright red)
    assert [c.proto.theme for c in at.get("plotly_chart")] == [""] * len(at.get("plotly_chart"))
    # a reference mask equal to the prediction (NIfTI round trip) gives Dice 1
    from medviz.segmentation.export import nifti_bytes

    mask = at.session_state["medviz.segment.results"]["result"].mask
    at.file_uploader[0].set_value([("ref.nii.gz", nifti_bytes(vol, mask), "application/gzip")]).run()
    assert not at.exception, at.exception
    assert at.metric[0].value == "1.000"


@pytest.mark.data
def test_page_lgg_example_button(tiny_registry, data_dir) -> None:
    at = _app(None)
    at.button(key="seg.example").click().run()
    assert not at.exception
    assert at.session_state["medviz.volume"].array.shape[1:] == (256, 256, 3)


def _grey_study(kind: str) -> Volume:
    """A grey study with smooth anatomy-like values: CT in HU (air, soft tissue, bone) or MR in a.u. (all > 0)."""
    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(yy - 16, xx - 16)
    if kind == "CT":
        img = np.where(r < 14, 40.0 + 2.0 * (14 - r) * 5, -1000.0)
        img[r < 4] = 700.0
        units = "HU"
    else:
        img = 200.0 + 40.0 * r
        units = "a.u."
    arr = np.stack([img, img + 5]).astype(np.float32)
    return Volume(array=arr, spacing=(2.0, 1.0, 1.0), affine=affine_from_spacing((2.0, 1.0, 1.0)), modality=kind,
                  units=units, name=f"grey {kind}")


@pytest.mark.parametrize("kind", ["CT", "MR"])
def test_segment_page_keeps_the_viewer_window_of_a_grey_study(tiny_registry, kind) -> None:
    """Viewer → Segment: the window shown and applied is the study's (CT soft tissue 400/40, MR auto), never 0/0,
    and the fused overlay and its PNG export show the image (a 0/0 window made CT binary and MR plain white)."""
    import io

    from PIL import Image
    from streamlit.testing.v1 import AppTest

    from medviz.segmentation.export import png_bytes

    at = AppTest.from_file(str(Path(PAGE).parents[1] / "app.py"), default_timeout=240)
    at.session_state["medviz.volume"] = _grey_study(kind)
    at.session_state["viewer.interactive"] = False  # the static Viewer (no WebGL) has the width/level inputs
    at.run()
    viewer_window = [n.value for n in at.number_input[:2]]
    assert viewer_window[0] > 0
    at.switch_page("pages/segment.py").run()
    at.button(key="seg.run").click().run()
    assert not at.exception, at.exception
    width, level = (n for n in at.number_input if n.label.startswith(("Width", "Level")))
    assert [width.value, level.value] == viewer_window
    if kind == "CT":
        assert (width.value, level.value) == (400, 40)
    ps, fused = at.session_state["medviz.segment.results"]["fused"][1]
    exported = np.asarray(Image.open(io.BytesIO(png_bytes(fused))))
    assert len(np.unique(exported)) > 8, "the overlay export lost the grey levels of the image"
    assert (exported < 250).mean() > 0.5, "the overlay export is (almost) blank white"


def test_segment_page_numbers_slices_from_one_in_slider_image_and_table(tiny_registry) -> None:
    vol = _grey_study("MR")
    at = _app(vol)
    at.button(key="seg.run").click().run()
    token = at.session_state["medviz.segment.results"]["token"]
    for number in (1, 2):
        at.slider(key=f"viewer.{token}.slice.axial").set_value(number).run()
        assert not at.exception, at.exception
        assert at.slider(key=f"viewer.{token}.slice.axial").min == 1
        corner = next(a["text"] for a in _spec(at)["layout"]["annotations"] if a.get("name") == "corner")
        assert corner.split("<br>")[0] == f"Axial {number}/2", corner
        table = at.dataframe[0].value
        if "slice (1-based)" in table:
            assert list(table["slice (1-based)"]) == [number]


def _spec(at, index: int = 0) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_a_model_change_never_shows_the_old_result_under_the_new_name(tiny_registry) -> None:
    """Segment with one model, choose another: its name is shown with no result (Press Segment), not the first
    model's mask; choosing the first model again shows its own result."""
    import torch

    from medviz.models.nets import build_network
    from medviz.models.registry import sha256_file, upsert_entry
    from medviz.models.weights import save_state_dict
    from tests.segmentation.conftest import TINY_ARCH

    torch.manual_seed(1)
    path = tiny_registry / "tiny_seg_b.safetensors"
    save_state_dict(build_network(TINY_ARCH), path)
    upsert_entry({"name": "tiny_seg_b", "task": "segmentation", "file": path.name, "sha256": sha256_file(path),
                  "arch": TINY_ARCH, "threshold": 0.5, "min_size": 0, "cam_layer": "model.1.submodule.2"},
                 tiny_registry)
    at = _app(_grey_study("MR"))
    at.selectbox(key="seg.model").set_value("tiny_seg").run()
    at.button(key="seg.run").click().run()
    assert not at.exception, at.exception
    first = at.session_state["medviz.segment.results"]["result"]
    assert at.get("plotly_chart") and at.dataframe

    at.selectbox(key="seg.model").set_value("tiny_seg_b").run()
    assert not at.exception, at.exception
    assert not at.get("plotly_chart") and not at.dataframe and not at.get("download_button")
    assert any("Press Segment" in i.value and "tiny_seg_b" in i.value for i in at.info)
    assert "result" not in at.session_state["medviz.segment.results"]

    at.selectbox(key="seg.model").set_value("tiny_seg").run()
    assert at.session_state["medviz.segment.results"]["result"] is first and at.get("plotly_chart")


def test_a_new_session_explains_that_the_study_must_be_reopened_and_opens_the_example(tiny_registry) -> None:
    """After a browser reload the session is new: the page says why there is no study and opens the bundled
    example on request."""
    from medviz.io.examples import DEFAULT_EXAMPLE

    at = _app(None)
    assert not at.exception
    assert any("reload" in i.value and "Viewer" in i.value for i in at.info)
    at.button(key="seg.open_example").click().run()
    assert not at.exception, at.exception
    assert at.session_state["medviz.volume"].name == "anatomical.nii"
    assert DEFAULT_EXAMPLE == "mr_brain_3d" and at.button(key="seg.run")


def test_slices_of_any_size_segment_with_uncertainty_and_grad_cam(tiny_registry) -> None:
    """The bundled head MR has 41 × 33 slices; a U-Net needs sides that are multiples of its strides (4 for the
    tiny model, 16 for lgg_unet). The page pads for the network and crops back: no exception, maps on the grid."""
    arr = np.linspace(10.0, 900.0, 3 * 30 * 22, dtype=np.float32).reshape(3, 30, 22)
    vol = Volume(array=arr, spacing=(2.0, 1.0, 1.0), affine=affine_from_spacing((2.0, 1.0, 1.0)), modality="MR",
                 units="a.u.", name="odd")
    at = _app(vol)
    at.button(key="seg.run").click().run()
    assert not at.exception, at.exception
    store = at.session_state["medviz.segment.results"]
    assert store["result"].mask.shape == store["result"].prob.shape == vol.shape
    at.button(key="seg.tta").click().run()
    assert not at.exception, at.exception
    at.button(key="seg.cam").click().run()
    assert not at.exception, at.exception
    store = at.session_state["medviz.segment.results"]
    assert store["uncertainty"].shape == store["cam"].shape == vol.shape
