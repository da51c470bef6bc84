"""The chest X-ray models warn for lateral films and for patients outside the paediatric training ages."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviz.classification.population import population_warnings
from medviz.io import load_path
from medviz.io.dicom import age_in_years
from medviz.models.registry import get_entry
from medviz.models.specs import InputSpec

EXAMPLE = "examples/cxr_normal_IM-0001-0001.jpg"
PAEDIATRIC = InputSpec(channels=1, size=224, modality="DX", modality_label="chest X-ray", views=("AP",),
                       age_years=(1.0, 5.0))


@pytest.mark.parametrize("text, years", [("045Y", 45.0), ("018M", 1.5), ("052W", 52 * 7 / 365.25),
                                         ("003D", 3 / 365.25), ("", None), ("45", None), ("04XY", None), (None, None)])
def test_dicom_age_strings_are_read_in_years(text, years):
    assert age_in_years(text) == (None if years is None else pytest.approx(years))


def _radiograph(path, view: str | None, age: str | None) -> None:
    pixels = np.asarray(Image.open(EXAMPLE).convert("L"))
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName = "DX", "Canary^Population"
    if view:
        ds.ViewPosition = view
    if age:
        ds.PatientAge = age
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("view, age, expect", [
    ("LL", "004Y", ["lateral film"]),
    ("AP", "045Y", ["Patient age 45 years", "adult chest films"]),
    ("LL", "091Y", ["lateral film", "90 years or older"]),
    ("AP", "003Y", []),
    ("PA", "002Y", ["posterior-anterior film"]),
])
def test_a_dicom_radiographs_view_and_age_are_checked_against_the_training_population(tmp_path, view, age, expect):
    path = tmp_path / "cxr.dcm"
    _radiograph(path, view, age)
    meta = load_path(path).series[0].volume.meta
    assert meta["ViewPosition"] == view and meta["PatientAgeYears"] <= 90
    words = " ".join(population_warnings(PAEDIATRIC, meta))
    assert all(e in words for e in expect) and (words == "") == (not expect)
    assert "Canary" not in str(meta)  # the name is never read into the metadata


def test_a_file_without_view_or_age_says_they_could_not_be_checked_and_other_models_say_nothing():
    meta = load_path(EXAMPLE).series[0].volume.meta
    (note,) = population_warnings(PAEDIATRIC, meta)
    assert "not recorded" in note and "aged 1-5 years" in note
    assert population_warnings(InputSpec(channels=1, size=28), {"ViewPosition": "LL"}) == []


@pytest.mark.parametrize("name", ["pneumonia_cxr224", "pneumonia_resnet"])
def test_the_shipped_chest_models_record_their_paediatric_frontal_population(name):
    spec = get_entry(name).spec.input
    assert spec.views == ("AP",) and spec.age_years == (1.0, 5.0)


def test_predict_reports_the_lateral_warning_for_a_shipped_chest_model(tmp_path):
    from medviz.classification.ood import load_stats
    from medviz.models.weights import load_model
    from medviz.predict import predict_file

    path = tmp_path / "lateral.dcm"
    _radiograph(path, "LL", "030Y")
    model, entry = load_model("pneumonia_cxr224")
    out = predict_file(model, entry, load_stats(entry), path)
    words = " ".join(out["warnings"])
    assert out["error"] is None and "lateral film" in words and "Patient age 30 years" in words
