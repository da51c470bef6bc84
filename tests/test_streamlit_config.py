"""The Streamlit server settings that protect users (RELIABILITY.md 1.3)."""

from __future__ import annotations

import subprocess
import sys
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


def test_the_server_runs_no_full_garbage_collection_after_each_script_run():
    # Streamlit's default gc.collect(2) after every run (fragment reruns of the Training live view included)
    # walks every object of torch, MONAI and the loaded models: ~0.4 s of CPU per run (README, load benchmark)
    out = subprocess.run([sys.executable, "-c", "import streamlit.config as c; print(c.get_option('runner.postScriptGC'))"],
                         cwd=CONFIG.parent.parent, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
