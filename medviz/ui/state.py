"""Per-session state. Everything a user uploads lives in ``st.session_state`` (one browser
session each), never in module globals or ``st.cache_resource``, so sessions never see each
other's data."""

from __future__ import annotations

import streamlit as st

from medviz.types import Volume

VOLUME_KEY = "medviz.volume"  # the current study (a medviz.types.Volume)
VOLUME_SOURCE_KEY = "medviz.volume_source"  # short, non-identifying description of where it came from


def get_volume() -> Volume | None:
    """The current study of this browser session, or None."""
    return st.session_state.get(VOLUME_KEY)


def set_volume(volume: Volume, source: str) -> None:
    """Make ``volume`` the current study of this session (shared by the Viewer/Classify/... pages)."""
    st.session_state[VOLUME_KEY] = volume
    st.session_state[VOLUME_SOURCE_KEY] = source


def get_volume_source() -> str:
    return st.session_state.get(VOLUME_SOURCE_KEY, "")


def no_study_message(purpose: str) -> str:
    """What a page says when this browser session has no study, e.g. right after a browser reload.

    Args:
        purpose: completes "... to ``purpose``" (``"segment it"``).
    """
    return ("No study is open in this browser session: a page reload (or a new tab) starts a new session, and "
            "studies are kept only while a session lasts. Open a study on the Viewer page (it opens on a bundled "
            f"example) to {purpose}.")
