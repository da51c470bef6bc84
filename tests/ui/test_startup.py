"""Server start-up: the model warm-up fills the pages' own caches (once), and app.py serves an ``st.App``
whose start-up routes every page through the router."""

from __future__ import annotations

import ast
import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import streamlit as st

from medviz.models.registry import list_models
from medviz.ui import classification, reconstruction, segmentation, sequence, startup, superres, warmup

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def counted_loads(monkeypatch) -> Counter:
    """Counts the weight loads behind each page's cached loader, with every Streamlit cache emptied."""
    calls: Counter = Counter()

    def counting(module, attr):
        real = getattr(module, attr)

        def load(name, *args, **kwargs):
            calls[name] += 1
            return real(name, *args, **kwargs)

        monkeypatch.setattr(module, attr, load)

    for module in (classification, reconstruction, segmentation, superres):
        counting(module, "load_model")
    counting(sequence, "load_models")
    st.cache_resource.clear()
    yield calls
    st.cache_resource.clear()


def test_warm_up_loads_every_shipped_model_into_the_page_caches_once(counted_loads):
    shipped = {e.name for e in list_models()}
    report = warmup.warm_models()
    assert not report.failed, report.failed
    assert set(report.loaded) == shipped
    assert set(counted_loads) == shipped and set(counted_loads.values()) == {1}

    # The pages now find their models cached: their own loaders, called as the pages call them, load nothing.
    for name in shipped & {e.name for e in classification.classifier_entries()}:
        classification.cached_classifier(name)
    segmentation.load_seg_model("lgg_unet")
    reconstruction.cached_model("lgg_flair_recon")
    sequence.cached_models("lgg_slice_gru")
    for name in shipped & {e.name for e in list_models(task="superres")}:
        superres.cached_model(name)
    assert set(counted_loads.values()) == {1}

    again = warmup.warm_models()  # idempotent: a second warm-up is all cache hits
    assert set(again.loaded) == shipped and set(counted_loads.values()) == {1}


def test_start_warmup_runs_one_background_thread_per_process(monkeypatch):
    runs = []
    monkeypatch.setattr(warmup, "warm_models", lambda: runs.append(1) or warmup.WarmupReport(loaded=["m"]))
    st.cache_resource.clear()
    try:
        first = warmup.start_warmup()
        assert first.thread.daemon
        report = first.wait(timeout=60)
        assert warmup.start_warmup() is first  # cache_resource: the second call starts nothing
        assert runs == [1] and report.loaded == ["m"]
    finally:
        st.cache_resource.clear()


def test_a_model_that_fails_to_load_is_reported_not_raised():
    def broken(name):
        raise OSError(f"{name}: weights file missing")

    report = warmup.warm_models({task: broken for task in warmup.page_loaders()})
    assert report.loaded == []
    assert set(report.failed) == {e.name for e in list_models()}
    assert all("weights file missing" in m for m in report.failed.values())


def test_lifespan_routes_pages_through_the_router_starts_the_warm_up_and_ends_training_at_stop(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    started, threads, ended = [], [], []
    monkeypatch.setattr(startup, "start_warmup", lambda: started.append(1))
    monkeypatch.setattr(startup, "shutdown_all", lambda: ended.append(1))
    monkeypatch.setattr(startup, "set_inference_threads", lambda n: threads.append(n) or 1)
    monkeypatch.setenv("MEDVIZ_INFER_THREADS", "3")
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)  # as after a restart with pages/ present

    async def serve() -> None:
        async with startup.lifespan(None):
            assert PagesManager.uses_pages_directory is False  # before any session is created
            assert ended == []

    # in a thread of its own: a browser test's event loop may still be running in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, serve()).result()
    assert started == [1] and threads == [3]
    assert ended == [1]  # the server's stop ends its training processes


def test_app_py_serves_an_st_app_with_the_start_up_lifespan():
    """``streamlit run app.py`` only serves an ``st.App`` (and so runs the lifespan) when it finds one."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.import_string == "app:app"
    calls = [n for n in ast.walk(ast.parse((ROOT / "app.py").read_text())) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", "") == "App"]
    assert [kw.arg for kw in calls[0].keywords] == ["lifespan"]


@pytest.mark.parametrize(("text", "expected"), [(None, 1), ("1", 1), ("2", 2), ("auto", None), (" Auto ", None)])
def test_inference_thread_setting(monkeypatch, text, expected):
    from medviz.config import get_settings

    if text is None:
        monkeypatch.delenv("MEDVIZ_INFER_THREADS", raising=False)
    else:
        monkeypatch.setenv("MEDVIZ_INFER_THREADS", text)
    assert get_settings().infer_threads == expected


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_inference_thread_setting_refuses_other_values_in_words(monkeypatch, text):
    from medviz.config import get_settings

    monkeypatch.setenv("MEDVIZ_INFER_THREADS", text)
    with pytest.raises(ValueError, match="MEDVIZ_INFER_THREADS must be a whole number of threads"):
        get_settings()


def test_threads_started_after_the_setting_use_its_count():
    import threading

    import torch

    from medviz.models.runtime import set_inference_threads

    before = torch.get_num_threads()
    seen = []
    try:
        assert set_inference_threads(1) == 1
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))  # like a script run's thread
        t.start()
        t.join()
        assert seen == [1]
        assert set_inference_threads(None) == 1  # None keeps what is set
    finally:
        torch.set_num_threads(before)
