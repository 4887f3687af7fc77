"""The live camera and video clips in a real browser: Chromium with a fake camera that films the example photos.

The camera is Chromium's fake capture device fed by a Y4M file the tests write from
the example photos (``--use-file-for-fake-video-capture``), with the camera
permission granted, so the page runs exactly as with a laptop's camera. The tests
click and type as a presenter would, at 1280x720 and at a phone's 390x844, wait on
what the page shows, and leave screenshots in ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import demo.service
from demo.engine import ENGINE

from .app_server import RunningApp, served
from .light_app import light_service
from .test_browser import ARTIFACTS, CHROMIUM, DESKTOP, EXAMPLES, PAINTED, PHONE, TYPING
from .videos import walking_cat, write_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEW = "() => { const i = document.querySelector('#live-view img'); return i ? i.src : ''; }"
SENTENCE = (
    "() => { const m = document.querySelector('#live-sentence [data-testid=markdown]'); return m ? m.innerText : ''; }"
)
RECORDING = "() => Boolean(window.gradcamSources && window.gradcamSources.capturing())"
#: Records what the page asks the camera for (the constraints of every getUserMedia call).
WATCH_CAMERA = """
window.__asked = [];
const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.__asked.push(constraints);
  return original(constraints);
};
"""


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """RGB frames as a Y4M file (4:2:0), what Chromium's fake camera plays in a loop."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            file.write(b"FRAME\n")
            file.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def _camera_film(size: tuple[int, int] = (640, 480), count: int = 30) -> list[np.ndarray]:
    """The cat-and-coffee example photo as a camera held by hand films it: panning slowly right, then back."""
    photo = np.array(Image.open(EXAMPLES / "cat-and-coffee.jpg").convert("RGB"))
    wide = cv2.resize(photo, (size[0] + 2 * count, size[1]), interpolation=cv2.INTER_AREA)
    steps = [*range(count), *range(count - 1, -1, -1)]
    return [np.ascontiguousarray(wide[:, 2 * i : 2 * i + size[0]]) for i in steps]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (as root: apt-get install chromium); the browser test needs it")
    film = write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m", _camera_film())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={film}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def light_app() -> Iterator[RunningApp]:
    with served(light_service(), live_seconds=6) as running:
        yield running


def _open(browser, app: RunningApp, viewport: dict[str, int], *, watch: bool = False):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.grant_permissions(["camera"])
    page = context.new_page()
    if watch:
        page.add_init_script(WATCH_CAMERA)
    page.goto(app.url)
    page.wait_for_selector("#live-open", timeout=60_000)
    return page


def _views_within(page, seconds: float) -> int:
    """How many different pictures the live view shows within ``seconds``."""
    seen, end = set(), time.monotonic() + seconds
    while time.monotonic() < end:
        src = page.evaluate(VIEW)
        if src:
            seen.add(src)
        time.sleep(0.03)
    return len(seen)


def _shot(page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).std() > 20, "the screenshot is blank"
    return path


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x720", "390x844"])
def test_one_click_starts_the_camera_and_the_overlay_follows_its_frames(light_app, browser, viewport):
    page = _open(browser, light_app, viewport, watch=True)
    page.click("#live-open")
    page.wait_for_function(RECORDING, timeout=30_000)
    page.wait_for_function(f"({VIEW})() !== ''", timeout=30_000)
    changes = _views_within(page, 4.0)
    assert changes >= 8, f"the overlay changed {changes} times in 4 s"
    page.wait_for_function(f"({SENTENCE})().includes('sure this is')", timeout=10_000)
    asked = page.evaluate("window.__asked")
    video = asked[-1]["video"]
    assert video["facingMode"] == {"ideal": "environment"}, "a phone would not offer its rear camera"
    assert video["width"] == {"ideal": 320} and video["height"] == {"ideal": 240}  # small before it travels
    shown = page.evaluate(
        "() => { const v = document.querySelector('#live-camera video'); return [v.videoWidth, v.videoHeight]; }"
    )
    assert shown == [320, 240], f"the camera sends {shown}, not the small frame asked for"
    size = f"{viewport['width']}x{viewport['height']}"
    page.locator("#live-view").scroll_into_view_if_needed()
    _shot(page, f"live-camera-{size}.png")
    page.close()


def test_a_typed_class_applies_to_the_next_frames(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    page.click("#live-open")
    page.wait_for_function(f"({SENTENCE})().includes('sure this is')", timeout=30_000)
    page.click("#target input")
    page.keyboard.type("espre", delay=TYPING)
    page.wait_for_function("document.querySelector('#target [role=option]')?.innerText === 'espresso'")
    page.keyboard.press("Enter")
    page.wait_for_function(f"({SENTENCE})().includes('You asked about espresso')", timeout=10_000)
    label = page.evaluate("() => document.querySelector('#live-view img').src")
    assert _views_within(page, 1.5) >= 3 and label
    _shot(page, "live-camera-espresso.png")
    page.close()


def test_freeze_keeps_the_frame_and_the_explore_views_answer_about_it(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    page.click("#live-open")
    page.wait_for_function(f"({VIEW})() !== ''", timeout=30_000)
    time.sleep(1.0)
    page.click("#live-freeze")
    page.wait_for_function(PAINTED, arg="", timeout=60_000)
    page.wait_for_function(f"!({RECORDING})()", timeout=10_000)  # the camera stopped
    frozen = page.evaluate("() => document.querySelector('#panel-original img').naturalWidth")
    assert frozen == 320, "the page's photo is not the camera's frame"
    page.get_by_role("tab", name="Compare classes").click()
    page.click("#classes-run")
    page.wait_for_function("document.querySelectorAll('#classes-gallery img').length >= 3", timeout=60_000)
    _shot(page, "live-frozen-explored.png", full_page=True)
    page.close()


def test_the_camera_says_it_will_stop_stops_at_the_end_of_a_run_and_restarts(light_app, browser):
    page = _open(browser, light_app, DESKTOP)
    page.click("#live-open")
    page.wait_for_function(f"({VIEW})() !== ''", timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#live-status').innerText.includes('The live camera stops in')", timeout=15_000
    )
    _shot(page, "live-countdown.png")
    page.wait_for_function("document.querySelector('#live-status').innerText.includes('has stopped')", timeout=15_000)
    page.wait_for_function(f"!({RECORDING})()", timeout=10_000)
    still = page.evaluate(VIEW)
    time.sleep(1.0)
    assert page.evaluate(VIEW) == still, "frames were still explained after the end of the run"
    page.click("#live-camera button.capture-button")  # Record: a new run
    page.wait_for_function(f"({VIEW})() !== {still!r}", timeout=15_000)
    page.close()


def test_a_second_visitors_photo_is_served_while_the_first_streams(light_app, browser, monkeypatch):
    explain = demo.service.run_engine

    def slow_frames(*args, **kwargs):  # a frame that takes 0.2 s, like a real model's on 2 cores
        time.sleep(0.2)
        return explain(*args, **kwargs)

    monkeypatch.setattr(demo.service, "run_engine", slow_frames)
    streaming = _open(browser, light_app, DESKTOP)
    streaming.click("#live-open")
    streaming.wait_for_function(f"({VIEW})() !== ''", timeout=30_000)
    ENGINE.longest_frame = ENGINE.longest_wait_behind_frame = 0.0
    visitor = _open(browser, light_app, DESKTOP)
    started = time.monotonic()
    visitor.locator("#examples img").nth(2).click()
    visitor.wait_for_function(PAINTED, arg="", timeout=60_000)
    served_in = time.monotonic() - started
    assert _views_within(streaming, 1.0) >= 2, "the stream stopped while the photo was explained"
    assert ENGINE.longest_wait_behind_frame <= ENGINE.longest_frame + 0.05, "the photo waited for more than a frame"
    print(
        f"photo served in {served_in:.2f} s while a stream ran (a frame holds the model {ENGINE.longest_frame:.2f} s)"
    )
    _shot(visitor, "second-visitor-while-streaming.png")
    visitor.close()
    streaming.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x720", "390x844"])
def test_an_explained_clip_plays_in_chromium_and_its_table_downloads(light_app, browser, viewport, tmp_path):
    clip = write_clip(tmp_path / "walking-cat.mp4", walking_cat(20, (320, 200))[0], fps=10)
    page = _open(browser, light_app, viewport)
    page.click("#clip-open")
    page.locator("#clip-input input[type=file]").set_input_files(str(clip))
    page.wait_for_function(
        "() => { const v = document.querySelector('#clip-result video'); return v && v.readyState >= 2; }",
        timeout=90_000,
    )
    duration = page.evaluate("() => document.querySelector('#clip-result video').duration")
    assert duration == pytest.approx(2.0, abs=0.05)
    assert "frames" in page.inner_text("#clip-sentence")
    with page.expect_download() as download:
        page.click("#clip-table a")
    saved = tmp_path / "frames.csv"
    download.value.save_as(saved)
    assert saved.read_text().splitlines()[0] == "frame,time_s,class,probability,x0,y0,x1,y1"
    page.locator("#clip-result").scroll_into_view_if_needed()
    page.evaluate("() => { const v = document.querySelector('#clip-result video'); v.currentTime = 1.0; }")
    page.wait_for_function("() => document.querySelector('#clip-result video').readyState >= 2")
    _shot(page, f"video-clip-{viewport['width']}x{viewport['height']}.png")
    page.close()


@pytest.fixture(scope="module")
def real_app() -> Iterator[RunningApp]:
    """The page with EfficientNet-Lite0 and its real (embedded) weights."""
    from demo.service import load_service
    from gradcam import available_offline

    from .app_server import gradio_workdir

    usable, reason = available_offline("efficientnet_lite0")
    if not usable:
        pytest.skip(f"EfficientNet-Lite0's weights are not installed: {reason}")
    with served(load_service(None, ("efficientnet_lite0",), workdir=gradio_workdir())) as running:
        yield running


def test_with_real_weights_the_live_map_jumps_to_the_typed_class(real_app, browser, monkeypatch):
    """The camera films the cat-and-coffee photo: "espresso" puts the map's peak on the cup (right), "tabby" on the cat.

    The maps are read where the app explains the frames (it runs in this process).
    """
    peaks: list[tuple[str | None, tuple[int, int], tuple[int, int]]] = []
    lock = threading.Lock()
    original = demo.service.DemoService.frame

    def frame(self, request):
        explanation = original(self, request)
        if explanation is not None:
            y, x = np.unravel_index(int(explanation.cam.argmax()), explanation.cam.shape)
            with lock:
                peaks.append((request.target, (x, y), explanation.cam.shape[::-1]))
        return explanation

    monkeypatch.setattr(demo.service.DemoService, "frame", frame)
    page = _open(browser, real_app, DESKTOP)
    page.click("#live-open")
    for typed, side in (("espresso", "right"), ("tabby", "left")):
        page.click("#target input")
        page.keyboard.type(typed, delay=TYPING)
        page.wait_for_function(f"document.querySelector('#target [role=option]')?.innerText === '{typed}'")
        page.keyboard.press("Enter")
        page.wait_for_function(f"({SENTENCE})().includes('You asked about {typed}')", timeout=30_000)
        time.sleep(1.5)
        with lock:
            asked = [x / width for target, (x, _), (width, _) in peaks if target == typed]
        on_side = [x > 0.55 if side == "right" else x < 0.5 for x in asked]  # the cup is right, the cat left
        assert len(on_side) >= 5 and sum(on_side) >= 0.6 * len(on_side), (typed, asked)
        _shot(page, f"live-real-{typed}.png")
    page.close()
