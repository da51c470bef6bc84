"""How fast slices reach the screen, in a real browser: the WebGL viewer against the static (plotly) viewer.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; WebGL runs on its software renderer, SwiftShader, on a
machine without a GPU) against local Streamlit servers on 127.0.0.1, on the 20-slice 512² CT series in
``$MEDVIZ_DATA_DIR/dicom_series_ct_totalsegmentator``:

* ``slice_step_ms_median`` / ``_p95``: from a slice key press to the new frame painted. WebGL: measured inside the
  viewer's frame, from the key event to the next animation frame (the redraw runs before it). Static: from the
  slider key press to plotly's ``afterplot`` of the new slice (the server reruns the page and sends the figure).
* ``ws_bytes_per_slice_step`` / ``ws_bytes_per_window_change``: websocket bytes (both directions) per action.
* ``upload_to_first_paint_ms``: WebGL: from opening the page on the series (the server reads it, writes the NIfTI,
  the browser fetches it) to the first painted slice; static: from handing the 20 files to the uploader to the first
  slice drawn.

Usage::

    python bench/viewer_browser.py [--steps 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from streamlit_server import run_streamlit  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SERIES = "dicom_series_ct_totalsegmentator"
STEP_JS = """async (key) => {
  const t = performance.now();
  document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
  await new Promise((done) => requestAnimationFrame(() => done()));
  return performance.now() - t;
}"""


class Wire:
    """Counts websocket bytes of a page, both directions."""

    def __init__(self, page) -> None:
        self.bytes = 0
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        def count(payload) -> None:
            self.bytes += len(payload) if isinstance(payload, bytes | str) else 0

        ws.on("framesent", count)
        ws.on("framereceived", count)

    def during(self, action, settle_s: float = 1.5) -> int:
        before = self.bytes
        action()
        time.sleep(settle_s)
        return self.bytes - before


def _summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def webgl(browser, series: Path, steps: int, log: Path) -> dict:
    app = ROOT / "tests" / "e2e" / "volume_viewer_app.py"
    with run_streamlit(app, log) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?ex=ct_small&layout=axial")  # a warm server, as the static path gets (its page is open)
        page.frame_locator("iframe[title*='volume_viewer']").locator("#status").filter(has_text="slice ").wait_for(
            timeout=300_000)
        wire = Wire(page)
        t0 = time.perf_counter()
        page.goto(f"{url}/?path={series}&layout=axial")
        frame = page.frame_locator("iframe[title*='volume_viewer']")
        status = frame.locator("#status")
        status.filter(has_text="slice ").wait_for(timeout=300_000)
        first_paint = (time.perf_counter() - t0) * 1000
        time.sleep(2.0)
        handle = next(f for f in page.frames if "volume_viewer" in f.url)
        before = wire.bytes
        times = [handle.evaluate(STEP_JS, "ArrowUp" if (k // 8) % 2 == 0 else "ArrowDown") for k in range(steps)]
        time.sleep(1.5)
        per_step = (wire.bytes - before) / steps
        per_window = wire.during(lambda: frame.get_by_role("button", name="Lung").click(), settle_s=3.0)
        page.close()
    median, p95 = _summary(times)
    return {"slice_step_ms_median": round(median, 2), "slice_step_ms_p95": round(p95, 2),
            "ws_bytes_per_slice_step": round(per_step, 1), "ws_bytes_per_window_change": per_window,
            "upload_to_first_paint_ms": round(first_paint)}


CAPTION_JS = """() => [...document.querySelectorAll("g.annotation")].map((e) => e.textContent)
  .find((t) => /Axial \\d+\\/20/.test(t)) ?? ''"""
PAINTED_JS = """(old) => {
  const now = [...document.querySelectorAll("g.annotation")].map((e) => e.textContent)
    .find((t) => /Axial \\d+\\/20/.test(t));
  return now && now !== old ? performance.now() : false;
}"""


def static(browser, series: Path, steps: int, log: Path) -> dict:
    files = sorted(str(p) for p in series.iterdir() if p.name.startswith("CT."))
    with run_streamlit(ROOT / "app.py", log) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        wire = Wire(page)
        page.goto(url)
        page.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
        time.sleep(3.0)
        t0 = time.perf_counter()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(files)
        page.locator("g.annotation").filter(has_text="/20").first.wait_for(timeout=300_000)
        first_paint = (time.perf_counter() - t0) * 1000
        print("static first paint", first_paint, file=sys.stderr, flush=True)
        time.sleep(3.0)
        thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
        times, total = [], 0
        for k in range(steps):
            thumb.focus()
            old = page.evaluate(CAPTION_JS)
            before = wire.bytes
            t = page.evaluate("() => performance.now()")
            thumb.press("ArrowRight" if (k // 4) % 2 == 0 else "ArrowLeft")
            painted = page.wait_for_function(PAINTED_JS, arg=old, polling="raf", timeout=120_000).json_value()
            times.append(painted - t)
            time.sleep(0.5)
            total += wire.bytes - before
        preset = page.locator('[data-testid="stSelectbox"]').filter(has_text="Window preset")

        def lung() -> None:
            preset.click()
            page.get_by_role("option", name="Lung", exact=True).click()

        per_window = wire.during(lung, settle_s=4.0)
        page.close()
    median, p95 = _summary(times)
    return {"slice_step_ms_median": round(median, 1), "slice_step_ms_p95": round(p95, 1),
            "ws_bytes_per_slice_step": round(total / steps), "ws_bytes_per_window_change": per_window,
            "upload_to_first_paint_ms": round(first_paint)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="slice steps on the WebGL viewer (static: a fifth)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    series = Path(os.environ.get("MEDVIZ_DATA_DIR", ROOT.parent / "shared" / "data")) / SERIES
    from playwright.sync_api import sync_playwright

    logs = Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        result = webgl(browser, series, args.steps, logs / "webgl.log")
        print("webgl", result, file=sys.stderr, flush=True)
        result["baseline"] = static(browser, series, max(4, args.steps // 5), logs / "static.log")
        browser.close()
    result["study"] = f"{SERIES} (512×512×20 CT)"
    if args.json:
        print(json.dumps(result))
        return
    base = result["baseline"]
    print(f"{'':32} {'WebGL viewer':>14} {'static (plotly)':>16}")
    for key in ("slice_step_ms_median", "slice_step_ms_p95", "ws_bytes_per_slice_step", "ws_bytes_per_window_change",
                "upload_to_first_paint_ms"):
        print(f"{key:32} {result[key]:>14} {base[key]:>16}")


if __name__ == "__main__":
    main()
