"""Does the patient fit the classifier's training population? Warnings from the image's header.

A classifier's input spec may record the DICOM View Position of its training films (``views``) and the age
range of its training patients (``age_years``); the Kermany chest X-ray models were trained on frontal
(anterior-posterior) films of children aged one to five. A DICOM file's ``ViewPosition`` and ``PatientAge``
(read into ``Volume.meta`` as ``ViewPosition`` and ``PatientAgeYears``, :func:`medviz.io.dicom.safe_meta`)
are compared with them; a file without them (PNG, JPEG, NIfTI) gets one note that they could not be checked.
These only warn: the image itself may still look like the training images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medviz.models.specs import InputSpec

LATERAL = frozenset({"LL", "RL", "LAT", "LATERAL", "LLD", "RLD"})
VIEW_WORDS = {"AP": "anterior-posterior", "PA": "posterior-anterior", "LL": "left lateral", "RL": "right lateral"}


def _years(age: float) -> str:
    return f"{age:.0f} years" if age >= 2 else f"{age * 12:.0f} months"


def population_warnings(spec: InputSpec, header: Mapping[str, Any] | None) -> list[str]:
    """Sentences for a view or patient age outside the training population of ``spec`` (empty when the
    spec records neither, or the header fits).

    Args:
        header: the study's metadata (``Volume.meta``); None or without the keys: not recorded.
    """
    if not spec.views and spec.age_years is None:
        return []
    header = header or {}
    view = str(header.get("ViewPosition") or "").strip().upper()
    age = header.get("PatientAgeYears")
    trained = _population(spec)
    out = []
    if spec.views and view and view not in spec.views:
        kind = "a lateral film" if view in LATERAL else f"a {VIEW_WORDS.get(view, view)} film"
        out.append(f"View Position {view}: this is {kind}, and the model was trained on {trained} only; its answer "
                   "for this view is not meaningful.")
    if spec.age_years is not None and isinstance(age, (int, float)):
        lo, hi = spec.age_years
        if not lo <= age <= hi:
            older = "90 years or older" if age >= 90 else _years(age)
            out.append(f"Patient age {older} is outside the {lo:g}-{hi:g} years of the training patients ({trained}); "
                       f"{'adult chest films differ in anatomy, size and disease' if age >= 18 else 'the result may be wrong'}.")
    if not view and not isinstance(age, (int, float)):
        out.append(f"View and patient age are not recorded in this file, so they could not be checked: the model was "
                   f"trained on {trained}.")
    return out


def _population(spec: InputSpec) -> str:
    views = "/".join(spec.views) + " " if spec.views else ""
    ages = f" of patients aged {spec.age_years[0]:g}-{spec.age_years[1]:g} years" if spec.age_years else ""
    return f"{views}{spec.modality_label or spec.modality} images{ages}"
