"""The WebGL viewer in a real browser (issue #13): slices step in the browser with nothing on the websocket,
drag windows, cine plays, the three planes share one crosshair whose LPS position equals ``Volume.affine``, and no
request leaves the machine.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect
from streamlit_server import run_streamlit

from medviz.imaging.patient_space import voxel_at
from medviz.io.examples import load_example

APP = Path(__file__).resolve().parent / "volume_viewer_app.py"
LOAD_TIMEOUT_MS = 120_000


def the_viewer(page, status: re.Pattern = re.compile(r"^slice \d+ / \d+")):
    """The page's one viewer frame once its status matches ``status``. A rerun that opens a new study replaces
    the viewer, and for a moment the previous study's frame can stand beside the new one: wait for it to go."""
    frames = page.locator("iframe[title*='volume_viewer']")
    frame = frames.first.content_frame
    expect(frame.locator("#status")).to_have_text(status, timeout=LOAD_TIMEOUT_MS)
    expect(frames).to_have_count(1, timeout=LOAD_TIMEOUT_MS)
    expect(frame.locator("#status")).to_have_text(status, timeout=LOAD_TIMEOUT_MS)
    return frame


@pytest.fixture(scope="module")
def viewer_url(tmp_path_factory):
    with run_streamlit(APP, tmp_path_factory.mktemp("vv") / "server.log") as url:
        yield url


class Viewer:
    """The component's frame, its status line and the websocket traffic of the page."""

    def __init__(self, page, url: str, example: str, layout: str = "multiplanar") -> None:
        self.page = page
        self.outside: list[str] = []
        self.ws_bytes = 0

        def route(r):
            if re.match(r"^(https?|wss?)://127\.0\.0\.1[:/]", r.request.url) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("websocket", self._watch)
        page.goto(f"{url}/?ex={example}&layout={layout}")
        self.frame = page.frame_locator("iframe[title*='volume_viewer']")
        self.status = self.frame.locator("#status")
        expect(self.status).to_have_text(re.compile(r"^slice \d+ / \d+"), timeout=LOAD_TIMEOUT_MS)
        self.canvas = self.frame.locator("#gl")
        time.sleep(1.0)  # let the first render's messages settle before counting

    def _watch(self, ws) -> None:
        def count(payload) -> None:
            self.ws_bytes += len(payload) if isinstance(payload, bytes | str) else 0

        ws.on("framesent", count)
        ws.on("framereceived", count)

    def slice(self) -> int:
        return int(self.status.get_attribute("data-slice"))

    def window(self) -> tuple[float, float]:
        lo, hi = self.status.get_attribute("data-window").split(",")
        return float(lo), float(hi)

    def point(self, fx: float, fy: float) -> tuple[float, float]:
        box = self.canvas.bounding_box()
        return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy

    def event(self) -> dict:
        text = self.page.locator("[data-testid='stCode']").last.inner_text()
        return json.loads(text) if text.strip() not in ("", "null") else {}


@pytest.mark.browser
def test_wheel_and_keys_step_slices_with_no_bytes_on_the_websocket(page, viewer_url):
    v = Viewer(page, viewer_url, "mr_brain_3d", layout="axial")
    first = v.slice()
    page.mouse.move(*v.point(0.5, 0.5))
    before = v.ws_bytes
    for _ in range(3):
        page.mouse.wheel(0, 100)
        time.sleep(0.15)
    page.keyboard.press("ArrowUp")
    time.sleep(0.3)
    assert v.slice() == first + 4
    assert v.ws_bytes == before  # slice steps never reach the server
    assert v.outside == []


@pytest.mark.browser
def test_right_drag_changes_the_window_in_the_browser(page, viewer_url):
    v = Viewer(page, viewer_url, "mr_brain_3d", layout="axial")
    lo, hi = v.window()
    x, y = v.point(0.5, 0.5)
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x + 60, y + 40, steps=8)
    page.mouse.up(button="right")
    time.sleep(0.5)
    assert v.window() != (lo, hi)
    expect(page.locator("[data-testid='stCode']").last).to_contain_text('"kind": "window"', timeout=LOAD_TIMEOUT_MS)


@pytest.mark.browser
def test_cine_plays_the_ultrasound_clip(page, viewer_url):
    v = Viewer(page, viewer_url, "us_multiframe")
    first = v.slice()
    v.frame.locator("#play").click()
    time.sleep(1.5)
    v.frame.locator("#play").click()
    played = v.slice()
    assert played != first  # at 10 frames/s, 1.5 s moves the clip on by many frames (it wraps at the end)
    time.sleep(0.5)
    assert v.slice() == played  # and pause holds it


@pytest.mark.browser
def test_three_planes_share_a_crosshair_at_the_volumes_lps_position(page, viewer_url):
    volume = load_example("mr_brain_3d")
    v = Viewer(page, viewer_url, "mr_brain_3d", layout="multiplanar")
    page.mouse.click(*v.point(0.22, 0.35))  # inside the first (axial) tile
    expect(page.locator("[data-testid='stCode']").last).to_contain_text('"kind": "crosshair"', timeout=LOAD_TIMEOUT_MS)
    event = v.event()
    index = voxel_at(volume, event["lps"])
    assert index is not None
    x, y, z = index
    half_voxel = 0.5 * float(np.linalg.norm(volume.spacing))
    assert float(np.linalg.norm((volume.affine @ [x, y, z, 1])[:3] - event["lps"])) <= half_voxel
    # the value the browser shows at the crosshair is the Volume's value of that voxel: the geometry agrees
    assert event["shown_value"] == pytest.approx(float(volume.array[z, y, x]), rel=1e-5)
    assert v.outside == []


@pytest.mark.browser
def test_a_mask_corrected_by_hand_comes_back_on_the_studys_grid(page, viewer_url):
    v = Viewer(page, viewer_url, "mr_brain_3d&drawing=1", layout="axial")
    code = page.locator("[data-testid='stCode']").last
    v.frame.locator("#apply").click()  # unchanged: the round trip alone must give the same mask
    expect(code).to_contain_text('"kind": "mask"', timeout=LOAD_TIMEOUT_MS)
    first = v.event()
    assert first["changed"] == 0 and first["voxels"] == first["original"] > 0
    v.frame.locator("#tool").select_option("eraser")
    x, y = v.point(0.5, 0.5)
    page.mouse.move(x - 150, y)  # a stroke across the middle of the slice
    page.mouse.down()
    page.mouse.move(x + 150, y, steps=20)
    page.mouse.up()
    v.frame.locator("#undo").click()  # undone: nothing changed
    v.frame.locator("#tool").select_option("brush")
    page.mouse.move(x - 150, y)
    page.mouse.down()
    page.mouse.move(x + 150, y, steps=20)
    page.mouse.up()
    v.frame.locator("#apply").click()
    expect(code).not_to_contain_text('"changed": 0', timeout=LOAD_TIMEOUT_MS)
    after = v.event()
    assert after["voxels"] > first["voxels"] and after["changed"] == after["voxels"] - first["voxels"]


@pytest.mark.browser
def test_the_viewer_page_opens_in_the_webgl_viewer_and_lists_a_distance(app_page):
    """The app's first screen: the bundled 3D MR in the WebGL viewer; a distance dragged there is listed in mm."""
    page = app_page
    frame = page.frame_locator("iframe[title*='volume_viewer']")
    status = frame.locator("#status")
    expect(status).to_have_text(re.compile(r"^slice \d+ / 25"), timeout=LOAD_TIMEOUT_MS)
    frame.locator("#layout").select_option("axial")
    frame.locator("#tool").select_option("distance")
    box = frame.locator("#gl").bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y, steps=10)
    page.mouse.up()
    expect(page.get_by_text(re.compile(r"1\. distance — \d+\.\d mm"))).to_be_visible(timeout=LOAD_TIMEOUT_MS)


@pytest.mark.browser
@pytest.mark.data
def test_the_segment_page_takes_a_hand_corrected_mask(segmented_lgg_page, streamlit_idle):
    """Review loop: the model's mask in the WebGL viewer, a brush stroke, Apply: Dice model vs corrected < 1,
    and the measurements now come from the corrected mask."""
    page = segmented_lgg_page
    page.get_by_text("Review and correct the mask in the interactive viewer").click()
    frame = the_viewer(page)
    expect(frame.locator("#edit")).to_be_visible()
    expect(frame.locator("#status")).to_have_attribute("data-drawing", re.compile(r"^fill 255,140,0 0\.4"))
    page.get_by_text("contour", exact=True).click()  # the page's overlay style reaches the viewer
    expect(frame.locator("#status")).to_have_attribute("data-drawing", re.compile(r"^contour "),
                                                       timeout=LOAD_TIMEOUT_MS)
    frame.locator("#tool").select_option("brush")
    box = frame.locator("#gl").bounding_box()
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    page.mouse.move(x - 100, y - 60)
    page.mouse.down()
    page.mouse.move(x + 100, y + 60, steps=25)
    page.mouse.up()
    frame.locator("#apply").click()
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Dice, model vs corrected")
    expect(metric).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    dice = float(metric.locator('[data-testid="stMetricValue"]').inner_text())
    assert 0.0 < dice < 1.0
    expect(page.get_by_text("Measurements and every export below use the corrected mask.")).to_be_visible()


@pytest.mark.browser
@pytest.mark.data
def test_a_dicom_seg_opened_from_file_is_drawn_over_its_series(app_page, data_dir, streamlit_idle):
    """The 3-slice CT and its liver SEG (dcmqi test data): the SEG is placed on the series in the WebGL viewer."""
    page = app_page
    folder = data_dir / "dicom_ct_3slice_with_liver_seg"
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [str(folder / f"0{k}.dcm") for k in (1, 2, 3)])
    frame = the_viewer(page, re.compile(r"^slice \d+ / 3"))
    overlay_input = page.locator('[data-testid="stFileUploader"]').filter(has_text="Overlay a segmentation")
    overlay_input.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(folder / "liver_seg.dcm"))
    expect(page.get_by_text(re.compile(r"liver_seg\.dcm: 1 segment\(s\), [\d,]+ voxels"))).to_be_visible(
        timeout=LOAD_TIMEOUT_MS)
    expect(frame.locator("#status")).to_have_attribute("data-layers", "2", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)


@pytest.mark.browser
def test_the_three_planes_are_linked_by_one_crosshair(page, viewer_url):
    """A click in the axial tile moves the crosshair within that slice (x, y change, z stays); a click in the
    coronal tile moves it within the coronal plane, to another axial slice (z changes, y stays): every plane
    follows the one crosshair."""
    v = Viewer(page, viewer_url, "mr_brain_3d", layout="multiplanar")
    handle = next(f for f in page.frames if "volume_viewer" in f.url)
    tiles = {t["plane"]: t["rect"] for t in handle.evaluate("() => medvizTiles()")}
    assert set(tiles) >= {0, 1, 2}  # axial, coronal and sagittal tiles in the layout
    box = v.canvas.bounding_box()

    def click(plane: int, fx: float, fy: float) -> list[float]:
        left, top, width, height = tiles[plane]
        page.mouse.click(box["x"] + left + fx * width, box["y"] + top + fy * height)
        expect(page.locator("[data-testid='stCode']").last).to_contain_text('"kind": "crosshair"',
                                                                           timeout=LOAD_TIMEOUT_MS)
        time.sleep(1.0)
        return v.event()["lps"]

    first = click(0, 0.3, 0.3)
    second = click(0, 0.7, 0.6)
    assert second[2] == pytest.approx(first[2]) and (second[0], second[1]) != (first[0], first[1])
    third = click(1, 0.5, 0.2)
    assert third[2] != pytest.approx(second[2])  # the axial plane moved with the crosshair
    assert third[1] == pytest.approx(second[1], abs=1e-3)  # a coronal click keeps the anterior-posterior position
