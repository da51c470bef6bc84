"""Plotly figure builders for the Classify and Evaluate pages (pure: arrays in, ``go.Figure`` out)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medviz.imaging.viz import nonneg_scale


def probability_bars(classes: list[str], probs: np.ndarray, spread: np.ndarray | None = None,
                     uncalibrated: np.ndarray | None = None, label: str = "calibrated") -> Any:
    """Horizontal bars of the probabilities shown, with the TTA spread as error bars.

    Args:
        classes: ``K`` names.
        probs: ``(K,)`` probabilities shown (temperature-scaled).
        spread: ``(K,)`` standard deviation across test-time augmentations (error bars).
        uncalibrated: ``(K,)`` raw softmax, drawn as hollow markers for comparison.
        label: what the bars are (:class:`medviz.classification.calibration.ShownProbability` ``label``).
    """
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(
        x=probs, y=classes, orientation="h", name=label,
        error_x=dict(type="data", array=spread, visible=spread is not None),
        text=[f"{p:.1%}" for p in probs], textposition="auto",
        hovertemplate=f"%{{y}}: %{{x:.3f}}<extra>{label}</extra>"))
    if uncalibrated is not None:
        fig.add_trace(go.Scatter(x=uncalibrated, y=classes, mode="markers", name="uncalibrated",
                                 marker=dict(symbol="line-ns-open", size=18, color="black")))
    fig.update_layout(xaxis=dict(range=[0, 1], title="probability"), yaxis=dict(autorange="reversed"),
                      height=80 + 40 * len(classes), margin=dict(l=10, r=10, t=10, b=40), showlegend=False)
    return fig


def ood_figure(val_scores: np.ndarray, threshold: float, score: float, score_name: str) -> Any:
    """The image's out-of-distribution score against the model's validation images: a histogram of the
    val scores (the in-distribution range), the abstention threshold (dashed) and this image (red)."""
    import plotly.graph_objects as go

    v = np.asarray(val_scores, dtype=np.float64)
    fig = go.Figure(go.Histogram(x=v, nbinsx=30, name="validation images", marker_color="#7f8c8d",
                                 hovertemplate="score %{x}<br>%{y} val images<extra></extra>"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="#333333", annotation_text="threshold",
                  annotation_position="top left")
    fig.add_vline(x=score, line_color="#d62728", line_width=3, annotation_text="this image",
                  annotation_position="top left")  # the line is often the right end of the axis
    hi = max(float(v.max()) if v.size else threshold, score, threshold)
    lo = min(float(v.min()) if v.size else threshold, score)
    pad = 0.05 * max(hi - lo, 1e-6)
    fig.update_layout(xaxis=dict(title=f"{score_name} score (higher: less like the training images)",
                                 range=[lo - pad, hi + pad]), yaxis_title="val images", height=220,
                      margin=dict(l=10, r=10, t=30, b=40), showlegend=False, bargap=0.05)
    return fig


def image_figure(rgb: np.ndarray, title: str = "") -> Any:
    """An image (``(H, W)`` float [0, 1] or ``(H, W, 3)`` uint8/float) without axes."""
    import plotly.express as px

    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    fig = px.imshow(img, binary_string=True)  # sent as a PNG, not as a JSON array of pixels
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title or None, margin=dict(l=0, r=0, t=30 if title else 0, b=0), height=360)
    return fig


def confusion_figure(cm: np.ndarray, classes: list[str]) -> Any:
    """Confusion-matrix heat map (rows true, columns predicted) with counts, in the shared colour scale of
    non-negative maps (:func:`medviz.imaging.viz.nonneg_scale`: 0 is neutral black)."""
    import plotly.graph_objects as go

    counts = np.asarray(cm)
    fig = go.Figure(go.Heatmap(z=counts, x=classes, y=classes, text=counts, texttemplate="%{text}",
                               hovertemplate="true %{y}<br>predicted %{x}: %{z}<extra></extra>",
                               **nonneg_scale(float(counts.max()) if counts.size else 1.0, "count", "images")))
    fig.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis=dict(autorange="reversed"),
                      height=320, margin=dict(l=10, r=10, t=10, b=40))
    return fig


def roc_figure(curve: dict[str, np.ndarray], point: dict[str, float] | None = None, label: str = "") -> Any:
    """ROC curve (from :func:`medviz.classification.metrics.roc`) with the operating point marked."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines",
                               name=f"{label} AUC {curve['auc']:.3f}"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance"))
    if point is not None:
        fig.add_trace(go.Scatter(x=[1 - point["specificity"]], y=[point["sensitivity"]], mode="markers",
                                 marker=dict(size=12, color="red"), name=f"threshold {point['threshold']:.2f}"))
    fig.update_layout(xaxis=dict(title="1 - specificity", range=[0, 1]), yaxis=dict(title="sensitivity", range=[0, 1.02]),
                      height=340, margin=dict(l=10, r=10, t=10, b=40), legend=dict(x=0.45, y=0.05))
    return fig


def reliability_figure(before: dict[str, np.ndarray], after: dict[str, np.ndarray],
                       ece_before: float, ece_after: float) -> Any:
    """Reliability diagram: accuracy vs mean confidence per bin, raw and temperature-scaled."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="perfect"))
    for r, name in ((before, f"raw (ECE {ece_before:.3f})"), (after, f"calibrated (ECE {ece_after:.3f})")):
        keep = r["count"] > 0
        fig.add_trace(go.Scatter(x=r["confidence"][keep], y=r["accuracy"][keep], mode="lines+markers", name=name,
                                 customdata=r["count"][keep],
                                 hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>n %{customdata}<extra></extra>"))
    fig.update_layout(xaxis=dict(title="confidence (top class)", range=[0, 1]), yaxis=dict(title="accuracy", range=[0, 1.02]),
                      height=340, margin=dict(l=10, r=10, t=10, b=40), legend=dict(x=0.02, y=0.98))
    return fig
