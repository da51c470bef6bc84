"""Load benchmark: N concurrent real-browser sessions against one MedViz server on 127.0.0.1 (not a test).

Each session (its own browser context, so its own Streamlit session) runs what a user does:

* **viewer**: open the Viewer, open the bundled 3D MR example, step ``--steps`` slices;
* **classify**: the Classify page on that example (prediction, probabilities, Grad-CAM);
* **segment**: the Segment page, the shared LGG test patient, press Segment (needs the public data folder).

Reported: errors (a timeout, or an error/exception element on the page), median and p95 seconds per action,
the server's RSS after one session and after N, and the slowdown of the viewer's slice step while a
training run (the Training page's default run, started in another session) shares the server (goal <= 1.5x).
The server is started here with ``MEDVIZ_INFER_THREADS=--threads`` and ended by its PID. The host's load
from other work is not controlled: quote medians and ratios, and repeat.

Usage::

    python bench/load.py [--sessions 8] [--threads 1] [--steps 5] [--no-training] [--unwatched-training] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXAMPLE = "MR brain volume (3D, NIfTI)"
TIMEOUT_MS = 600_000  # 8 segmentations on 2 shared cores take minutes
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
ABSTAINS = "The model abstains"  # the classifier's out-of-distribution answer: a result, not an error


@dataclass
class Record:
    """Seconds per action and the errors of one or more sessions."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, action: str, s: float) -> None:
        self.seconds.setdefault(action, []).append(s)

    def merge(self, other: Record) -> None:
        for action, values in other.seconds.items():
            self.seconds.setdefault(action, []).extend(values)
        self.errors += other.errors

    def summary(self) -> dict[str, dict[str, float]]:
        """``{action: {n, median_s, p95_s}}``."""
        return {a: {"n": len(v), "median_s": round(statistics.median(v), 3), "p95_s": round(_p95(v), 3)}
                for a, v in self.seconds.items()}


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


async def _timed(rec: Record, action: str, page, step: Callable[[], Awaitable[None]]) -> None:
    """Run one user action; its seconds go to ``rec``, a failure or an error shown on the page to its errors."""
    t0 = time.perf_counter()
    try:
        await step()
    except Exception as e:  # noqa: BLE001 -- any failure of a session is a benchmark error, reported in words
        rec.errors.append(f"{action}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return
    rec.add(action, time.perf_counter() - t0)
    shown = [t for t in await page.locator(ERRORS).all_inner_texts() if ABSTAINS not in t]
    if shown:
        rec.errors.append(f"{action}: {len(shown)} error message(s) on the page: {shown[0][:200]}")


async def idle(page) -> None:
    """Wait until Streamlit shows no "running" status (the rerun a click started has finished)."""
    await page.wait_for_timeout(500)  # let the click's rerun start
    await page.wait_for_function("""() => {
        const status = document.querySelector('[data-testid="stStatusWidget"]');
        return document.querySelector('[data-testid="stApp"]') && !/running/i.test(status ? status.innerText : '');
    }""")


async def _axial(page, text: str) -> None:
    from playwright.async_api import expect

    plot = page.locator(".js-plotly-plot").first
    await expect(plot.locator("g.annotation").filter(has_text=text)).to_be_visible()


async def _axial_position(page) -> tuple[int, int]:
    """``(slice, of)`` from the viewer's corner text ``Axial k/n``."""
    text = await page.locator(".js-plotly-plot g.annotation").filter(has_text="Axial").first.text_content()
    k, n = re.search(r"Axial (\d+)/(\d+)", text or "").groups()
    return int(k), int(n)


async def step_slices(page, rec: Record, steps: int, action: str = "viewer: slice step") -> None:
    """Press the slice slider's right arrow ``steps`` times, each time waiting for the new slice's figure."""
    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    for _ in range(steps):
        k, n = await _axial_position(page)
        if k >= n:
            await thumb.press("Home")
            await _axial(page, f"Axial 1/{n}")
            k = 1

        async def step(target: str = f"Axial {k + 1}/{n}") -> None:
            await thumb.press("ArrowRight")
            await _axial(page, target)

        await _timed(rec, action, page, step)


async def viewer_flow(page, url: str, rec: Record, steps: int) -> None:
    """Viewer: first page, the bundled 3D MR example, ``steps`` slice steps."""
    from playwright.async_api import expect

    async def open_viewer() -> None:
        await page.goto(url)
        await expect(page.get_by_role("heading", name="Viewer")).to_be_visible()
        # the server-drawn viewer: its slice steps are the server's work this benchmark loads (the WebGL viewer,
        # the default, steps slices in the browser and sends nothing; bench/viewer_browser.py measures it)
        await page.get_by_text("Interactive viewer", exact=False).click()
        await expect(page.locator(".js-plotly-plot").first).to_be_visible()

    async def open_example() -> None:
        await page.locator('[data-testid="stSelectbox"]').filter(has_text="Example studies").click()
        await page.get_by_role("option", name=EXAMPLE).click()
        await expect(page.locator(".js-plotly-plot g.annotation").filter(
            has_text=re.compile(r"Axial \d+/([2-9]|\d\d+)"))).to_be_visible()

    await _timed(rec, "viewer: open page", page, open_viewer)
    await _timed(rec, "viewer: open example", page, open_example)
    await step_slices(page, rec, steps)


async def classify_flow(page, rec: Record) -> None:
    """Classify the open example with the default model (prediction and Grad-CAM shown)."""
    from playwright.async_api import expect

    async def classify() -> None:
        await page.get_by_role("link", name="Classify").click()
        await expect(page.get_by_role("heading", name="Classify")).to_be_visible()
        shown = page.locator('[data-testid="stMetricValue"]').first
        anyway = page.get_by_text("show anyway", exact=True)
        await expect(shown.or_(anyway)).to_be_visible()
        if not await shown.is_visible():  # the model abstained (an MR slice is not its kind of image): look anyway
            await anyway.click()
        await expect(shown).to_be_visible()
        await expect(page.get_by_text(re.compile(r"^GradCAM: "))).to_be_visible()

    await _timed(rec, "classify", page, classify)


async def segment_flow(page, rec: Record) -> None:
    """Segment the shared LGG test patient with the shipped model."""
    from playwright.async_api import expect

    async def open_patient() -> None:
        await page.get_by_role("link", name="Segment").click()
        await expect(page.get_by_role("heading", name="Segment")).to_be_visible()
        await idle(page)
        await page.get_by_role("button", name="Use an LGG test patient (shared data)").click()
        await expect(page.get_by_text("LGG test patient 1", exact=False).first).to_be_visible()
        await idle(page)

    async def segment() -> None:
        await page.get_by_role("button", name="Segment", exact=True).click()
        await idle(page)
        await expect(page.get_by_role("heading", name="Measurements")).to_be_visible()

    await _timed(rec, "segment: open LGG patient", page, open_patient)
    await _timed(rec, "segment", page, segment)


async def run_session(browser, url: str, steps: int, timeout_ms: int = TIMEOUT_MS) -> Record:
    """One user's session (its own browser context): viewer, classify, segment."""
    rec = Record()
    context = await browser.new_context(viewport={"width": 1500, "height": 1100})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        await viewer_flow(page, url, rec, steps)
        await classify_flow(page, rec)
        await segment_flow(page, rec)
    finally:
        await context.close()
    return rec


async def run_sessions(url: str, sessions: int, steps: int = 5, timeout_ms: int = TIMEOUT_MS) -> Record:
    """``sessions`` concurrent sessions on one chromium, each waiting at most ``timeout_ms`` per step; their
    records merged."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=timeout_ms)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            records = await asyncio.gather(*(run_session(browser, url, steps, timeout_ms) for _ in range(sessions)))
        finally:
            await browser.close()
    merged = Record()
    for r in records:
        merged.merge(r)
    return merged


def training_children(server_pid: int) -> list[dict[str, int]]:
    """The server's training child processes (``python -m medviz.train.child``): PID and nice value."""
    import psutil

    return [{"pid": c.pid, "nice": c.nice()} for c in psutil.Process(server_pid).children()
            if "medviz.train.child" in " ".join(c.cmdline())]


async def training_slowdown(url: str, steps: int, server_pid: int, watched: bool = True) -> dict[str, Any]:
    """Median slice step with an idle server, then while the Training page's default run is going.

    With ``watched`` False the Training page is left once the run has started (its live view stops polling),
    so only the training process runs beside the viewer; the run then ends with the server."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    idle, busy = Record(), Record()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            viewer = await (await browser.new_context(viewport={"width": 1500, "height": 1100})).new_page()
            viewer.set_default_timeout(TIMEOUT_MS)
            await viewer_flow(viewer, url, Record(), 1)
            await step_slices(viewer, idle, steps)
            trainer = await (await browser.new_context()).new_page()
            trainer.set_default_timeout(120_000)
            await trainer.goto(f"{url}/training")
            await trainer.get_by_role("button", name="Start training").click()
            await expect(trainer.get_by_text("running", exact=True).first).to_be_visible(timeout=120_000)
            await viewer.wait_for_timeout(3000)  # past the run's start-up: data loaded, epochs going
            if not watched:
                await trainer.goto("about:blank")
            children = training_children(server_pid)
            await step_slices(viewer, busy, steps)
            still = bool(training_children(server_pid)) if not watched else \
                await trainer.get_by_text("running", exact=True).count()
            if watched and still:  # (a run that has ended has no Stop to press)
                await trainer.get_by_role("button", name="Stop", exact=True).click()
        finally:
            await browser.close()
    errors = idle.errors + busy.errors
    if errors or not idle.seconds or not busy.seconds:
        return {"error": "; ".join(errors) or "no slice steps measured"}
    a, b = statistics.median(idle.seconds["viewer: slice step"]), statistics.median(busy.seconds["viewer: slice step"])
    return {"idle_median_s": round(a, 3), "training_median_s": round(b, 3), "slowdown": round(b / a, 2),
            "training_still_running": bool(still), "training_page_watched": watched, "training_children": children}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(threads: str, log: Path) -> Iterator[tuple[str, int]]:
    """``streamlit run app.py`` on a free loopback port with ``MEDVIZ_INFER_THREADS=threads``; yields
    ``(url, pid)`` once healthy and ends the server by its PID."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "MEDVIZ_INFER_THREADS": threads})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start (see {log})")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        _end(proc)


def _end(proc: subprocess.Popen) -> None:
    """Terminate the server we started (by its PID); kill it if it is still there after 20 s."""
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=20)


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def rss_mb(pid: int) -> float:
    """Resident memory of the server process (MB)."""
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions (default 8)")
    parser.add_argument("--threads", default="1", help="MEDVIZ_INFER_THREADS of the server (default 1)")
    parser.add_argument("--steps", type=int, default=5, help="slice steps per viewer session (default 5)")
    parser.add_argument("--no-training", action="store_true", help="skip the viewer-during-training measurement")
    parser.add_argument("--unwatched-training", action="store_true",
                        help="leave the Training page once the run has started (no live view polling)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_MS / 1000, help="seconds one wait may take (default 600)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    log = Path(tempfile.mkdtemp(prefix="medviz-load-")) / "server.log"
    with server(args.threads, log) as (url, pid):
        timeout_ms = int(args.timeout * 1000)
        one = asyncio.run(run_sessions(url, 1, args.steps, timeout_ms))  # also the warm start for everything below
        rss_one = rss_mb(pid)
        t0 = time.perf_counter()
        many = asyncio.run(run_sessions(url, args.sessions, args.steps, timeout_ms))
        wall = time.perf_counter() - t0
        rss_many = rss_mb(pid)
        try:
            training = None if args.no_training else asyncio.run(
                training_slowdown(url, args.steps, pid, watched=not args.unwatched_training))
        except Exception as e:  # noqa: BLE001 -- reported with the other results, in words
            training = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    if isinstance(training, dict) and training.get("training_children"):  # the server's end ends its children
        training["children_left_after_server_end"] = [c["pid"] for c in training["training_children"]
                                                      if _running(c["pid"])]
    result = {"sessions": args.sessions, "infer_threads": args.threads, "cpus": os.cpu_count(),
              "wall_s": round(wall, 1), "errors": many.errors, "one_session": one.summary(),
              "concurrent": many.summary(), "rss_mb": {"one_session": round(rss_one), "after_concurrent": round(rss_many)},
              "training": training, "one_session_errors": one.errors, "server_log": str(log)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 1 if many.errors or one.errors else 0


def _print(result: dict) -> None:
    print(f"{result['sessions']} sessions, MEDVIZ_INFER_THREADS={result['infer_threads']}, {result['cpus']} CPUs, "
          f"{result['wall_s']} s, {len(result['errors'])} error(s)")
    print(f"{'action':28} {'1 session median':>17} {'N: median':>10} {'N: p95':>8} {'n':>4}")
    for action, s in result["concurrent"].items():
        base = result["one_session"].get(action, {}).get("median_s", float("nan"))
        print(f"{action:28} {base:17.2f} {s['median_s']:10.2f} {s['p95_s']:8.2f} {s['n']:4d}")
    rss = result["rss_mb"]
    print(f"server RSS: {rss['one_session']} MB after 1 session, {rss['after_concurrent']} MB after {result['sessions']}")
    print(f"viewer slice step during training: {result['training']}")
    for e in result["errors"] + result["one_session_errors"]:
        print("error:", e)


if __name__ == "__main__":
    sys.exit(main())
