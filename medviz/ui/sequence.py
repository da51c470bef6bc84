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
from medviz.models.registry import get_entry, list_models
from medviz.sequence.infer import StackPrediction, load_models, predict_stack, prepare_stack
from medviz.sequence.ood import SequenceOOD, StackOOD, assess, load_stats
from medviz.sequence.viz import probability_strip, slice_score_figure
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
    """The sequence model's output for one study: probabilities, the notes on the input, and whether the
    model abstains on the stack (None: no detector fitted)."""

    prediction: StackPrediction
    notes: list[str]
    ood: StackOOD | None = None


@st.cache_resource(max_entries=4, show_spinner=False)
def _stats(name: str, sha256: str | None) -> SequenceOOD | None:
    return load_stats(get_entry(name))


def cached_stats(name: str) -> SequenceOOD | None:
    """The model's fitted OOD statistics (read-only arrays, no user data), cached by the checksum the manifest
    names now, so that a refit is read at once."""
    ood = getattr(get_entry(name).spec, "ood", None)
    return _stats(name, None if ood is None else ood.sha256)


def run(name: str, volume: Volume) -> StripResult:
    """Run the sequence model on every axial slice of ``volume`` (a busy spinner while it works) and decide
    whether it abstains on the stack (:func:`medviz.sequence.ood.assess`)."""
    model, segmenter, entry = cached_models(name)
    x, notes = prepare_stack(volume)
    with st.spinner(f"Reading {volume.shape[0]} slices with {name}…"):
        pred = predict_stack(model, segmenter, x, lr_flip=entry.spec.lr_flip)
    stats = cached_stats(name)
    ood = None if stats is None else assess(stats, pred.features, volume.modality)
    return StripResult(pred, notes, ood)


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
    ood = result.ood
    if ood is not None and ood.abstain:
        st.error("**The sequence model abstains: this stack does not look like its training stacks** (LGG brain "
                 "MR, T1 / FLAIR / T1c): " + "; ".join(ood.reasons) + ".")
        st.plotly_chart(slice_score_figure(ood.slice_scores, ood.threshold, ood.val_range, ood.score_name),
                        key=f"{strip_key(token)}.ood", width="stretch", theme=None)
        if not st.toggle("show anyway", key=f"{strip_key(token)}.show_anyway",
                         help="show the slice probabilities although the stack is unlike the training stacks"):
            return
    for note in result.notes:
        st.warning(note)
    pred = result.prediction
    st.plotly_chart(probability_strip(pred.gru, pred.per_slice, current, truth), key=strip_key(token),
                    on_select="rerun", selection_mode="points", width="stretch")
    st.caption("Probability that each slice shows FLAIR abnormality: sequence model (orange, reads the whole "
               "stack) and the same features slice by slice (grey dashes). Click a point to show that slice."
               + (" Green: slices with tumour in the reference mask." if truth is not None else "")
               + ("" if ood is None else f" Out-of-distribution check: {ood.fraction_above:.0%} of the slices score "
                  f"above the {ood.score_name} threshold {ood.threshold:.3g}"
                  + (" (shown anyway)." if ood.abstain else "; the stack is answered.")))
