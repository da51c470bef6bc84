"""Shared data types. The ``Volume`` contract is stated here, once, for the whole project.

Volume contract
---------------
* ``array`` is a NumPy array of shape ``(Z, Y, X)`` for single-channel images or
  ``(Z, Y, X, C)`` with ``C == 3`` for RGB images (ultrasound, photos, fundus).
  ``Z`` is the slice axis; a 2D image has ``Z == 1``. Scalar data are ``float32``; RGB data
  are ``uint8``.
* Axis order and orientation: when the source carries patient geometry (DICOM with
  ImagePositionPatient/ImageOrientationPatient, NIfTI), the array is reoriented at load time to the
  closest **LPS+** axes: ``x`` (axis 2) increases towards the patient's Left, ``y`` (axis 1)
  towards Posterior, ``z`` (axis 0) towards Superior. An axial slice ``array[k]`` drawn with row 0
  at the top therefore shows anterior at the top and the patient's right on the image left
  (radiological convention). Oblique acquisitions keep their true direction in ``affine``;
  ``orientation`` then names the closest axes. A **single slice** (one 2D image, ``Z == 1``) is not
  reoriented: it keeps the file's row/column order — the plane the modality meant to be shown, e.g.
  a sagittal MR slice stays sagittal — with its true ``affine`` and axis codes in ``orientation``. Sources with no geometry (PNG/JPEG, X-ray) keep the
  file's row/column order and have ``orientation == "unknown"``.
* ``spacing`` is ``(sz, sy, sx)`` in millimetres, always positive and finite. ``spacing_known``
  is False when the source had none (PNG/JPEG) and ``1.0`` mm was assumed.
* ``affine`` is a 4x4 float64 matrix mapping a voxel index ``(x, y, z, 1)`` — note: column,
  row, slice — to patient coordinates in mm in the DICOM **LPS** frame. NIfTI (RAS) is converted.
* ``units`` says what the numbers mean: ``"HU"`` for CT (rescale slope/intercept applied),
  ``"a.u."`` for MR and other scalar data with arbitrary units, ``"RGB"`` for colour data.
* ``meta`` is a small dict of **non-identifying** facts (modality, manufacturer, slice thickness,
  transfer syntax...). It never holds names, IDs, dates or UIDs, so it may be shown and logged.
* ``dicom_headers`` (optional) keeps the source DICOM datasets *without pixel data*, in slice
  order, only so that exports (e.g. DICOM SEG) can reference the source series: one per source
  instance, in the final slice order when the acquisition axis is ``z`` (``meta["SourceSliceAxis"]``
  names the array axis that was the acquisition's slice axis, ``meta["SourceSliceFlipped"]`` whether
  it was reversed). It is never shown, logged or cached across sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Volume:
    """An image volume under the contract in this module's docstring.

    Attributes:
        array: ``(Z, Y, X)`` float32 or ``(Z, Y, X, 3)`` uint8.
        spacing: ``(sz, sy, sx)`` in mm.
        affine: 4x4 index ``(x, y, z, 1)`` -> LPS mm.
        modality: DICOM-style modality code (``CT``, ``MR``, ``CR``, ``DX``, ``US``, ``OT``...).
        units: ``"HU"``, ``"a.u."`` or ``"RGB"``.
        orientation: closest axis codes of ``(x, y, z)``, e.g. ``"LPS"``, or ``"unknown"``.
        spacing_known: False when spacing was assumed (1 mm).
        name: a display name that carries no patient identifier (e.g. the upload's file name).
        meta: non-identifying metadata.
        warnings: geometry or decoding problems found while loading, for the user to see.
        dicom_headers: source DICOM datasets without pixel data (exports only).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str = "OT"
    units: str = "a.u."
    orientation: str = "unknown"
    spacing_known: bool = True
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    dicom_headers: tuple[Any, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        a = self.array
        if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
            raise ValueError(f"Volume array must be (Z, Y, X) or (Z, Y, X, 3), not {a.shape}")
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"Volume spacing must be three positive finite mm values, not {self.spacing}")
        if np.shape(self.affine) != (4, 4):
            raise ValueError(f"Volume affine must be 4x4, not {np.shape(self.affine)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)``."""
        return tuple(int(s) for s in self.array.shape[:3])  # type: ignore[return-value]

    @property
    def is_rgb(self) -> bool:
        return self.array.ndim == 4

    @property
    def is_3d(self) -> bool:
        """True when there is more than one slice."""
        return self.array.shape[0] > 1


def affine_from_spacing(spacing: tuple[float, float, float]) -> np.ndarray:
    """A diagonal affine for data without patient geometry: index ``(x, y, z)`` -> mm."""
    sz, sy, sx = spacing
    return np.diag([sx, sy, sz, 1.0])


class MedvizError(Exception):
    """Base class for errors a user should see as a message (never a traceback)."""


class LoadError(MedvizError):
    """A file could not be read. ``source`` names the file (upload name, never a patient ID)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem
