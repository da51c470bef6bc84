"""Plotly figures for the Reconstruct page: side-by-side panels, k-space mask, metric bars.

Pure functions returning ``go.Figure``; images are ``(H, W)`` float arrays in [0, 1] (reference
scale), drawn with row 0 at the top and square pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.imaging.viz import BACKGROUND, nonneg_scale

#: The Viewer's look for image figures: dark template on the black image background.
IMAGE_LAYOUT = {"template": "plotly_dark", "paper_bgcolor": BACKGROUND, "plot_bgcolor": BACKGROUND}
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "nmse": "NMSE"}


def comparison_figure(panels: dict[str, np.ndarray], window: tuple[float, float] = (0.0, 1.0),
                      difference: np.ndarray | None = None, diff_max: float | None = None,
                      height: int = 380) -> Any:
    """Images side by side with ONE shared window and linked zoom/pan, plus an optional |difference| map.

    Args:
        panels: title -> ``(H, W)`` image, all the same shape, drawn in grey with ``window`` (lo, hi).
        window: display range shared by every image panel (window/level), reference units.
        difference: ``(H, W)`` absolute difference, drawn last with the shared colour scale of non-negative maps
            (:func:`medviz.imaging.viz.nonneg_scale`: 0 is neutral black) and its own colour bar (0..``diff_max``).
        diff_max: top of the difference colour scale (default: its 99th percentile).

    Returns:
        A ``go.Figure`` whose subplots share x and y axes (zooming one zooms all).

    Raises:
        ValueError: no panels, or panels of different shapes.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not panels:
        raise ValueError("comparison_figure needs at least one panel")
    shapes = {np.shape(v) for v in panels.values()} | ({np.shape(difference)} if difference is not None else set())
    if len(shapes) != 1:
        raise ValueError(f"all panels must have the same shape, got {sorted(shapes)}")
    titles = list(panels) + (["|difference|"] if difference is not None else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, shared_xaxes="all", shared_yaxes="all",
                        horizontal_spacing=0.01)
    lo, hi = float(window[0]), float(window[1])
    for j, img in enumerate(panels.values(), start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(img, np.float32), colorscale="gray", zmin=lo, zmax=hi,
                                 showscale=False, hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"),
                      row=1, col=j)
    if difference is not None:
        d = np.asarray(difference, np.float32)
        top = float(diff_max) if diff_max else max(float(np.percentile(d, 99)), 1e-6)
        style = nonneg_scale(top, "|difference|", "fraction of reference max")
        style["colorbar"]["len"] = 0.9
        fig.add_trace(go.Heatmap(z=d, hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>", **style),
                      row=1, col=len(titles))
    fig.update_xaxes(matches="x", showticklabels=False, constrain="domain")
    fig.update_yaxes(matches="y", autorange="reversed", showticklabels=False, scaleanchor="x", constrain="domain")
    fig.update_layout(height=height, margin={"l": 5, "r": 5, "t": 30, "b": 5}, dragmode="zoom", **IMAGE_LAYOUT)
    return fig


def mask_figure(mask: np.ndarray, height_px: int, kspace: np.ndarray | None = None, height: int = 260) -> Any:
    """The Cartesian sampling pattern (sampled columns white), optionally over log |k-space|.

    Args:
        mask: ``(W,)`` 0/1 column mask.
        height_px: image height ``H`` (rows of k-space).
        kspace: optional ``(H, W, 2)`` undersampled k-space, shown as log magnitude.
    """
    import plotly.graph_objects as go

    m = np.broadcast_to(np.asarray(mask, np.float32)[None, :], (int(height_px), len(mask)))
    z = m if kspace is None else np.log1p(np.hypot(kspace[..., 0], kspace[..., 1]) * 1e3)
    fig = go.Figure(go.Heatmap(z=z, colorscale="gray", showscale=False, hoverinfo="skip"))
    frac = float(np.mean(mask))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False, title=f"phase encoding: {int(np.sum(mask))}/{len(mask)} lines "
                                                  f"({frac:.1%}, {1 / max(frac, 1e-9):.1f}x)")
    fig.update_layout(height=height, margin={"l": 5, "r": 5, "t": 25, "b": 40}, **IMAGE_LAYOUT,
                      title={"text": "k-space sampling" if kspace is None else "log |k-space| (sampled)", "x": 0.5})
    return fig


def metrics_rows(metrics: dict[str, dict[str, float]], seconds: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Table rows ``[{"method", "PSNR (dB)", "SSIM", "NMSE", "seconds"}]`` in the given order."""
    seconds = seconds or {}
    return [{"method": name, **{METRIC_LABELS[k]: round(float(v[k]), 4) for k in METRIC_LABELS},
             "seconds": round(seconds[name], 3) if name in seconds else None} for name, v in metrics.items()]


def metrics_bar(metrics: dict[str, dict[str, float]]) -> Any:
    """Grouped bars of PSNR and SSIM per method (two panels, each with its own axis)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(metrics)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("PSNR (dB), higher is better", "SSIM, higher is better"))
    colours = ["#d62728" if n == "model" else "#7f7f7f" for n in names]
    for j, key in enumerate(("psnr", "ssim"), start=1):
        vals = [metrics[n][key] for n in names]
        fig.add_trace(go.Bar(x=names, y=vals, marker_color=colours, text=[f"{v:.3g}" for v in vals],
                             textposition="auto", showlegend=False), row=1, col=j)
    fig.update_layout(height=300, margin={"l": 5, "r": 5, "t": 30, "b": 5}, **IMAGE_LAYOUT)
    return fig
