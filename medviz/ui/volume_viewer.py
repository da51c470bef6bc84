"""The in-browser volume viewer: NiiVue (WebGL, from the npm registry) as a Streamlit component.

The study travels to the browser once: it is written as NIfTI (:func:`medviz.io.nifti_write.nifti_bytes_of`,
int16 when lossless, gzip) and hosted by Streamlit's media file manager for this session, and the component gets
only its URL. Slice steps, window/level (on the GPU), cine, zoom and pan then happen in the browser with no message
to the server; the component reports back finished actions only (a crosshair click, a finished distance or ROI, a
changed window), as a dict with a ``kind`` and a unique ``id``.

Why not the ``niivue-streamlit`` package: its API takes the volume as base64 in the component's arguments, so
every rerun of the page re-sends the whole study as text — the cost this viewer exists to remove.

The built assets live in ``volume_viewer_component/build`` (committed); ``volume_viewer_component/frontend``
holds the sources, ``package.json`` and ``package-lock.json``. Rebuild with
``npm ci --prefix medviz/ui/volume_viewer_component/frontend && npm run build --prefix
medviz/ui/volume_viewer_component/frontend``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

from medviz.imaging.windowing import window_presets
from medviz.io.nifti_write import nifti_bytes_of
from medviz.segmentation.reference import read_reference_mask
from medviz.types import MedvizError, Volume
from medviz.ui import measurements

BUILD = Path(__file__).resolve().parent / "volume_viewer_component" / "build"
_DECLARED: list = []


def _component(**kwargs: Any) -> Any:
    """The declared component, declared on first use from a page run: declaring it at import time could happen
    in the server's start-up warm-up, before the runtime whose registry serves the component's files exists."""
    if not _DECLARED:
        _DECLARED.append(components.declare_component("medviz_volume_viewer", path=str(BUILD)))
    return _DECLARED[0](**kwargs)
LAYOUTS = ("axial", "coronal", "sagittal", "multiplanar", "multiplanar3d", "render")


def hosted_url(data: bytes, slot: str) -> str:
    """The URL under which this session's browser can fetch ``data`` (a NIfTI), registered for this run of the
    page (Streamlit drops the file once no run of any session refers to it any more)."""
    from streamlit.runtime import get_instance

    return get_instance().media_file_mgr.add(data, "application/gzip", f"medviz.volume_viewer.{slot}")


def _study_bytes(volume: Volume, token: str) -> bytes:
    """The study's NIfTI bytes, made once per study and session (only the latest study is kept)."""
    key = "volume_viewer.nifti"
    held = st.session_state.get(key)
    if not held or held[0] != token:
        held = (token, nifti_bytes_of(volume))
        st.session_state[key] = held
    return held[1]


def volume_viewer(volume: Volume, token: str, *, layout: str = "multiplanar", height: int = 520, fps: int = 10,
                  overlay: Any = None, overlay_colormap: str = "red", overlay_range: tuple[float, float] = (0.5, 1.0),
                  overlay_opacity: float = 0.5, drawing: Any = None, drawing_version: str = "",
                  drawing_rgb: tuple[int, int, int] = (255, 64, 64), drawing_style: str = "fill",
                  key: str = "volume_viewer") -> dict | bytes | None:
    """Show ``volume`` in the WebGL viewer; returns the last action the user finished there (or None).

    Args:
        volume: the study (Volume contract; RGB clips play as cine too).
        token: a string that changes with the study (:func:`medviz.ui.widgets.study_token`).
        layout: the first layout: one of :data:`LAYOUTS` (a study without patient geometry is single-plane).
        height: canvas height in CSS pixels.
        fps: the cine's first frame rate.
        overlay: a map ``(Z, Y, X)`` on the study's grid drawn over it, not editable (a label map, or a heat map
            with ``overlay_colormap``/``overlay_range``, e.g. ``"warm"`` and ``(0.2, 1)`` for a Grad-CAM), or None.
        overlay_opacity: opacity of the overlay and of the drawing.
        drawing: a binary mask ``(Z, Y, X)`` to correct by hand (brush, eraser, undo), or None. "Apply
            correction" sends it back as NIfTI bytes (read them with :func:`medviz.io.nifti_write.array_on_grid`).
        drawing_version: changes when ``drawing`` changes (the browser then reloads it; otherwise strokes are kept).
        drawing_rgb, drawing_style: the mask's colour and ``"fill"`` or ``"contour"`` (rim only).
        key: the component's key.

    Returns:
        ``{"kind": "crosshair", "lps": [mm, mm, mm], "shown_value": v, "plane": ...}``,
        ``{"kind": "distance", "start_lps", "end_lps", "mm"}``, ``{"kind": "roi", "start_lps", "end_lps", "plane"}``,
        ``{"kind": "window", "low", "high"}`` or ``{"kind": "no-webgl"}``; each with a unique ``id``. Positions are
        LPS mm; :func:`medviz.imaging.patient_space.voxel_at` finds the voxel. After "Apply correction": the
        corrected mask as NIfTI ``bytes``.
    """
    data = _study_bytes(volume, token)
    presets = {name: [p.low, p.high] for name, p in window_presets(volume).items()}
    first = next(iter(presets.values()), [0.0, 255.0])
    overlay_url = drawing_url = None
    if overlay is not None:
        values = overlay if overlay.dtype.kind == "f" else overlay.astype("uint8")
        overlay_url = hosted_url(nifti_bytes_of(volume, values), f"{key}.overlay")
    if drawing is not None:
        drawing_url = hosted_url(nifti_bytes_of(volume, (drawing > 0).astype("uint8")), f"{key}.drawing")
    return _component(
        url=hosted_url(data, key),
        study=hashlib.sha256(token.encode()).hexdigest()[:16],
        window=first,
        presets=presets,
        units=volume.units,
        layout=layout if layout in LAYOUTS else "multiplanar",
        geometry=volume.orientation != "unknown" and volume.is_3d,
        height=height,
        fps=fps,
        overlay_url=overlay_url,
        overlay_opacity=overlay_opacity,
        overlay_colormap=overlay_colormap,
        overlay_range=list(overlay_range),
        drawing_url=drawing_url,
        drawing_version=drawing_version,
        drawing_rgb=[int(c) for c in drawing_rgb],
        drawing_style="contour" if drawing_style == "contour" else "fill",
        key=key,
        default=None,
    )


NO_WEBGL_KEY = "volume_viewer.no_webgl"


def webgl_unavailable() -> bool:
    """True once the browser of this session said it has no WebGL 2 (the pages then draw static images)."""
    return bool(st.session_state.get(NO_WEBGL_KEY))


@st.fragment
def viewer_panel(volume: Volume, token: str, *, layout: str = "multiplanar", key: str = "viewer.webgl") -> None:
    """The Viewer page's interactive panel: the WebGL viewer and, beside it, the study's measurements.

    A fragment: an action reported by the viewer reruns this panel only, never the page (and a slice step sends
    nothing at all). A browser without WebGL 2 is noted and the page falls back to its static rendering.
    """
    image_col, side_col = st.columns([3, 1], gap="medium")
    with side_col:
        overlay = segmentation_overlay(volume, token)
    with image_col:
        event = volume_viewer(volume, token, layout=layout, key=f"{key}.{token}", overlay=overlay,
                              overlay_range=(0.5, float(overlay.max()) if overlay is not None else 1.0))
    if isinstance(event, dict) and event.get("kind") == "no-webgl":
        st.session_state[NO_WEBGL_KEY] = True
        st.rerun()
    if isinstance(event, dict):
        measurements.record(volume, token, event)
    with side_col:
        st.markdown("**Measurements**")
        measurements.table(token)
        st.caption("Wheel or ↑/↓: slices · right- or Ctrl-drag: window/level · the ? button lists every shortcut.")


def segmentation_overlay(volume: Volume, token: str) -> Any:
    """A DICOM SEG (or NIfTI label map) opened from file and placed on the study through patient geometry, to draw
    over it; None when none is open. The file is read once per upload; problems are shown in words."""
    up = st.file_uploader("Overlay a segmentation (DICOM SEG or NIfTI)", key=f"viewer.{token}.overlay",
                          help="Drawn over this study where its patient coordinates say; segments become labels.")
    if up is None:
        return None
    memo_key = f"viewer.{token}.overlay.read"
    held = st.session_state.get(memo_key)
    if not held or held[0] != up.file_id:
        try:
            labels, notes = read_reference_mask(up.name, up.getvalue(), volume)
        except MedvizError as e:
            st.error(f"{up.name}: {e}")
            return None
        held = (up.file_id, labels, notes)
        st.session_state[memo_key] = held
    _, labels, notes = held
    n = int((labels > 0).sum())
    st.caption(f"{up.name}: {len(set(labels[labels > 0].tolist()))} segment(s), {n:,} voxels on this study"
               + ("; " + "; ".join(notes) if notes else ""))
    return labels
