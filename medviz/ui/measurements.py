"""The measurements made in the in-browser viewer, kept for the study during the session.

The viewer reports a finished distance or ROI in LPS mm; the numbers shown are computed here from the study's own
array and affine (:mod:`medviz.imaging.patient_space`), listed in a table, and can be deleted one by one.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from medviz.imaging.patient_space import box_stats, distance_lps, plane_box, value_at, voxel_at
from medviz.types import Volume

_AXES = ("axial", "coronal", "sagittal")  # the plane perpendicular to array axis 0 (z), 1 (y), 2 (x)


def _key(token: str) -> str:
    return f"measurements.{token}"


def measured(volume: Volume, event: dict[str, Any]) -> dict[str, Any] | None:
    """One table row for a finished viewer action (None for actions that are not measurements).

    Rows: ``{"id", "what", "result", "where"}`` with slice numbers 1-based, values in the study's units.
    """
    kind = event.get("kind")
    if kind == "distance":
        mm = distance_lps(event["start_lps"], event["end_lps"])
        return {"id": event["id"], "what": "distance", "result": f"{mm:.1f} mm", "where": _where(volume, event)}
    if kind in ("roi", "ellipse"):
        box = plane_box(volume, event["start_lps"], event["end_lps"])
        if box is None:
            return None
        s = box_stats(volume, box, ellipse=kind == "ellipse")
        units = volume.units
        result = f"{s.mean:.1f} ± {s.std:.1f} {units} (min {s.min:.0f}, max {s.max:.0f}), {s.area_mm2:.1f} mm²"
        return {"id": event["id"], "what": "ROI" if kind == "roi" else "ellipse ROI", "result": result,
                "where": f"{_AXES[box.fixed_axis]} slice {box.index + 1}"}
    if kind == "crosshair":
        index = voxel_at(volume, event["lps"])
        if index is None:
            return None
        value = value_at(volume, index)
        shown = f"{value:.1f} {volume.units}" if isinstance(value, float) else f"RGB {value}"
        x, y, z = index
        return {"id": event["id"], "what": "probe", "result": shown,
                "where": f"column {x + 1}, row {y + 1}, slice {z + 1}; LPS "
                         + ", ".join(f"{c:.1f}" for c in event["lps"]) + " mm"}
    return None


def _where(volume: Volume, event: dict[str, Any]) -> str:
    a, b = (voxel_at(volume, event[k]) for k in ("start_lps", "end_lps"))
    if a is None or b is None:
        return "partly outside the image"
    return f"from slice {a[2] + 1} to slice {b[2] + 1}" if a[2] != b[2] else f"slice {a[2] + 1}"


def record(volume: Volume, token: str, event: dict[str, Any] | None) -> None:
    """Add the viewer's latest action to the study's list if it is a new measurement (each action has an id)."""
    if not event:
        return
    rows = st.session_state.setdefault(_key(token), [])
    if any(r["id"] == event.get("id") for r in rows):
        return
    row = measured(volume, event)
    if row is not None and row["what"] != "probe":
        rows.append(row)
    if row is not None and row["what"] == "probe":
        st.session_state[f"{_key(token)}.probe"] = row


def table(token: str) -> None:
    """The study's measurements with a delete button each, and the last probe."""
    probe = st.session_state.get(f"{_key(token)}.probe")
    if probe:
        st.caption(f"Probe: {probe['result']} at {probe['where']}")
    rows = st.session_state.get(_key(token), [])
    if not rows:
        st.caption("No measurements yet: choose Distance or ROI in the viewer's tool menu and drag on the image.")
        return
    for k, row in enumerate(rows):
        c1, c2 = st.columns([6, 1])
        c1.markdown(f"**{k + 1}. {row['what']}** — {row['result']} · {row['where']}")
        if c2.button("Delete", key=f"{_key(token)}.del.{row['id']}"):
            rows.remove(row)
            st.rerun(scope="fragment")
