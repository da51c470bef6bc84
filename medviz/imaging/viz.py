"""Plotly figure builders for the slice viewer (no Streamlit here).

:func:`slice_figure` draws a :class:`~medviz.imaging.slicing.PlaneSlice` in radiological orientation on
physical axes: for planes parallel to patient axes the axes *are* LPS coordinates in mm, so the
aspect ratio follows the pixel spacing. Grey images are a ``Heatmap`` of the raw values with
the window applied as ``zmin``/``zmax`` (windowing happens in the browser, the hover probe shows
the raw value, e.g. HU); RGB images are a plotly ``Image`` shown as they are. Slices larger than
``max_display_px`` are shown decimated (every n-th pixel) to keep messages small; the hover probe
then still reports the original row/column of the pixel shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from medviz.constants import WindowPreset
from medviz.imaging.measure import Histogram, Point, Roi, RoiStats, distance_mm
from medviz.imaging.slicing import LPS_NAMES, PlaneSlice

LABEL_COLOR = "#ffd54f"  # amber, as on most workstation overlays
MEASURE_COLOR = "#00e5ff"
ROI_COLOR = "#76ff03"
BACKGROUND = "#000000"
DEFAULT_MAX_DISPLAY_PX = 1024
#: The colour of zero in every non-negative map: the black of the image background, so "nothing" reads as nothing.
NEUTRAL_ZERO = "#000000"
#: The one colour scale of every non-negative map (TTA uncertainty, Grad-CAM, |difference|, counts): inferno
#: (perceptually uniform, readable in grey) from :data:`NEUTRAL_ZERO` at 0 through purple and orange to pale yellow.
NONNEG_COLORSCALE: tuple[tuple[float, str], ...] = tuple(
    (i / 9, c) for i, c in enumerate((NEUTRAL_ZERO, "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925",
                                      "#fb9b06", "#f7d13d", "#fcffa4"))
)


def nonneg_scale(zmax: float, title: str, units: str) -> dict:
    """Heatmap settings shared by every non-negative map: :data:`NONNEG_COLORSCALE` from 0 (neutral) to ``zmax``
    and a colour bar titled with the map's name and units.

    Args:
        zmax: the value drawn brightest (values above are clipped); a non-positive or non-finite value gives 1.
        title: what the map shows (``"uncertainty"``, ``"|difference|"``).
        units: the map's units, shown in brackets on the colour bar (``"0-1"``, ``"fraction of reference max"``).

    Returns:
        Keyword arguments for ``go.Heatmap`` (or ``trace.update``): ``colorscale``, ``zmin``, ``zmax``,
        ``showscale``, ``colorbar``.

    Example:
        >>> nonneg_scale(1.0, "Grad-CAM", "relative, 0-1")["colorscale"][0]
        [0.0, '#000000']
    """
    top = float(zmax) if np.isfinite(zmax) and zmax > 0 else 1.0
    return dict(colorscale=[list(stop) for stop in NONNEG_COLORSCALE], zmin=0.0, zmax=top, showscale=True,
                colorbar=dict(title=dict(text=f"{title}<br>({units})" if units else title)))


@dataclass(frozen=True)
class _Axis:
    """Display index -> plot coordinate ``start + step * i``; ``title`` for the axis."""

    start: float
    step: float
    title: str

    def at(self, i: float | np.ndarray) -> float | np.ndarray:
        return self.start + self.step * i


def _axes(ps: PlaneSlice, spacing_known: bool) -> tuple[_Axis, _Axis, Callable[[], str] | None]:
    """(row axis, col axis, LPS hover text builder or None when customdata must carry LPS)."""
    coords = ps.axis_coords()
    if coords is not None:
        rows, cols, fixed = coords
        slots = {rows.name: "%{y:.1f}", cols.name: "%{x:.1f}", fixed.name: f"{fixed.start:.1f}"}

        def lps_text() -> str:
            return "LPS " + ", ".join(slots[n] for n in LPS_NAMES) + " mm"

        return (
            _Axis(rows.start, rows.step, f"{rows.name} (mm)"),
            _Axis(cols.start, cols.step, f"{cols.name} (mm)"),
            lps_text,
        )
    unit = "mm" if spacing_known else "px"
    row_mm, col_mm = (ps.row_mm, ps.col_mm) if spacing_known else (1.0, 1.0)
    return _Axis(0.0, row_mm, f"rows ({unit})"), _Axis(0.0, col_mm, f"columns ({unit})"), None


def _compact(values: np.ndarray) -> np.ndarray:
    """Smallest lossless dtype for sending: int16 for integral values in range, else float32.

    Non-finite values become NaN (drawn as background).
    """
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int16) if arr.size and -32768 <= arr.min() and arr.max() <= 32767 else arr
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if finite.all():
        if arr.size and np.abs(arr).max() <= 32767 and np.array_equal(arr, np.rint(arr)):
            return arr.astype(np.int16)
        return arr
    return np.where(finite, arr, np.float32(np.nan))


def _value_format(z: np.ndarray, units: str) -> str:
    suffix = f" {units}" if units and units not in ("RGB",) else ""
    return ("%{z}" if np.issubdtype(z.dtype, np.integer) else "%{z:.4g}") + suffix


def slice_figure(
    ps: PlaneSlice,
    *,
    window: WindowPreset | None,
    units: str,
    spacing_known: bool = True,
    distance: tuple[Point, Point] | None = None,
    roi: Roi | None = None,
    roi_stats: RoiStats | None = None,
    max_display_px: int = DEFAULT_MAX_DISPLAY_PX,
    uirevision: str | None = None,
    height: int | None = None,
    selectable: bool = False,
) -> go.Figure:
    """The slice as an image on physical axes, with orientation labels and measurements.

    Args:
        ps: the plane to draw (grey ``(rows, cols)`` or RGB ``(rows, cols, 3)``).
        window: grey window (ignored for RGB); None shows the finite min..max.
        units: value units for the hover probe (``"HU"``, ``"a.u."``, ``"RGB"``).
        spacing_known: False draws pixel axes (spacing was assumed).
        distance: two display points ``(row, col)`` to join with a labelled line.
        roi: rectangle to outline; ``roi_stats`` adds its statistics as a label.
        max_display_px: larger slices are decimated to at most this many pixels per side.
        uirevision: keep the user's zoom/pan while this string stays the same.
        height: figure height in px; default from the image's aspect ratio (300..760 px).
        selectable: add an invisible marker trace at the image corners so that plotly offers
            box selection (image traces are not selectable); a drawn box then reports its range.

    Returns:
        A ``go.Figure`` whose first trace is the image (``Heatmap`` or ``Image``).
    """
    rows_ax, cols_ax, lps_text = _axes(ps, spacing_known)
    grid = _display_grid(ps, rows_ax, cols_ax, lps_text, spacing_known, max_display_px)
    if height is None:
        n_rows, n_cols = ps.shape
        aspect = (n_rows * abs(rows_ax.step)) / max(n_cols * abs(cols_ax.step), 1e-9)
        height = int(np.clip(700 * aspect, 240, 700)) + 60
    fig = go.Figure(_image_trace(grid, window, units))
    _style(fig, rows_ax, cols_ax, flip_y=grid.y_step > 0, flip_x=grid.x_step < 0, height=height, uirevision=uirevision)
    _orientation_labels(fig, ps)
    _corner_text(fig, ps, window if grid.img.ndim == 2 else None, grid.stride)
    if selectable:
        x1, y1 = grid.x0 + grid.dx * (grid.img.shape[1] - 1), grid.y0 + grid.dy * (grid.img.shape[0] - 1)
        fig.add_trace(
            go.Scatter(
                x=[grid.x0, x1], y=[grid.y0, y1], mode="markers",
                marker=dict(opacity=0, size=1), hoverinfo="skip", name="selection-layer",
            )  # fmt: skip
        )
    unit = "mm" if spacing_known else "px"
    if distance is not None:
        _draw_distance(fig, ps, rows_ax, cols_ax, distance, unit)
    if roi is not None:
        _draw_roi(fig, rows_ax, cols_ax, roi, roi_stats, units, unit)
    return fig


@dataclass(frozen=True)
class _Grid:
    """The displayed (decimated, flipped to increasing coordinates) pixels of a plane.

    ``img`` is ``(r, c)`` or ``(r, c, 3)``; ``custom`` holds each pixel's source ``(row, col)`` (and LPS mm
    for oblique planes) for the hover probe ``pos``; ``x0``/``y0`` (mm or px) and ``dx``/``dy`` place the
    pixels; ``x_step``/``y_step`` are the signed steps before flipping; ``stride`` the decimation."""

    img: np.ndarray
    custom: np.ndarray
    pos: str
    x0: float
    y0: float
    dx: float
    dy: float
    x_step: float
    y_step: float
    stride: int


def _display_grid(ps: PlaneSlice, rows_ax: _Axis, cols_ax: _Axis, lps_text: Callable[[], str] | None,
                  spacing_known: bool, max_display_px: int) -> _Grid:
    """Decimate the plane to at most ``max_display_px`` per side and flip it where a physical step is
    negative, so that display row 0 stays at the top and column 0 at the left."""
    n_rows, n_cols = ps.shape
    stride = max(1, int(np.ceil(max(n_rows, n_cols) / max_display_px)))
    img = ps.image[::stride, ::stride]
    r_idx, c_idx = np.meshgrid(np.arange(0, n_rows, stride), np.arange(0, n_cols, stride), indexing="ij")
    if lps_text is None and ps.has_geometry:  # oblique: carry the true LPS position per pixel
        lps = ps.to_lps(r_idx, c_idx).astype(np.float32)
        custom = np.concatenate([np.stack([r_idx, c_idx], -1).astype(np.float32), lps], -1)
        pos = "LPS %{customdata[2]:.1f}, %{customdata[3]:.1f}, %{customdata[4]:.1f} mm"
    else:
        custom = np.stack([r_idx, c_idx], -1).astype(np.int16 if max(n_rows, n_cols) < 32768 else np.int32)
        pos = lps_text() if lps_text else ("x %{x:.1f}, y %{y:.1f} mm" if spacing_known else "")
    y_step, x_step = rows_ax.step * stride, cols_ax.step * stride
    if y_step < 0:
        img, custom = img[::-1], custom[::-1]
    if x_step < 0:
        img, custom = img[:, ::-1], custom[:, ::-1]
    n_dr, n_dc = img.shape[:2]
    y0 = rows_ax.start + min(0.0, y_step * (n_dr - 1))
    x0 = cols_ax.start + min(0.0, x_step * (n_dc - 1))
    return _Grid(img, custom, pos, x0, y0, abs(x_step), abs(y_step), x_step, y_step, stride)


def png_data_uri(rgb: np.ndarray) -> str:
    """``(H, W, 3)`` uint8 as a ``data:image/png;base64,...`` URI (a plotly image ``source``)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image_trace(grid: _Grid, window: WindowPreset | None, units: str) -> go.Heatmap | go.Image:
    """The image trace: ``go.Image`` (a PNG) for RGB, else a grey ``go.Heatmap`` of the values (the probe reads
    them) windowed to ``window``."""
    geometry = dict(x0=grid.x0, dx=grid.dx, y0=grid.y0, dy=grid.dy, customdata=grid.custom)
    probe = (f"{grid.pos}<br>" if grid.pos else "") + "row %{customdata[0]}, col %{customdata[1]}<br>"
    if grid.img.ndim == 3:  # colour (photos, fused overlays): sent as one PNG, not as a JSON array of pixels
        where = f"{grid.pos}<br>" if grid.pos else "x %{x:.0f}, y %{y:.0f}<br>"
        return go.Image(source=png_data_uri(grid.img), x0=grid.x0, dx=grid.dx, y0=grid.y0, dy=grid.dy,
                        hovertemplate=where + "<extra></extra>")
    z = _compact(np.ascontiguousarray(grid.img))
    zmin, zmax = (window.low, window.high) if window is not None else (None, None)
    return go.Heatmap(
        z=z, colorscale="gray", zmin=zmin, zmax=zmax, showscale=False, zsmooth=False,
        hovertemplate=probe + f"<b>{_value_format(z, units)}</b><extra></extra>", **geometry,
    )  # fmt: skip


def _style(fig: go.Figure, rows: _Axis, cols: _Axis, *, flip_y: bool, flip_x: bool, height: int, uirevision: str | None) -> None:
    axis = dict(showgrid=False, zeroline=False, constrain="domain", ticks="outside", color="#9e9e9e")
    fig.update_layout(
        template="plotly_dark",
        height=height,
        margin=dict(l=50, r=10, t=10, b=40),
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        dragmode="pan",
        hovermode="closest",
        showlegend=False,
        uirevision=uirevision,
        xaxis=dict(axis, title=cols.title, autorange="reversed" if flip_x else True),
        yaxis=dict(axis, title=rows.title, autorange="reversed" if flip_y else True, scaleanchor="x", scaleratio=1),
    )


def _orientation_labels(fig: go.Figure, ps: PlaneSlice) -> None:
    font = dict(color=LABEL_COLOR, size=18, family="Arial Black, Arial, sans-serif")
    spots = {
        "top": (0.5, 0.99, "center", "top"),
        "bottom": (0.5, 0.01, "center", "bottom"),
        "left": (0.01, 0.5, "left", "middle"),
        "right": (0.99, 0.5, "right", "middle"),
    }
    for edge, (x, y, xa, ya) in spots.items():
        text = getattr(ps.labels, edge)
        if text:
            fig.add_annotation(
                x=x, y=y, xref="x domain", yref="y domain", xanchor=xa, yanchor=ya, text=f"<b>{text}</b>",
                showarrow=False, font=font, bgcolor="rgba(0,0,0,0.45)", name=f"orientation-{edge}",
            )  # fmt: skip


def _corner_text(fig: go.Figure, ps: PlaneSlice, window: WindowPreset | None, stride: int) -> None:
    n = ps.volume_shape[ps.fixed_axis]
    lines = [f"{ps.plane.value.capitalize()} {ps.index + 1}/{n}"]
    if window is not None:
        lines.append(f"W {window.width:g}  L {window.level:g}")
    if stride > 1:
        lines.append(f"display 1:{stride}")
    fig.add_annotation(
        x=0.01, y=0.01, xref="x domain", yref="y domain", xanchor="left", yanchor="bottom",
        text="<br>".join(lines), align="left", showarrow=False, font=dict(color="#e0e0e0", size=12),
        bgcolor="rgba(0,0,0,0.45)", name="corner",
    )  # fmt: skip


def _draw_distance(fig: go.Figure, ps: PlaneSlice, rows: _Axis, cols: _Axis, pts: tuple[Point, Point], unit: str) -> None:
    (r0, c0), (r1, c1) = pts
    d = distance_mm(pts[0], pts[1], ps.row_mm, ps.col_mm) if unit == "mm" else float(np.hypot(r1 - r0, c1 - c0))
    xs, ys = [cols.at(c0), cols.at(c1)], [rows.at(r0), rows.at(r1)]
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, mode="lines+markers", name="distance", hoverinfo="skip",
            line=dict(color=MEASURE_COLOR, width=2), marker=dict(size=8, symbol="cross-thin-open", line=dict(width=2)),
        )  # fmt: skip
    )
    fig.add_annotation(
        x=sum(xs) / 2, y=sum(ys) / 2, text=f"{d:.1f} {unit}", showarrow=False, yshift=12,
        font=dict(color=MEASURE_COLOR, size=14), bgcolor="rgba(0,0,0,0.6)", name="distance-label",
    )  # fmt: skip


def _draw_roi(fig: go.Figure, rows: _Axis, cols: _Axis, roi: Roi, stats: RoiStats | None, units: str, unit: str) -> None:
    ys = sorted([rows.at(roi.r0 - 0.5), rows.at(roi.r1 + 0.5)])
    xs = sorted([cols.at(roi.c0 - 0.5), cols.at(roi.c1 + 0.5)])
    fig.add_shape(type="rect", x0=xs[0], x1=xs[1], y0=ys[0], y1=ys[1], line=dict(color=ROI_COLOR, width=2), name="roi")
    if stats is not None:
        u = "" if units == "RGB" else f" {units}"
        text = f"{stats.mean:.1f} ± {stats.std:.1f}{u} · {stats.area_mm2:.1f} {unit}²"
        top_y = rows.at(roi.r0 - 0.5)
        fig.add_annotation(
            x=cols.at((roi.c0 + roi.c1) / 2), y=top_y, text=text, showarrow=False,
            yshift=12 if rows.step > 0 else -12, font=dict(color=ROI_COLOR, size=13), bgcolor="rgba(0,0,0,0.6)",
            name="roi-label",
        )  # fmt: skip


def histogram_figure(hist: Histogram, *, window: WindowPreset | None, units: str, log_y: bool = True, height: int = 260) -> go.Figure:
    """Bar chart of a precomputed histogram with the current window shaded.

    Args:
        hist: counts and bin edges (see :func:`medviz.imaging.measure.histogram`).
        window: window to mark (shaded band and edges); None for none.
        units: x-axis units (``"HU"``...).
        log_y: logarithmic count axis (useful for CT, dominated by air).
        height: figure height in px.
    """
    widths = np.diff(hist.edges)
    fig = go.Figure(
        go.Bar(
            x=hist.centers, y=hist.counts, width=widths, marker=dict(color="#90a4ae", line=dict(width=0)),
            hovertemplate=f"%{{x:.4g}} {units}: %{{y}}<extra></extra>", name="histogram",
        )  # fmt: skip
    )
    if window is not None:
        fig.add_vrect(x0=window.low, x1=window.high, fillcolor=MEASURE_COLOR, opacity=0.15, line_width=0)
        for x in (window.low, window.high):
            fig.add_vline(x=x, line=dict(color=MEASURE_COLOR, width=1, dash="dash"))
    fig.update_layout(
        template="plotly_dark", height=height, margin=dict(l=50, r=10, t=10, b=40), bargap=0,
        paper_bgcolor=BACKGROUND, plot_bgcolor=BACKGROUND, showlegend=False,
        xaxis_title=units, yaxis_title="voxels", yaxis_type="log" if log_y else "linear",
    )  # fmt: skip
    return fig
