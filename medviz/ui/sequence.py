"""Streamlit side of the sequence model: cached models, the per-slice probability strip under an MR stack,
and jumping to a slice by clicking it.

Results live in the study's result store (``st.session_state``), never in process-wide caches; only the
models (no user data) are in ``st.cache_resource``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from medviz.constants import Task
from medviz.models.registry import list_models
from medviz.sequence.infer import StackPrediction, load_models, predict_stack, prepare_stack
from medviz.sequence.viz import probability_strip
from medviz.types import Volume


def model_names() -> list[str]:
    """Registered sequence models."""
    return [e.name for e in list_models(task=Task.SEQUENCE)]


@st.cache_resource(max_entries=2, show_spinner="Loading the sequence model…")
def cached_models(name: str) -> tuple[Any, Any, Any]:
    """``(sequence model, its slice encoder (the segmenter), entry)`` on CPU, shared read-only by all sessions."""
    return load_models(name, device="cpu")


@dataclass(frozen=True)
class StripResult:
    """The sequence model's output for one study: probabilities and the notes on the input."""

    prediction: StackPrediction
    notes: list[str]


def run(name: str, volume: Volume) -> StripResult:
    """Run the sequence model on every axial slice of ``volume`` (a busy spinner while it works)."""
    model, segmenter, entry = cached_models(name)
    x, notes = prepare_stack(volume)
    with st.spinner(f"Reading {volume.shape[0]} slices with {name}…"):
        pred = predict_stack(model, segmenter, x, lr_flip=entry.spec.lr_flip)
    return StripResult(pred, notes)


def strip_key(token: str) -> str:
    return f"seq.{token}.strip"


def jump_to_clicked_slice(token: str, slider_key: str) -> None:
    """When the strip reports a newly clicked slice, move the slice slider there (call before the slider is
    drawn). A click is applied once, so the slider stays free afterwards."""
    event = st.session_state.get(strip_key(token))
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    if not points:
        return
    number = int(round(float(points[0]["x"])))
    seen_key = f"{strip_key(token)}.applied"
    if st.session_state.get(seen_key) != number:
        st.session_state[seen_key] = number
        st.session_state[slider_key] = number


def strip(result: StripResult, token: str, current: int | None, truth: np.ndarray | None) -> None:
    """Draw the strip (GRU and per-slice curves, the current slice, the reference tumour run when known)."""
    for note in result.notes:
        st.warning(note)
    pred = result.prediction
    st.plotly_chart(probability_strip(pred.gru, pred.per_slice, current, truth), key=strip_key(token),
                    on_select="rerun", selection_mode="points", width="stretch")
    st.caption("Probability that each slice shows FLAIR abnormality: sequence model (orange, reads the whole "
               "stack) and the same features slice by slice (grey dashes). Click a point to show that slice."
               + (" Green: slices with tumour in the reference mask." if truth is not None else ""))
