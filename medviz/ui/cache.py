"""Cached loaders for the *bundled* examples, and a per-session memo for derived values.

Only bundled examples (no user data) go into process-wide Streamlit caches. Anything derived
from the current study (auto windows, volume histograms) is memoised in ``st.session_state``
under the study's token, so it never outlives or leaves the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from medviz.io import list_examples, load_example

if TYPE_CHECKING:
    from medviz.io import Example
    from medviz.types import Volume

T = TypeVar("T")
_MEMO_KEY = "medviz.viewer.memo"


@st.cache_resource(show_spinner=False)
def examples() -> list[Example]:
    """The bundled examples (``medviz.io.list_examples``), listed once per process."""
    return list(list_examples())


@st.cache_resource(max_entries=4, show_spinner="Loading example…")
def example_volume(key: str) -> Volume:
    """A bundled example volume, shared read-only by all sessions (it holds no user data).

    Raises:
        medviz.types.LoadError: the example could not be read (not cached, so a retry re-reads).
    """
    volume = load_example(key)
    volume.array.setflags(write=False)  # shared across sessions: nobody may modify it in place
    return volume


def session_memo_get(name: str, token: str) -> Any | None:
    """The value :func:`session_memo` holds for ``name`` and the study ``token``, or None (nothing computed)."""
    memo = st.session_state.get(_MEMO_KEY)
    return memo.get(name) if memo is not None and memo.get("token") == token else None


def session_memo(name: str, token: str, compute: Callable[[], T]) -> T:
    """``compute()`` memoised in this session for the study identified by ``token``.

    The memo is dropped as soon as a different token is used (a new study was loaded).
    """
    memo = st.session_state.get(_MEMO_KEY)
    if memo is None or memo.get("token") != token:
        memo = {"token": token}
        st.session_state[_MEMO_KEY] = memo
    if name not in memo:
        memo[name] = compute()
    return memo[name]
