"""What the web server does once, at start, before any browser session: the ``lifespan`` of app.py's ``st.App``.

``streamlit run app.py`` finds ``app = st.App(..., lifespan=lifespan)`` in app.py and serves it; this
:func:`lifespan` then runs once per server process, before the first request:

1. :func:`route_every_page_through_app`, so a direct link such as ``/segment`` opened first after a
   restart still comes up inside app.py's router (menu, caption, wide layout);
2. the inference thread count (``MEDVIZ_INFER_THREADS``, :func:`medviz.models.runtime.set_inference_threads`);
3. the background model warm-up (:func:`medviz.ui.warmup.start_warmup`), which does not delay serving;

and once when the server stops: the training jobs' child processes are stopped, then ended by their PIDs
(:func:`medviz.train.jobs.shutdown_all`; uvicorn ends the process by re-raising SIGTERM, so exit handlers
would not run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from streamlit.runtime.pages_manager import PagesManager

from medviz.config import get_settings
from medviz.models.runtime import set_inference_threads
from medviz.train.jobs import shutdown_all
from medviz.ui.warmup import start_warmup

_LOG = logging.getLogger(__name__)


def route_every_page_through_app() -> None:
    """Make every script run of this process execute app.py (the ``st.navigation`` router).

    Streamlit 1.67 decides per process, when the first browser session is created, whether the app is a
    "pages directory" app (``PagesManager.uses_pages_directory``: a ``pages/`` folder beside the main
    script). Until some run has called ``st.navigation`` it runs the requested file from ``pages/``
    *directly* (``script_runner._mpa_v1``), so after a restart a first request for ``/segment`` ran
    pages/segment.py without app.py: a raw file list as the menu, no caption, no wide layout. app.py lists
    its pages with ``st.navigation``, so the ``pages/`` folder is never meant to be auto-discovered:
    stating that before the first session is exactly what ``st.navigation`` itself does on its first call.

    Raises:
        RuntimeError: this Streamlit version has no such switch (its pages handling changed; re-check).
    """
    if not hasattr(PagesManager, "uses_pages_directory"):
        raise RuntimeError("streamlit's PagesManager has no uses_pages_directory: check how this version "
                           "routes a first request for a page in pages/")
    PagesManager.uses_pages_directory = False


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """Server start-up for ``st.App(..., lifespan=lifespan)``: routing, thread count, model warm-up; at the
    server's stop, the end of its training processes."""
    route_every_page_through_app()
    threads = set_inference_threads(get_settings().infer_threads)
    _LOG.info("Inference uses %d torch thread(s)", threads)
    start_warmup()
    try:
        yield
    finally:
        await asyncio.to_thread(shutdown_all)
