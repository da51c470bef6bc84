"""Streamlit helpers for the Segment page: cached model, example study, controls, downloads.

Results (masks, uncertainty, reference masks) live in ``st.session_state`` under the study token,
never in process-wide caches; only the model (no user data) is in ``st.cache_resource``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import streamlit as st

from medviz.config import select_device
from medviz.constants import Plane, Task
from medviz.explain import explain, segmentation_target
from medviz.imaging.overlay import overlay_slice
from medviz.models.registry import list_models
from medviz.models.weights import load_model
from medviz.segmentation.data import lgg_test_patient
from medviz.segmentation.export import csv_bytes, dicom_seg_bytes, nifti_bytes, png_bytes
from medviz.segmentation.infer import segment_volume, tta_uncertainty
from medviz.segmentation.measure import label_measurements
from medviz.segmentation.preprocess import prepare_input
from medviz.segmentation.reference import ReferenceComparison, compare_with_reference, read_reference_mask
from medviz.types import MedvizError, Volume, affine_from_spacing

_RESULTS = "medviz.segment.results"  # the result store of the model shown
_RESULTS_BY_MODEL = "medviz.segment.results_by_model"  # {"token": study token, model name: its store}


@st.cache_resource(max_entries=2, show_spinner="Loading the segmentation model…")
def load_seg_model(name: str) -> tuple[Any, Any]:
    """The registered model (eval mode, sha256-checked), shared read-only by all sessions."""
    return load_model(name, device=select_device())


def model_names() -> list[str]:
    return [e.name for e in list_models(task=Task.SEGMENTATION)]


def model_label(name: str) -> str:
    """How a model is shown in the model choice: its name and whether it is shipped or user-trained."""
    return next((e.label for e in list_models(task=Task.SEGMENTATION) if e.name == name), name)


def label_name(entry: Any) -> str:
    """Display name of the model's foreground label (e.g. ``FLAIR abnormality``)."""
    return entry.spec.label_name


def lgg_example_volume(case_index: int = 0) -> Volume:
    """A test-split patient of the shared LGG folder (see :func:`medviz.segmentation.data.lgg_test_patient`)."""
    return lgg_test_patient(case_index)


def spacing_inputs(volume: Volume, token: str) -> Volume:
    """When the study has no spacing, ask for it; returns the volume with the spacing used."""
    if volume.spacing_known:
        return volume
    st.caption("This study has no pixel spacing: enter it for areas in mm² and volumes in mL.")
    c = st.columns(3)
    sx = c[0].number_input("Pixel width (mm)", 0.01, 50.0, 1.0, key=f"seg.{token}.sx")
    sy = c[1].number_input("Pixel height (mm)", 0.01, 50.0, 1.0, key=f"seg.{token}.sy")
    sz = c[2].number_input("Slice spacing (mm)", 0.01, 50.0, 1.0, key=f"seg.{token}.sz")

    spacing = (float(sz), float(sy), float(sx))
    return dataclasses.replace(volume, spacing=spacing, affine=affine_from_spacing(spacing))


def overlay_controls(token: str) -> tuple[float, str, tuple[int, int, int]]:
    """Opacity slider, fill/contour radio and label colour. Returns ``(opacity, mode, rgb)``."""
    mode = st.radio("Overlay", ["fill", "contour"], horizontal=True, key=f"seg.{token}.mode")
    opacity = st.slider("Opacity", 0.0, 1.0, 0.4, 0.05, key=f"seg.{token}.opacity", disabled=mode == "contour")
    hexcol = st.color_picker("Label colour", "#ff8c00", key=f"seg.{token}.color")
    rgb = tuple(int(hexcol[i:i + 2], 16) for i in (1, 3, 5))
    return float(opacity), str(mode), rgb  # type: ignore[return-value]


def results(token: str, model: str) -> dict[str, Any]:
    """This session's results of ``model`` on the study ``token``: one store per model (all dropped when the
    study changes), so a model change never shows another model's result under the new name, and switching
    back shows that model's own result again. The store shown is also kept under ``medviz.segment.results``."""
    by_model = st.session_state.get(_RESULTS_BY_MODEL)
    if by_model is None or by_model.get("token") != token:
        by_model = {"token": token}
        st.session_state[_RESULTS_BY_MODEL] = by_model
    store = by_model.setdefault(model, {"token": token, "model": model})
    st.session_state[_RESULTS] = store
    return store


def _fit_to_network(volume: Volume, spec: Any) -> tuple[Volume, tuple[int, int]]:
    """``(volume padded for the network, (rows, cols) to crop back to)``.

    A U-Net halves the slice at each stride, so its sides must be multiples of the strides' product (16 for
    lgg_unet); a 41 × 33 slice (the bundled head MR) made its skip connections disagree. The slices are padded at
    the bottom and right with each channel's minimum, which the stack normalisation maps to 0 (background), so
    the padding changes neither the scaling nor the image."""
    multiple = int(np.prod(spec.network_kwargs.get("strides") or [1]))
    rows, cols = volume.shape[1], volume.shape[2]
    pad_r, pad_c = -rows % multiple, -cols % multiple
    if not (pad_r or pad_c):
        return volume, (rows, cols)
    a = volume.array
    out = np.empty((a.shape[0], rows + pad_r, cols + pad_c, *a.shape[3:]), dtype=a.dtype)
    out[...] = a.min(axis=(0, 1, 2))
    out[:, :rows, :cols] = a
    return dataclasses.replace(volume, array=out), (rows, cols)


def run_segmentation(model: Any, entry: Any, volume: Volume, path: str) -> Any:
    """Segment with progress shown in an ``st.status`` box; returns the SegResult on the volume's grid."""
    with st.status(f"Segmenting {volume.shape[0]} slice(s) ({path})…", expanded=False) as status:
        # threshold, minimum component size and TTA: the spec's (chosen on val)
        padded, (rows, cols) = _fit_to_network(volume, entry.spec)
        res = segment_volume(model, padded, entry.spec, path=path)
        if padded is not volume:
            res = dataclasses.replace(res, mask=res.mask[:, :rows, :cols], prob=res.prob[:, :rows, :cols])
        status.update(label=f"Segmented on {res.device} ({res.path})", state="complete")
    return res


def tta_map(model: Any, entry: Any, volume: Volume) -> np.ndarray:
    """``(Z, Y, X)`` TTA uncertainty in [0, 1] (see :func:`medviz.segmentation.infer.tta_uncertainty`)."""
    padded, (rows, cols) = _fit_to_network(volume, entry.spec)
    return tta_uncertainty(model, prepare_input(padded, entry.spec)[0])[1][:, :rows, :cols]


def cam_map(model: Any, entry: Any, volume: Volume, mask: np.ndarray, index: int) -> np.ndarray:
    """``(Z, Y, X)`` map holding the Grad-CAM of axial slice ``index`` (zeros elsewhere).

    The target is the foreground logits inside the slice's mask (the whole slice when it is empty),
    explained by :func:`medviz.explain.explain` on the spec's ``cam_layer``.
    """
    spec = entry.spec
    padded, (rows, cols) = _fit_to_network(volume, spec)
    x, _ = prepare_input(padded, spec)
    target = np.zeros(x.shape[2:], dtype=mask.dtype)
    target[:rows, :cols] = mask[index]
    out = np.zeros(volume.shape[:3], dtype=np.float32)
    out[index] = explain(model, x[index], spec.cam_layer, segmentation_target(target))[:rows, :cols]
    return out


def downloads(volume: Volume, mask: np.ndarray, overlay_rgb: np.ndarray, rows: list[dict[str, Any]],
              memo: dict[str, Any], label: str = "FLAIR abnormality") -> None:
    """Download buttons whose files are encoded only when the user asks (in memory, nothing written to
    disk): NIfTI, PNG and CSV are built by the button's callable on click; the DICOM SEG, which can fail
    with a message, is built by a "Prepare" button and memoised in ``memo`` (this study's results).
    Downloading does not rerun the page, so the open tab stays open."""
    c = st.columns(4)
    c[0].download_button("NIfTI mask", lambda: nifti_bytes(volume, mask), "segmentation.nii.gz", "application/gzip",
                         key="seg.dl.nifti", on_click="ignore")
    c[1].download_button("Overlay PNG", lambda: png_bytes(overlay_rgb), "overlay.png", "image/png", key="seg.dl.png",
                         on_click="ignore")
    c[2].download_button("Measurements CSV", lambda: csv_bytes(rows), "measurements.csv", "text/csv",
                         key="seg.dl.csv", on_click="ignore")
    if not (volume.dicom_headers and mask.any()):
        c[3].caption("DICOM SEG needs a DICOM study and a non-empty mask.")
        return
    key = id(mask)  # memo is this study's result store, cleared on every new segmentation
    if memo.get("dicom_seg_key") != key and c[3].button("Prepare DICOM SEG", key="seg.dl.seg_prepare"):
        with st.spinner("Encoding the DICOM SEG…"):
            try:
                memo["dicom_seg"], memo["dicom_seg_error"] = dicom_seg_bytes(volume, mask, {1: label}), None
            except MedvizError as e:
                memo["dicom_seg"], memo["dicom_seg_error"] = None, str(e)
        memo["dicom_seg_key"] = key
    if memo.get("dicom_seg_key") == key:
        if memo.get("dicom_seg_error"):
            c[3].caption(f"DICOM SEG unavailable: {memo['dicom_seg_error']}")
        else:
            c[3].download_button("DICOM SEG", memo["dicom_seg"], "segmentation.dcm", "application/dicom",
                                 key="seg.dl.seg", on_click="ignore")


def fused_overlay(memo: dict[str, Any], volume: Volume, labels: np.ndarray, plane: str, index: int,
                  window: Any, colors: dict[int, tuple[int, int, int]], opacity: float,
                  mode: str) -> tuple[Any, np.ndarray]:
    """``(PlaneSlice, (rows, cols, 3) uint8)`` of the fused overlay, computed once per display state
    (labels, plane, slice, window, colours, opacity, mode) and kept in this study's result ``memo``, so
    the figure and the PNG export share one fusion and unrelated reruns do not redo it."""
    state = (id(labels), str(plane), int(index), window, tuple(sorted(colors.items())), float(opacity), mode)
    cached = memo.get("fused")
    if cached is None or cached[0] != state:
        cached = (state, overlay_slice(volume, labels, plane, index, window, colors, opacity, mode))
        memo["fused"] = cached
    return cached[1]


def reference_comparison(memo: dict[str, Any], file_id: str, name: str, data: bytes, volume: Volume,
                         mask: np.ndarray) -> ReferenceComparison:
    """Read the uploaded reference mask and compare it with ``mask``, once per (upload, result); kept in
    this study's result ``memo``. Raises MedvizError for an unreadable or non-overlapping mask."""
    key = (file_id, id(mask))
    cached = memo.get("reference")
    if cached is None or cached[0] != key:
        with st.spinner("Reading the reference mask and comparing…"):
            ref, notes = read_reference_mask(name, data, volume)
            cached = (key, compare_with_reference(mask, ref, notes))
        memo["reference"] = cached
    return cached[1]


def axial_index(plane: Plane | str, index: int) -> int | None:
    """The axial slice shown (0-based), or None when another plane is shown (the 2D model, its Grad-CAM
    and the slice strip work on axial slices)."""
    return int(index) if Plane(plane) == Plane.AXIAL else None


def measurement_rows(mask: np.ndarray, volume: Volume, plane: Plane | str, index: int,
                     entry: Any) -> list[dict[str, Any]]:
    """Per-label volume and areas of ``mask`` with ``volume``'s spacing; the area column is the shown axial
    slice, or the slice of largest area when another plane is shown."""
    return label_measurements(mask, volume.spacing, axial_index(plane, index), {1: label_name(entry)})


def has_surface(mask: np.ndarray, volume: Volume) -> bool:
    """A 3D surface can be drawn: a stack of several slices with a non-empty mask."""
    return bool(volume.is_3d and mask.any())
