"""The Segment page driven up to the sequence strip, for the AppTests of the strip (tests/sequence/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEGMENT_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "segment.py")


def read_all_slices(volume: Any, timeout: float) -> tuple[Any, int]:
    """Open ``volume`` on the Segment page, segment it and press "Read all slices": ``(AppTest, number of plotly
    charts before the strip)``; fails on any page exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(SEGMENT_PAGE, default_timeout=timeout)
    at.session_state["medviz.volume"] = volume
    at.run()
    at.button(key="seg.run").click().run()
    assert not at.exception, at.exception
    charts = len(at.get("plotly_chart"))
    at.button(key="seg.seq.run").click().run()
    assert not at.exception, at.exception
    return at, charts
