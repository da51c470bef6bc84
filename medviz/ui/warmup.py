"""Warm the model caches in the background once per server process, so no user waits for the first load.

The first model use in a fresh server imports ``monai.networks.nets`` and reads the weights (about 3.4 s on
a small host). :func:`start_warmup` does that in a daemon thread at server start: it loads every shipped
model through the *same* ``st.cache_resource`` loaders the pages call, with the same arguments, so a page
finds the model already cached (or, while the warm-up is still loading that model, waits for that one load
instead of starting a second). The models hold no user data, so sharing them is allowed (see
:mod:`medviz.ui.cache`). A model that fails to load is skipped with a log line; its page shows the error in
words when someone opens it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from medviz.constants import Task
from medviz.models.registry import list_models
from medviz.types import MedvizError
from medviz.ui import classification, reconstruction, segmentation, sequence, superres

_LOG = logging.getLogger(__name__)


def page_loaders() -> dict[str, Callable[[str], Any]]:
    """The cached loader each page uses, per task, in warm-up order.

    Reconstruction comes first: its loader imports MONAI under that page's import lock (see
    :mod:`medviz.ui.reconstruction`), so later loaders find MONAI fully imported.
    """
    return {
        Task.RECONSTRUCTION: reconstruction.cached_model,
        Task.CLASSIFICATION: classification.cached_classifier,
        Task.SEGMENTATION: segmentation.load_seg_model,
        Task.SEQUENCE: sequence.cached_models,
        Task.SUPERRES: superres.cached_model,
    }


@dataclass
class WarmupReport:
    """What one warm-up did: models loaded, models that failed (name -> message), and its duration."""

    loaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def warm_models(loaders: dict[str, Callable[[str], Any]] | None = None) -> WarmupReport:
    """Import MONAI's networks and load every registered model through its page's cached loader (blocking).

    Args:
        loaders: task -> loader (default :func:`page_loaders`); tasks without a loader are skipped.

    Returns:
        A :class:`WarmupReport`. Nothing is raised: an unreadable manifest or a model that cannot be
        loaded is reported (and logged), and the pages show the error when they are opened.
    """
    start = time.perf_counter()
    loaders = page_loaders() if loaders is None else loaders
    report = WarmupReport()
    try:
        import monai.networks.nets  # noqa: F401  (the slow first import every model builder needs)

        entries = list_models()
    except (ImportError, MedvizError, OSError) as e:
        report.failed["manifest"] = str(e)
        _LOG.warning("Model warm-up skipped: %s", e)
        entries = []
    order = list(loaders)
    for entry in sorted((e for e in entries if e.task in loaders), key=lambda e: order.index(e.task)):
        try:
            loaders[entry.task](entry.name)
        except Exception as e:  # noqa: BLE001 -- a background warm-up must not stop; the page reports it
            report.failed[entry.name] = str(e)
            _LOG.warning("Model warm-up could not load %s: %s", entry.name, e)
        else:
            report.loaded.append(entry.name)
    report.seconds = time.perf_counter() - start
    _LOG.info("Model warm-up loaded %d model(s) in %.1f s", len(report.loaded), report.seconds)
    return report


@dataclass
class Warmup:
    """The running (or finished) warm-up of this server process."""

    thread: threading.Thread
    report: WarmupReport

    def wait(self, timeout: float | None = None) -> WarmupReport:
        """Block until the warm-up has finished (or ``timeout`` seconds); returns its report so far."""
        self.thread.join(timeout)
        return self.report


@st.cache_resource(show_spinner=False)
def start_warmup() -> Warmup:
    """Start :func:`warm_models` in a daemon thread, once per server process, and return at once.

    Later calls return the same :class:`Warmup` (``st.cache_resource``), so calling it again never
    starts a second warm-up.
    """
    report = WarmupReport()

    def work() -> None:
        result = warm_models()
        report.loaded, report.failed, report.seconds = result.loaded, result.failed, result.seconds

    thread = threading.Thread(target=work, name="medviz-model-warmup", daemon=True)
    thread.start()
    return Warmup(thread, report)
