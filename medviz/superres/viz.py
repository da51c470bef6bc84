"""Plotly figures and the metrics table of the Super-resolution page.

Pure functions returning ``go.Figure`` or plain rows. Images are ``(H, W)`` float arrays in ``[0, 1]`` (each slice
divided by its maximum, :func:`medviz.superres.data.scale_to_max`), drawn with row 0 at the top and square pixels.
Every panel is sent as one PNG (``go.Image``), windowed here with the page's one shared window, so a figure of
five 256 x 256 panels and three difference maps stays a few hundred kB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.imaging.viz import BACKGROUND, LABEL_COLOR, NONNEG_COLORSCALE, nonneg_scale, png_data_uri
from medviz.superres.data import brain_mask
from medviz.superres.export import SYNTHETIC_LABEL, display_uint8
from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS
from medviz.superres.metrics import hfen, psnr, ssim

#: The Viewer's look for image figures: dark template on the black image background.
IMAGE_LAYOUT = {"template": "plotly_dark", "paper_bgcolor": BACKGROUND, "plot_bgcolor": BACKGROUND}
#: How each arm is named on the page (panel titles, table rows, select boxes).
ARM_TITLES = {BICUBIC: "bicubic (A)", PIXEL_LOSS: "pixel-loss (B)", GAN: "GAN (C)"}
#: The table's metric columns: PSNR and SSIM higher is better, HFEN lower is better.
METRIC_COLUMNS = ("PSNR (dB)", "SSIM", "HFEN")


def arm_title(arm: str) -> str:
    """The page's name of an arm (:data:`ARM_TITLES`; any other name as it is)."""
    return ARM_TITLES.get(arm, arm)


def nonneg_rgb(values: np.ndarray, top: float) -> np.ndarray:
    """``(H, W)`` non-negative values -> ``(H, W, 3)`` uint8 through :data:`NONNEG_COLORSCALE` from 0 (neutral
    black) to ``top`` (clipped above), the same colours as every other non-negative map of the app."""
    stops = np.array([s for s, _ in NONNEG_COLORSCALE])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in NONNEG_COLORSCALE], dtype=np.float64)
    t = np.clip(np.nan_to_num(np.asarray(values, np.float64)) / max(float(top), 1e-12), 0.0, 1.0)
    return np.stack([np.rint(np.interp(t, stops, rgb[:, k])) for k in range(3)], axis=-1).astype(np.uint8)


def _grey_rgb(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return np.repeat(display_uint8(image, window)[..., None], 3, axis=-1)


def _placement(shape: tuple[int, int], grid: tuple[int, int]) -> dict[str, float]:
    """``x0, dx, y0, dy`` drawing a ``shape`` image on the ``grid`` of the largest panel: a low-resolution pixel
    covers the block of pixels it was averaged from (centre of block 0 at ``(f - 1) / 2``)."""
    f = grid[0] / shape[0]
    if f != grid[1] / shape[1] or f < 1 or f != int(f):
        raise ValueError(f"a {shape[0]}x{shape[1]} panel does not fit the {grid[0]}x{grid[1]} grid by a whole factor")
    return {"x0": (f - 1) / 2, "dx": f, "y0": (f - 1) / 2, "dy": f}


def panel_title(title: str, synthetic: bool) -> str:
    """A panel's title; a synthetic one carries :data:`~medviz.superres.export.SYNTHETIC_LABEL` on a line under it."""
    if not synthetic:
        return title
    return f"{title}<br><span style='color:{LABEL_COLOR};font-size:10px'><b>{SYNTHETIC_LABEL}</b></span>"


def _cells(names: list[str], differences: dict[str, np.ndarray], under: dict[str, str]) -> tuple[list[str], list[str]]:
    """The first row (panel titles) and the second row (what is drawn under each: ``"|name|"`` for its difference
    map, a panel title, or ``""`` for nothing) of the figure's grid."""
    top = [n for n in names if n not in under]
    second = {above: f"|{above}|" for above in differences}
    for name, above in under.items():
        if above not in top or above in second:
            raise ValueError(f"panel {name!r} cannot go under {above!r}: no such first-row panel, or its cell is taken")
        second[above] = name
    return top, [second.get(n, "") for n in top]


def comparison_figure(panels: dict[str, np.ndarray], window: tuple[float, float] = (0.0, 1.0),
                      synthetic: set[str] | frozenset[str] = frozenset(),
                      differences: dict[str, np.ndarray] | None = None, under: dict[str, str] | None = None,
                      height: int | None = None, uirevision: str | None = None) -> Any:
    """Images side by side with ONE shared window and linked zoom/pan, |difference| maps under them.

    Args:
        panels: title -> ``(H, W)`` image in ``[0, 1]``, drawn in grey through ``window``. A smaller panel
            (the low-resolution input, ``(H / f, W / f)``) is drawn on the same grid, each pixel covering its
            ``f x f`` block.
        window: display range ``(lo, hi)`` shared by every image panel, in the images' ``[0, 1]`` units.
        synthetic: titles of the panels that are computed, not acquired: each carries the visible
            :data:`~medviz.superres.export.SYNTHETIC_LABEL` in its title.
        differences: panel title -> ``(H, W)`` |image - real|, drawn under that panel with the colour scale of every
            non-negative map (:func:`medviz.imaging.viz.nonneg_scale`: 0 is neutral black), one scale for all maps
            (0 .. their pooled 99th percentile) and one colour bar.
        under: panel title -> the first-row panel it is drawn under (the low-resolution input under the real
            image), in a cell without a difference map.
        height: figure height in px (default: 300 per row).
        uirevision: keeps the user's zoom across reruns while it stays the same (plotly ``uirevision``).

    Returns:
        A ``go.Figure`` whose subplots share x and y axes (zooming one zooms all).

    Raises:
        ValueError: no panels, a difference map or panel placed under no panel, or shapes that do not fit one grid.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not panels:
        raise ValueError("comparison_figure needs at least one panel")
    differences, under = dict(differences or {}), dict(under or {})
    if unknown := (set(differences) | set(under)) - set(panels):
        raise ValueError(f"{sorted(unknown)} are not panels of the figure")
    grid = max((np.shape(v) for v in panels.values()), key=lambda s: s[0] * s[1])
    for name, d in differences.items():
        if np.shape(d) != grid:
            raise ValueError(f"the difference map of {name!r} is {np.shape(d)}, not the {grid} grid of the images")
    top, second = _cells(list(panels), differences, under)
    rows = 2 if any(second) else 1
    specs = [[{} for _ in top]] + ([[{} if c else None for c in second]] if rows == 2 else [])
    titles = [panel_title(n, n in synthetic) for n in top]
    titles += [f"|{c[1:-1]} − real|" if c.startswith("|") else panel_title(c, c in synthetic) for c in second if c]
    fig = make_subplots(rows=rows, cols=len(top), specs=specs, subplot_titles=titles, horizontal_spacing=0.012,
                        vertical_spacing=0.1)

    def image(name: str, row: int, col: int) -> None:
        img = np.asarray(panels[name], np.float32)
        fig.add_trace(go.Image(source=png_data_uri(_grey_rgb(img, window)), **_placement(img.shape, grid),
                               hovertemplate=f"{name}<br>x %{{x:.0f}}, y %{{y:.0f}}<extra></extra>"), row=row, col=col)

    for j, name in enumerate(top, start=1):
        image(name, 1, j)
    for j, cell in enumerate(second, start=1):
        if cell and not cell.startswith("|"):
            image(cell, 2, j)
    if differences:
        pooled = np.concatenate([np.ravel(np.asarray(d, np.float32)) for d in differences.values()])
        dmax = max(float(np.percentile(pooled, 99)), 1e-6)
        last = 0
        for j, name in enumerate(top, start=1):
            if name in differences:
                fig.add_trace(go.Image(source=png_data_uri(nonneg_rgb(differences[name], dmax)),
                                       hovertemplate=f"|{name} − real|<br>x %{{x:.0f}}, y %{{y:.0f}}<extra></extra>"),
                              row=2, col=j)
                last = j
        style = nonneg_scale(dmax, "|difference|", "")
        title = {"text": f"{style['colorbar']['title']['text']} (fraction of the slice max)", "side": "right"}
        bar = dict(colorscale=style["colorscale"], cmin=style["zmin"], cmax=style["zmax"], showscale=True,
                   colorbar={"title": title, "orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.02,
                             "yanchor": "top", "len": 0.6, "thickness": 12})  # under the maps: the panels keep the width
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(color=[0.0], **bar),
                                 hoverinfo="skip", showlegend=False), row=2, col=last)  # the colour bar alone
    fig.update_xaxes(matches="x", showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(matches="y", autorange="reversed", showticklabels=False, showgrid=False, zeroline=False,
                     scaleanchor="x", constrain="domain")
    fig.update_annotations(font_size=12)
    fig.update_layout(height=height or 300 * rows + (110 if differences else 40), dragmode="zoom",
                      margin={"l": 5, "r": 5, "t": 50, "b": 90 if differences else 5},
                      uirevision=uirevision, **IMAGE_LAYOUT)
    return fig


def _rounded(value: float, digits: int) -> float | None:
    """``value`` rounded, or None for NaN (shown as an empty cell, never as a made-up number)."""
    return None if np.isnan(value) else round(float(value), digits)


def metrics_rows(outputs: dict[str, np.ndarray], real: np.ndarray) -> list[dict[str, Any]]:
    """The metrics table: PSNR, SSIM and HFEN of every arm against the real slice, inside its brain mask.

    Args:
        outputs: arm name -> ``(H, W)`` estimate in ``[0, 1]`` (:attr:`medviz.superres.infer.ArmOutputs.outputs`).
        real: ``(H, W)`` real slice in ``[0, 1]``.

    Returns:
        One row per arm, in order: ``{"arm", "PSNR (dB)", "SSIM", "HFEN", "pixels"}``, computed by
        :mod:`medviz.superres.metrics` inside :func:`medviz.superres.data.brain_mask` of ``real`` (``pixels`` says
        where: ``brain mask (n px)``, or ``whole image`` when the slice has no brain pixel). PSNR and SSIM: higher is
        better; HFEN: lower is better. An undefined value (no high-frequency content for HFEN) is None.
    """
    ref = np.asarray(real, np.float32)
    mask = brain_mask(ref)
    where = f"brain mask ({int(mask.sum())} px)" if mask.any() else "whole image"
    m = mask if mask.any() else None
    rows = []
    for arm, est in outputs.items():
        rows.append({"arm": arm_title(arm), "PSNR (dB)": _rounded(psnr(ref, est, m), 2),
                     "SSIM": _rounded(ssim(ref, est, m), 4), "HFEN": _rounded(hfen(ref, est, m), 4), "pixels": where})
    return rows
