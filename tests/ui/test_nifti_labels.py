"""A NIfTI that holds CT: the values suggest it (a note, never silently), the user sets modality/units on the
Viewer, the HU presets follow, and the choice is remembered for the study in the session."""

from __future__ import annotations

import numpy as np
import pytest
from apptest_helpers import TIMEOUT, VIEWER

from medviz.io.relabel import CT_LABEL, hu_evidence, relabel, suggest_labels
from medviz.types import Volume, affine_from_spacing


def _ct_values(shape=(6, 24, 24)) -> np.ndarray:
    """A head-CT-like array in HU: -1024 padding, air, soft tissue and a ring of bone."""
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    r = np.hypot(y - shape[1] / 2, x - shape[2] / 2)
    ct = np.full(shape, -1024.0, np.float32)
    ct[r < 10] = 35.0 + (z[r < 10] % 3)
    ct[(r >= 8) & (r < 10)] = 1200.0
    return ct


def _nifti_bytes(values: np.ndarray, **header) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(values, (2, 1, 0))).astype(np.int16), np.eye(4))
    for key, value in header.items():
        img.header[key] = value
    return img.to_bytes()


def _read(values: np.ndarray, **header) -> Volume:
    from medviz.io.nifti import read_nifti

    return read_nifti(_nifti_bytes(values, **header), "head_ct.nii")


def test_hu_values_are_suggested_as_ct_with_the_reason():
    vol = _read(_ct_values())
    assert (vol.modality, vol.units) == ("OT", "a.u.")  # the reader itself is unchanged
    hint = suggest_labels(vol)
    assert hint is not None and hint.label == CT_LABEL and "Hounsfield" in hint.reason and "-1024" in hint.reason


@pytest.mark.parametrize("values", [
    np.linspace(0, 900, 6 * 24 * 24, dtype=np.float32).reshape(6, 24, 24),  # MR: positive
    np.full((2, 8, 8), -1024.0, np.float32),  # only air: no bone, not plainly CT
])
def test_other_values_are_not_called_hu(values):
    vol = _read(values)
    assert hu_evidence(vol) is None and suggest_labels(vol) is None


@pytest.mark.parametrize("header, said", [
    ({"intent_name": b"HU"}, "intent name is 'HU'"),
    ({"descrip": b"CT head 5mm, Hounsfield"}, "description is 'CT head 5mm, Hounsfield'"),
])
def test_a_header_that_says_ct_is_suggested_even_when_the_values_do_not(header, said):
    """MR-like positive values, but the header's intent name or description says HU / CT: the note says so
    and quotes where; a label map (intent 1002) saying CT is never suggested as CT values."""
    positive = np.linspace(0, 900, 6 * 24 * 24, dtype=np.float32).reshape(6, 24, 24)
    vol = _read(positive, **header)
    hint = suggest_labels(vol)
    assert hint is not None and hint.label == CT_LABEL and said in hint.reason
    assert suggest_labels(_read(positive)) is None
    labels = _read(positive, intent_code=1002, descrip=b"CT organ labels")
    assert labels.meta["IntentCode"] == 1002 and labels.meta["Description"] == "CT organ labels"
    assert suggest_labels(labels) is None


def test_relabel_gives_hu_presets_and_leaves_the_input_alone():
    from medviz.imaging.windowing import window_presets

    vol = _read(_ct_values())
    ct = relabel(vol, CT_LABEL)
    assert (ct.modality, ct.units) == ("CT", "HU") and ct.array is vol.array
    assert (vol.modality, vol.units) == ("OT", "a.u.")
    assert "Soft tissue" in window_presets(ct) and "Soft tissue" not in window_presets(vol)
    assert suggest_labels(ct) is None
    with pytest.raises(KeyError, match="choose one of"):
        relabel(vol, "PET")
    rgb = Volume(np.zeros((1, 4, 4, 3), np.uint8), (1.0, 1.0, 1.0), affine_from_spacing((1.0, 1.0, 1.0)), units="RGB")
    with pytest.raises(ValueError, match="RGB"):
        relabel(rgb, CT_LABEL)


def test_viewer_sets_ct_for_a_nifti_and_remembers_it_for_the_study():
    from streamlit.testing.v1 import AppTest

    upload = [("head_ct.nii", _nifti_bytes(_ct_values()), "application/octet-stream")]
    at = AppTest.from_file(VIEWER, default_timeout=TIMEOUT)
    at.session_state["viewer.interactive"] = False  # the static rendering shows the window presets as widgets
    at.run()
    at.file_uploader[0].set_value(upload).run()
    assert not at.exception
    labels = at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Modality and units"))
    assert labels.value == "Other (a.u.)"
    assert any("Suggested: CT (HU)" in i.value and "Hounsfield" in i.value for i in at.sidebar.info)
    assert "Soft tissue" not in next(s for s in at.selectbox if s.label == "Window preset").options

    labels.set_value(CT_LABEL).run()
    assert not at.exception
    assert at.session_state["medviz.volume"].units == "HU"
    assert "Soft tissue" in next(s for s in at.selectbox if s.label == "Window preset").options
    assert next(n for n in at.number_input if n.label.startswith("Width")).label == "Width (HU)"
    assert not any("Suggested" in i.value for i in at.sidebar.info)

    at.file_uploader[0].set_value(upload).run()  # the same study opened again in this session
    assert not at.exception
    assert at.session_state["medviz.volume"].units == "HU"
    assert next(n for n in at.number_input if n.label.startswith("Width")).label == "Width (HU)"
