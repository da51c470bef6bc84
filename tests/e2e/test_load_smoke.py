"""CI version of ``bench/load.py``: its session driver (viewer, classify, segment) in 2 concurrent browser
sessions on one server, with zero errors. No timing assertions: speed is what the benchmark reports."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from streamlit_server import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.data]


def _bench_load():
    spec = importlib.util.spec_from_file_location("medviz_bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def test_two_concurrent_sessions_run_every_page_without_errors(app_url, data_dir):
    load = _bench_load()
    # In its own thread: the async driver must not share a thread with pytest-playwright's sync API.
    with ThreadPoolExecutor(1) as pool:
        record = pool.submit(asyncio.run, load.run_sessions(app_url, sessions=2, steps=2, timeout_ms=300_000)).result()
    assert record.errors == []
    summary = record.summary()
    assert summary["viewer: slice step"]["n"] == 4
    assert all(summary[a]["n"] == 2 for a in ("viewer: open example", "classify", "segment"))
