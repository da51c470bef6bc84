"""AppTest fixtures for the page tests (helpers live in ``apptest_helpers``)."""

from __future__ import annotations

import pytest
from apptest_helpers import TIMEOUT, VIEWER


@pytest.fixture
def viewer():
    """A fresh viewer page that has run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(VIEWER, default_timeout=TIMEOUT)
    at.session_state["viewer.interactive"] = False  # these tests check the static rendering (the WebGL fallback)
    return at.run()
