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
from medviz.datasets.lgg import cases, load_case
from medviz.models.registry import list_models
from medviz.models.weights import load_model
from medviz.segmentation.data import default_data_dir
from medviz.segmentation.export import csv_bytes, dicom_seg_bytes, nifti_bytes, png_bytes
from medviz.segmentation.infer import CAM_LAYER, gradcam_slice, segment_volume, tta_uncertainty
from medviz.segmentation.preprocess import input_spec, prepare_input
from medviz.types import MedvizError, Volume, affine_from_spacing

_RESULTS = "medviz.segmentation.infer.results"


@st.cache_resource(max_entries=2, show_spinner="Loading the segmentation model…")
def load_seg_model(name: str) -> tuple[Any, Any]:
    """The registered model (eval mode, sha256-checked), shared read-only by all sessions."""
    return load_model(name, device=select_device())


def model_names() -> list[str]:
    return [e.name for e in list_models(task="segmentation")]


def label_name(entry: Any) -> str:
    """Display name of the model's foreground label (e.g. ``FLAIR abnormality``)."""
    return input_spec(entry)[2]


def lgg_example_volume(case_index: int = 0) -> Volume:
    """A test-split patient of the shared LGG folder as an RGB MR Volume (no spacing known)."""
    root = default_data_dir()
    case = cases(root, "test")[case_index]
    image, _ = load_case(root, case)
    return Volume(array=image, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)),
                  modality="MR", units="RGB", orientation="unknown", spacing_known=False,
                  name=f"LGG test patient {case_index + 1} (T1 / FLAIR / T1c)")


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


def results(token: str) -> dict[str, Any]:
    """This session's results for the study ``token`` (cleared when the study changes)."""
    store = st.session_state.get(_RESULTS)
    if store is None or store.get("token") != token:
        store = {"token": token}
        st.session_state[_RESULTS] = store
    return store


def run_segmentation(model: Any, entry: Any, volume: Volume, path: str) -> Any:
    """Segment with progress shown in an ``st.status`` box; returns the SegResult."""
    with st.status(f"Segmenting {volume.shape[0]} slice(s) ({path})…", expanded=False) as status:
        res = segment_volume(model, volume, path=path, threshold=float(entry.get("threshold", 0.5)),
                             min_size=int(entry.get("min_size", 0)), entry=entry)
        status.update(label=f"Segmented on {res.device} ({res.path})", state="complete")
    return res


def tta_map(model: Any, entry: Any, volume: Volume) -> np.ndarray:
    """``(Z, Y, X)`` TTA uncertainty in [0, 1] (see :func:`medviz.segmentation.infer.tta_uncertainty`)."""
    return tta_uncertainty(model, prepare_input(volume, entry)[0])[1]


def cam_map(model: Any, entry: Any, volume: Volume, mask: np.ndarray, index: int) -> np.ndarray:
    """``(Z, Y, X)`` map holding the Grad-CAM of axial slice ``index`` (zeros elsewhere)."""
    x, _ = prepare_input(volume, entry)
    out = np.zeros(volume.shape, dtype=np.float32)
    out[index] = gradcam_slice(model, x[index], mask[index], entry.get("cam_layer", CAM_LAYER))
    return out


def downloads(volume: Volume, mask: np.ndarray, overlay_rgb: np.ndarray, rows: list[dict[str, Any]],
              memo: dict[str, Any], label: str = "FLAIR abnormality") -> None:
    """Download buttons (bytes in memory, nothing written to disk); slow exports memoised in ``memo``."""
    c = st.columns(4)
    c[0].download_button("NIfTI mask", nifti_bytes(volume, mask), "segmentation.nii.gz", "application/gzip",
                         key="seg.dl.nifti")
    c[1].download_button("Overlay PNG", png_bytes(overlay_rgb), "overlay.png", "image/png", key="seg.dl.png")
    c[2].download_button("Measurements CSV", csv_bytes(rows), "measurements.csv", "text/csv", key="seg.dl.csv")
    if volume.dicom_headers and mask.any():
        try:
            if "dicom_seg" not in memo:
                memo["dicom_seg"] = dicom_seg_bytes(volume, mask, {1: label})
            data = memo["dicom_seg"]
        except MedvizError as e:
            c[3].caption(f"DICOM SEG unavailable: {e}")
        else:
            c[3].download_button("DICOM SEG", data, "segmentation.dcm", "application/dicom", key="seg.dl.seg")
    else:
        c[3].caption("DICOM SEG needs a DICOM study and a non-empty mask.")
