"""Viewer widgets. Each returns plain values; widget keys carry the study token so that every
widget starts from sensible defaults (middle slice, default window...) when a new study loads."""

from __future__ import annotations

import re
import uuid

import numpy as np
import streamlit as st

from medviz.constants import Plane, WindowPreset
from medviz.imaging.measure import Histogram, Point, Roi, RoiStats, distance_mm, histogram
from medviz.imaging.slicing import PlaneSlice, available_planes, num_slices
from medviz.imaging.viz import histogram_figure
from medviz.imaging.windowing import finite_sample, window_presets
from medviz.io import load_files
from medviz.types import MedvizError, Volume
from medviz.ui.cache import session_memo
from medviz.ui.state import get_volume, no_study_message

_BOUND_KEY = "medviz.viewer.bound_volume"
_TOKEN_KEY = "medviz.viewer.token"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_md(text: object) -> str:
    """Text safe to show inside Streamlit markdown (file names, loader messages)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def study_token(volume: Volume) -> str:
    """A short id that changes whenever the session's current study object changes."""
    if st.session_state.get(_BOUND_KEY) is not volume:
        st.session_state[_BOUND_KEY] = volume
        st.session_state[_TOKEN_KEY] = uuid.uuid4().hex[:8]
    return st.session_state[_TOKEN_KEY]


def study_header(volume: Volume, source: str) -> None:
    """One caption line describing the study, then its load warnings."""
    z, y, x = volume.shape
    sz, sy, sx = volume.spacing
    spacing = f"{sx:.3g} × {sy:.3g} × {sz:.3g} mm" if volume.spacing_known else "spacing unknown (1 mm assumed)"
    parts = [volume.name or "unnamed", volume.modality, f"{x} × {y} × {z} px", spacing, source]
    st.caption(escape_md(" · ".join(p for p in parts if p)))
    for warning in volume.warnings:
        st.warning(escape_md(warning), icon=":material/warning:")


def slice_key(token: str, plane: Plane | str) -> str:
    """Session-state key of the 1-based slice slider of ``plane`` for the study ``token``."""
    return f"viewer.{token}.slice.{Plane(plane).value}"


def plane_and_slice(volume: Volume, token: str) -> tuple[Plane, int]:
    """Plane radio and slice slider. Returns the plane and the 0-based slice index."""
    reasons = available_planes(volume)
    blocked = next((r for r in reasons.values() if r), None)
    label = st.radio(
        "Plane", [p.value.capitalize() for p in Plane], horizontal=True,
        key=f"viewer.{token}.plane", disabled=blocked is not None, help=blocked,
    )  # fmt: skip
    plane = Plane(label.lower()) if label and reasons[Plane(label.lower())] is None else Plane.AXIAL
    if blocked:
        st.caption(f"Coronal and sagittal unavailable: {blocked}.")
    n = num_slices(volume, plane)
    if n == 1:
        st.caption("Single slice")
        return plane, 0
    return plane, slice_slider(n, slice_key(token, plane))


def slice_slider(n: int, key: str, label: str = "Slice") -> int:
    """The slice slider of every page: numbered 1..n as a person reads it, the middle slice first.

    Returns:
        The 0-based index of the chosen slice (0 without a slider when ``n`` is 1).
    """
    if n <= 1:
        return 0
    return int(st.slider(label, 1, n, value=(n + 1) // 2, key=key)) - 1


def slice_caption(index: int, n: int) -> str:
    """``"Slice k of n"``, numbered from 1 like :func:`slice_slider` (``index`` is 0-based)."""
    return f"Slice {index + 1} of {n}"


_KEPT = "medviz.kept."  # widget values kept across pages (a widget met on another page starts from its default)


def _seed(key: str, default: object) -> None:
    """Give widget ``key`` its kept value (or ``default``) before it is drawn.

    Streamlit keys a widget's value by the page it is drawn on: the same key drawn on another page (the Viewer's
    window on the Segment page) starts from the widget's default (a number input's minimum, 0) although the
    key still holds the old value. The value therefore lives under a plain key and is copied in every run."""
    st.session_state[key] = st.session_state.setdefault(_KEPT + key, default)


def _keep(*keys: str) -> None:
    """on_change callback: remember the widgets' new values (see :func:`_seed`)."""
    for key in keys:
        st.session_state[_KEPT + key] = st.session_state[key]


def window_picker(volume: Volume, token: str) -> WindowPreset | None:
    """Preset selectbox plus free width/level inputs; None for RGB (shown without windowing).

    The window is kept per study across pages: it opens on the default preset (CT: soft tissue) and shows
    the values that are applied, never a reset 0 / 0."""
    presets = session_memo("presets", token, lambda: window_presets(volume))
    if not presets:
        st.caption("Colour image: shown as acquired, without windowing.")
        return None
    key = f"viewer.{token}.window"
    first = presets[next(iter(presets))]

    def apply_preset() -> None:
        name = st.session_state[f"{key}.preset"]
        st.session_state.update({_KEPT + f"{key}.preset": name, _KEPT + f"{key}.width": float(presets[name].width),
                                 _KEPT + f"{key}.level": float(presets[name].level)})

    _seed(f"{key}.preset", next(iter(presets)))
    _seed(f"{key}.width", float(first.width))
    _seed(f"{key}.level", float(first.level))
    st.selectbox("Window preset", list(presets), key=f"{key}.preset", on_change=apply_preset)
    step = 10.0 if volume.units == "HU" else float(f"{max(first.width / 100, 1e-6):.1g}")
    c1, c2 = st.columns(2)
    width = c1.number_input(f"Width ({volume.units})", min_value=0.0, step=step, key=f"{key}.width", format="%g",
                            on_change=_keep, args=(f"{key}.width",))
    level = c2.number_input(f"Level ({volume.units})", step=step, key=f"{key}.level", format="%g",
                            on_change=_keep, args=(f"{key}.level",))
    return WindowPreset(str(st.session_state[f"{key}.preset"]), max(float(width), 1e-6), float(level))


def _point_inputs(label: str, key: str, default: Point, shape: tuple[int, int]) -> Point:
    for suffix, value in ((".r", default[0]), (".c", default[1])):
        st.session_state.setdefault(key + suffix, int(value))  # defaults via state: boxes may set them too
    c1, c2 = st.columns(2)
    row = c1.number_input(f"{label} row", 0, shape[0] - 1, key=f"{key}.r")
    col = c2.number_input(f"{label} col", 0, shape[1] - 1, key=f"{key}.c")
    return float(row), float(col)


def apply_box_selection(selection: object, ps: PlaneSlice, key: str) -> None:
    """Copy a box drawn on the chart into the ROI inputs (call before :func:`measurement_inputs`).

    Args:
        selection: the chart's state (``st.session_state[chart_key]``) or None.
        ps: the displayed plane, to turn plot coordinates back into pixels.
        key: the same key as given to :func:`measurement_inputs`.
    """
    boxes = ((selection or {}).get("selection") or {}).get("box") or []
    if not boxes or st.session_state.get(f"{key}.box_seen") == boxes[-1]:
        return
    st.session_state[f"{key}.box_seen"] = boxes[-1]
    xs, ys = boxes[-1].get("x", []), boxes[-1].get("y", [])
    if len(xs) < 2 or len(ys) < 2:
        return
    coords = ps.axis_coords()
    if coords is not None:
        rows_ax, cols_ax = coords[0], coords[1]
        rows = [(y - rows_ax.start) / rows_ax.step for y in ys]
        cols = [(x - cols_ax.start) / cols_ax.step for x in xs]
    else:
        rows = [y / (ps.row_mm or 1.0) for y in ys]
        cols = [x / (ps.col_mm or 1.0) for x in xs]
    try:
        roi = Roi.from_corners((min(rows), min(cols)), (max(rows), max(cols)), ps.shape)
    except ValueError:
        return
    st.session_state.update({f"{key}.roi": True, f"{key}.roi.a.r": roi.r0, f"{key}.roi.a.c": roi.c0,
                             f"{key}.roi.b.r": roi.r1, f"{key}.roi.b.c": roi.c1})  # fmt: skip


def measurement_inputs(ps: PlaneSlice, key: str) -> tuple[tuple[Point, Point] | None, Roi | None]:
    """Distance and ROI inputs in display pixel coordinates (row 0 = top edge).

    Returns:
        ``(distance points or None, ROI or None)``.
    """
    rows, cols = ps.shape
    distance = roi = None
    if st.toggle("Distance", key=f"{key}.dist"):
        a = _point_inputs("A", f"{key}.dist.a", (rows // 2, cols // 4), ps.shape)
        b = _point_inputs("B", f"{key}.dist.b", (rows // 2, (3 * cols) // 4), ps.shape)
        distance = (a, b)
    if st.toggle("ROI (rectangle)", key=f"{key}.roi", help="Or drag a box on the image with the box-select tool."):
        a = _point_inputs("Top-left", f"{key}.roi.a", (rows * 2 // 5, cols * 2 // 5), ps.shape)
        b = _point_inputs("Bottom-right", f"{key}.roi.b", (rows * 3 // 5, cols * 3 // 5), ps.shape)
        roi = Roi.from_corners(a, b, ps.shape)
    return distance, roi


def metadata_table(volume: Volume, token: str) -> list[dict[str, str]]:
    """Rows ``{"field", "value"}`` of the study's non-identifying facts (``Volume.meta`` + geometry)."""
    facts = {
        "modality": volume.modality, "units": volume.units, "orientation": volume.orientation,
        "shape (Z, Y, X)": " × ".join(map(str, volume.shape)),
        "spacing (z, y, x) mm": " × ".join(f"{s:.4g}" for s in volume.spacing)
        + ("" if volume.spacing_known else " (assumed)"),
        "value range": session_memo("value_range", token, lambda: _value_range(volume)),
    }  # fmt: skip
    facts.update({str(k): str(v) for k, v in volume.meta.items()})
    return [{"field": k, "value": v} for k, v in facts.items()]


def _value_range(volume: Volume) -> str:
    """Finite min..max, computed slice by slice (no volume-sized temporaries)."""
    if volume.is_rgb:
        return "RGB 0..255"
    low, high = np.inf, -np.inf
    for plane in volume.array:
        finite = np.isfinite(plane)
        if finite.any():
            low = min(low, float(np.min(plane, where=finite, initial=np.inf)))
            high = max(high, float(np.max(plane, where=finite, initial=-np.inf)))
    return f"{low:.6g} .. {high:.6g}" if low <= high else "no finite values"


def measurement_readout(
    ps: PlaneSlice, distance: tuple[Point, Point] | None, stats: RoiStats | None, volume: Volume
) -> None:
    """Metrics for the active distance and ROI measurements."""
    unit = "mm" if volume.spacing_known else "px"
    if distance is not None:
        a, b = distance
        d = distance_mm(a, b, ps.row_mm, ps.col_mm) if volume.spacing_known else float(np.hypot(b[0] - a[0], b[1] - a[1]))
        st.metric("Distance", f"{d:.1f} {unit}")
    if stats is not None:
        u = "" if volume.is_rgb else f" {volume.units}"
        st.metric("ROI mean ± SD", f"{stats.mean:.1f} ± {stats.std:.1f}{u}")
        st.caption(
            f"min {stats.min:.1f} · max {stats.max:.1f}{u} · area {stats.area_mm2:.1f} {unit}² "
            f"· {stats.n_pixels} px" + (" · luma of RGB" if volume.is_rgb else "")
        )


def histogram_panel(volume: Volume, ps: PlaneSlice, window: WindowPreset | None, token: str) -> None:
    """Intensity histogram of the slice or the whole volume, with the window shaded."""
    c1, c2 = st.columns([3, 1])
    scope = c1.radio("Values", ["Current slice", "Whole volume"], horizontal=True, key=f"viewer.{token}.hist.scope")
    log_y = c2.toggle("Log counts", value=True, key=f"viewer.{token}.hist.log")
    if scope == "Whole volume":
        hist = session_memo("volume_hist", token, lambda: _volume_histogram(volume))
    else:
        hist = histogram(ps.image, bins=256)
    units = "luma" if volume.is_rgb else volume.units
    st.plotly_chart(histogram_figure(hist, window=window, units=units, log_y=log_y), width="stretch", theme=None)


def _volume_histogram(volume: Volume) -> Histogram:
    """Histogram of (a sample of) the whole volume; RGB volumes as luma of at most ~64 frames."""
    if volume.is_rgb:
        return histogram(volume.array[:: max(1, volume.shape[0] // 64)], bins=256)
    return histogram(finite_sample(volume.array), bins=256)


def image_source(prefix: str, upload_label: str, purpose: str) -> tuple[Volume | None, str]:
    """Radio "current study" / "upload" for pages that run a model on one image.

    Args:
        prefix: widget-key prefix of the page (``"classify"``, ``"recon"``...).
        upload_label: label of the single-file uploader.
        purpose: completes "Open a study in the Viewer (or pick 'upload') to ...".

    Returns:
        ``(volume, token)``: the current study of this session or the uploaded file's first series,
        and a short id that changes when that image changes (for widget keys). The volume is None
        (after an info or error message) when there is nothing to work on; without a current study (a new
        session, e.g. after a reload) the message says the study must be reopened.
    """
    source = st.radio("image", ["current study", "upload"], horizontal=True, key=f"{prefix}.source")
    volume, token = None, ""
    if source == "upload":
        up = st.file_uploader(upload_label, type=None, key=f"{prefix}.upload")
        if up is not None:
            try:
                volume = load_files([(up.name, up.getvalue())]).series[0].volume
            except MedvizError as e:  # LoadError: nothing usable; its message names the file and the problem
                st.error(str(e))
                return None, ""
            token = f"upload-{up.file_id}"
    else:
        volume = get_volume()
        token = study_token(volume) if volume is not None else ""
    if volume is None and source == "upload":
        st.info(f"Upload an image (or pick 'current study') to {purpose}.")
    elif volume is None:
        st.info(no_study_message(f"{purpose} (or pick 'upload')"), icon=":material/refresh:")
    return volume, token
