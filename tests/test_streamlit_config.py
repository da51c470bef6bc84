"""The Streamlit server settings that protect users (RELIABILITY.md 1.3)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from medviz.config import Limits

CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"


def test_security_settings():
    cfg = tomllib.loads(CONFIG.read_text())
    server = cfg["server"]
    assert server["enableXsrfProtection"] is True
    assert server["enableCORS"] is True
    assert server["address"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["client"]["showErrorDetails"] == "none"


def test_upload_limit_matches_the_loaders_limit():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg["server"]["maxUploadSize"] * 1024 * 1024 == Limits().max_upload_bytes


def test_every_setting_is_commented():
    lines = CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert i > 0 and lines[i - 1].lstrip().startswith("#"), f"setting without a comment: {line}"
