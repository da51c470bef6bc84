"""AppTest tests of pages/viewer.py: default study, controls, uploads, errors, state reset."""

from __future__ import annotations

import numpy as np
import pytest
from apptest_helpers import TIMEOUT, VIEWER, chart_spec, dicom_series, plotly_array, png_upload, study_caption

from medviz.ui.loading import EXAMPLE_SELECT_KEY


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _open_example(at, key: str):
    return at.selectbox(key=EXAMPLE_SELECT_KEY).set_value(key).run()


def _upload(at, files):
    at.file_uploader[0].set_value(files)
    return at.run()


def test_opens_on_a_real_3d_study_with_a_start_here_line(viewer):
    """The demo's first screen: the bundled 3D MR (browsable in three planes), a "start here" line, its source."""
    from medviz.io.examples import DEFAULT_EXAMPLE, load_example

    _no_exception(viewer)
    assert viewer.selectbox(key=EXAMPLE_SELECT_KEY).value == DEFAULT_EXAMPLE == "mr_brain_3d"
    assert load_example(DEFAULT_EXAMPLE).is_3d
    assert not viewer.radio[0].disabled and viewer.slider[0].max > 1  # coronal/sagittal and slices to browse
    assert any(i.value.startswith("Start here") for i in viewer.info)
    assert viewer.header[0].value == "Viewer"
    spec = chart_spec(viewer)
    assert spec["data"][0]["type"] == "heatmap"
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"
    assert any("Source" in c.value for c in viewer.sidebar.caption)  # example source shown


def test_changing_preset_and_slice_rerenders(viewer):
    at = _open_example(viewer, "ct_series_with_gap")
    _no_exception(at)
    before = chart_spec(at)["data"][0]
    preset = next(s for s in at.selectbox if s.label == "Window preset")
    assert preset.value == "Soft tissue"
    preset.set_value("Lung").run()
    after = chart_spec(at)["data"][0]
    assert (after["zmin"], after["zmax"]) == (-1350, 150)
    assert (before["zmin"], before["zmax"]) == (-160, 240)
    assert [n.value for n in at.number_input[:2]] == [1500, -600]  # width/level follow the preset
    slider = at.slider[0]
    assert (slider.min, slider.max, slider.value) == (1, 3, 2)
    slider.set_value(3).run()
    _no_exception(at)
    assert not np.array_equal(plotly_array(chart_spec(at)["data"][0]["z"]), plotly_array(after["z"]))
    assert any("Axial 3/3" in a["text"] for a in chart_spec(at)["layout"]["annotations"])
    at.number_input[0].set_value(100.0).run()  # free width
    assert chart_spec(at)["data"][0]["zmax"] - chart_spec(at)["data"][0]["zmin"] == 100


def test_coronal_and_sagittal_for_3d_only(viewer):
    at = _open_example(viewer, "mr_brain_3d")
    plane = at.radio[0]
    assert not plane.disabled
    plane.set_value("Coronal").run()
    _no_exception(at)
    notes = {a.get("name"): a["text"] for a in chart_spec(at)["layout"]["annotations"]}
    assert "S" in notes["orientation-top"] and "R" in notes["orientation-left"]
    at = _open_example(at, "ct_small")  # single slice
    assert at.radio[0].disabled and at.radio[0].value == "Axial"
    assert any("single-slice" in c.value for c in at.main.caption)


def test_rgb_example_has_no_window_controls(viewer):
    at = _open_example(viewer, "retina_photo")
    _no_exception(at)
    assert not [s for s in at.selectbox if s.label == "Window preset"]
    assert chart_spec(at)["data"][0]["type"] == "image"


def test_upload_dicom_series_becomes_the_study(viewer):
    at = _upload(viewer, dicom_series(n_slices=3))
    _no_exception(at)
    assert not at.error
    assert "24 × 32 × 3 px" in study_caption(at)
    assert at.selectbox(key=EXAMPLE_SELECT_KEY).value is None  # no example open now
    hover = chart_spec(at)["data"][0]["hovertemplate"]
    assert "HU" in hover and "LPS" in hover


def test_upload_png_is_single_slice(viewer):
    at = _upload(viewer, [png_upload()])
    _no_exception(at)
    assert "60 × 40 × 1 px" in study_caption(at)
    assert at.radio[0].disabled


def test_bad_upload_shows_error_and_keeps_previous_study(viewer):
    before = study_caption(viewer)
    at = _upload(viewer, [("junk.dcm", b"this is not an image" * 10, "application/dicom")])
    _no_exception(at)
    assert at.error and "previous study stays open" in at.error[0].value
    assert study_caption(at) == before
    assert chart_spec(at)["data"][0]["type"] == "heatmap"


def test_problems_are_listed_and_good_files_load(viewer):
    at = _upload(viewer, [*dicom_series(n_slices=2), ("broken.dcm", b"\0" * 300, "application/dicom")])
    _no_exception(at)
    assert "24 × 32 × 2 px" in study_caption(at)
    assert any("broken" in w.value for w in at.warning)


def test_several_series_let_the_user_pick(viewer):
    at = _upload(viewer, [*dicom_series(n_slices=2, series=1), *dicom_series(n_slices=4, series=2, seed=1)])
    _no_exception(at)
    picker = next(s for s in at.selectbox if "series found" in s.label)
    assert len(picker.options) == 2
    assert "× 2 px" in study_caption(at)  # the first series is shown at once
    picker.set_value("2").run()  # option values are the series keys
    _no_exception(at)
    assert "× 4 px" in study_caption(at)


def test_new_study_resets_slice(viewer):
    at = _open_example(viewer, "ct_series_with_gap")
    at.slider[0].set_value(3).run()
    at = _upload(at, dicom_series(n_slices=3))
    assert (at.slider[0].max, at.slider[0].value) == (3, 2)


def test_distance_and_roi_measurements(viewer):
    at = _upload(viewer, dicom_series(n_slices=3))
    at.toggle(key=next(t.key for t in at.toggle if t.label == "Distance")).set_value(True).run()
    inputs = {n.label: n for n in at.number_input}
    inputs["A row"].set_value(0)
    inputs["A col"].set_value(0)
    inputs["B row"].set_value(6)
    inputs["B col"].set_value(0).run()
    assert at.metric[0].value == "4.2 mm"  # 6 rows x 0.7 mm
    roi_toggle = next(t for t in at.toggle if t.label.startswith("ROI"))
    roi_toggle.set_value(True).run()
    inputs = {n.label: n for n in at.number_input}
    inputs["Top-left row"].set_value(2)
    inputs["Top-left col"].set_value(16)
    inputs["Bottom-right row"].set_value(7)
    inputs["Bottom-right col"].set_value(21).run()
    _no_exception(at)
    roi_metric = next(m for m in at.metric if m.label.startswith("ROI"))
    assert roi_metric.value == "500.0 ± 0.0 HU"
    assert any("area 12.6 mm²" in c.value for c in at.main.caption)  # 36 px x 0.35 mm²


def test_metadata_and_warnings_shown(viewer):
    at = _open_example(viewer, "ct_series_with_gap")
    assert any("gap" in w.value for w in at.main.warning)  # Volume.warnings
    table = at.dataframe[0].value
    assert "Manufacturer" in set(table["field"])
    assert not any(k in set(table["field"]) for k in ("PatientName", "PatientID", "StudyDate"))


@pytest.mark.parametrize("key", ["us_multiframe", "shepp_logan", "mr_small"])
def test_every_kind_of_example_renders_with_histograms(viewer, key):
    at = _open_example(viewer, key)
    _no_exception(at)
    trace = chart_spec(at)["data"][0]
    if trace["type"] == "image":  # colour: one PNG, the probe gives the position
        assert trace["source"].startswith("data:image/png;base64,") and "%{x" in trace["hovertemplate"]
    else:
        assert trace["type"] == "heatmap" and "row %{customdata[0]}" in trace["hovertemplate"]
    assert chart_spec(at, 1)["data"][0]["type"] == "bar"  # slice histogram
    next(r for r in at.radio if r.label == "Values").set_value("Whole volume").run()
    _no_exception(at)
    assert plotly_array(chart_spec(at, 1)["data"][0]["y"]).sum() > 0


def test_sessions_do_not_share_uploads(viewer):
    from streamlit.testing.v1 import AppTest

    _upload(viewer, dicom_series(n_slices=3))
    other = AppTest.from_file(VIEWER, default_timeout=TIMEOUT).run()
    assert "24 × 32 × 3 px" in study_caption(viewer)
    assert "24 × 32 × 3 px" not in study_caption(other)
    assert other.selectbox(key=EXAMPLE_SELECT_KEY).value is not None  # the other session shows an example


@pytest.mark.parametrize("plane", ["Axial", "Coronal", "Sagittal"])
def test_slice_slider_is_one_based_and_the_image_caption_shows_its_number(viewer, plane):
    at = _open_example(viewer, "mr_brain_3d")
    at.radio[0].set_value(plane).run()
    slider = at.slider[0]
    assert slider.min == 1
    for number in (1, int(slider.max)):
        at.slider[0].set_value(number).run()
        _no_exception(at)
        corner = next(a["text"] for a in chart_spec(at)["layout"]["annotations"] if a.get("name") == "corner")
        assert corner.split("<br>")[0] == f"{plane} {number}/{int(slider.max)}", corner


@pytest.mark.parametrize("key", ["ct_small", "mr_brain_3d", "ct_series_with_gap", "mr_small", "us_multiframe",
                                 "retina_photo", "shepp_logan"])
def test_every_example_shows_its_description_and_source(viewer, key):
    from medviz.io import list_examples

    example = next(e for e in list_examples() if e.key == key)
    at = viewer if key == "mr_brain_3d" else _open_example(viewer, key)
    _no_exception(at)
    text = " ".join(c.value for c in at.sidebar.caption).replace("\\", "")
    assert example.description in text and f"Source: {example.source}" in text
    assert not any(i.value.startswith("Start here") for i in at.info) or key == "mr_brain_3d"
