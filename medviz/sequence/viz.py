"""The per-slice probability strip drawn under an MR stack (plotly; no Streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last), ...]`` 0-based runs of consecutive slices with a non-zero label."""
    idx = np.flatnonzero(np.asarray(labels) > 0)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def probability_strip(gru: np.ndarray, per_slice: np.ndarray, current: int | None, truth: np.ndarray | None = None,
                      height: int = 220) -> go.Figure:
    """Tumour probability per slice, slice numbers 1-based on x.

    Args:
        gru: ``(Z,)`` the sequence model's probabilities (markers: a click selects a slice).
        per_slice: ``(Z,)`` the per-slice head's, drawn dashed so the reader sees what context changed.
        current: 0-based index of the axial slice shown (marked by a vertical line; None: another plane is shown).
        truth: optional ``(Z,)`` reference labels; their tumour runs are shaded.
    """
    z = np.arange(1, len(gru) + 1)
    fig = go.Figure()
    for first, last in _runs(truth) if truth is not None else []:
        fig.add_vrect(x0=first + 0.5, x1=last + 1.5, fillcolor="rgba(0, 200, 0, 0.15)", line_width=0, layer="below")
    fig.add_trace(go.Scatter(x=z, y=per_slice, mode="lines", name="per-slice (no context)",
                             line=dict(color="#9e9e9e", dash="dash", width=1.5),
                             hovertemplate="slice %{x}: %{y:.2f}<extra>per-slice</extra>"))
    fig.add_trace(go.Scatter(x=z, y=gru, mode="lines+markers", name="sequence model (GRU)",
                             line=dict(color="#ff8c00", width=2), marker=dict(size=6),
                             hovertemplate="slice %{x}: %{y:.2f}<extra>GRU; click to show</extra>"))
    if current is not None:
        fig.add_vline(x=current + 1, line=dict(color="#1e88e5", width=2))
    if truth is not None:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="reference tumour slices",
                                 marker=dict(size=10, color="rgba(0, 200, 0, 0.35)", symbol="square")))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=36, b=30), clickmode="event+select",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), dragmode=False,
                      xaxis=dict(title="slice (1-based)", range=[0.5, len(gru) + 0.5], dtick=max(1, len(gru) // 20)),
                      yaxis=dict(title="P(tumour)", range=[-0.04, 1.06]))
    return fig


def slice_score_figure(slice_scores: np.ndarray, threshold: float, val_range: tuple[float, float, float],
                       score_name: str, height: int = 220) -> go.Figure:
    """Each slice's out-of-distribution score (1-based slice numbers on x) against the model's validation
    slices (the shaded band from their lowest to their highest score, the median dotted) and the threshold
    (dashed): the stack abstains when its median slice score lies above the threshold."""
    s = np.asarray(slice_scores, dtype=np.float64)
    z = np.arange(1, len(s) + 1)
    lo, mid, hi = val_range
    fig = go.Figure()
    fig.add_hrect(y0=lo, y1=hi, fillcolor="rgba(127, 140, 141, 0.25)", line_width=0, layer="below",
                  annotation_text="validation slices", annotation_position="top left")
    fig.add_hline(y=mid, line=dict(color="#7f8c8d", dash="dot", width=1))
    fig.add_hline(y=threshold, line=dict(color="#333333", dash="dash"), annotation_text="threshold",
                  annotation_position="top right")
    fig.add_trace(go.Scatter(x=z, y=s, mode="markers", name="this stack", marker=dict(size=7, color="#d62728"),
                             hovertemplate="slice %{x}: %{y:.3g}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=30, b=30), showlegend=False, dragmode=False,
                      xaxis=dict(title="slice (1-based)", range=[0.5, len(s) + 0.5]),
                      yaxis=dict(title=f"{score_name} score"))
    return fig
