"""The live camera as a room sees it, in headless Chromium: explained frames painted a second, capture to paint, engine.

The app runs in this process on 127.0.0.1 (as ``python app.py`` builds it, with
EfficientNet-Lite0 and its real weights by default); Chromium's fake camera films
the cat-and-coffee example photo panning slowly (a 640 x 480 Y4M at 30 frames a
second; the page asks the camera for 320 x 240). One click on "Live camera" starts
it, as a presenter does. Measured over ``--seconds`` after a warm-up:

* **painted a second**: new explained pictures the live view painted (a picture
  counts once it is decoded and a frame was drawn after it);
* **capture to paint**: from the moment the page drew a camera frame to send it
  (its ``canvas.toDataURL``) to the first animation frame after its explained
  picture was decoded, matched frame by frame (each frame's and each picture's
  base64 tail is recorded by the page and by the server, same wall clock);
* **the engine's share per frame**: the one engine call of a frame during the
  stream, and alone (interleaved with a plain forward pass of the same frame,
  ``harness.time_interleaved``, on a worker thread as in the server), over a
  plain forward pass.

Beside them, the breakdown: frames the server's handler received a second (the
page sends one every ``--every`` seconds; while a frame is explained, Gradio keeps
only the newest one waiting), and the server's time per frame: decoding it and the
engine call (``DemoService.frame``), and the explained picture to its inline JPEG.

Targets (issue 23), on 2 CPU cores shared by the browser, the server and the
model: >= 8 painted a second, median capture to paint <= 0.25 s, engine <= 1.3 x
a forward pass.

Run: ``bash benchmarks/run.sh live [--quick] [--seconds 20] [--model efficientnet_lite0] [--every 0.1]``.
"""

from __future__ import annotations

import base64
import functools
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2
import harness
import numpy as np
import reporting
import torch
from app_probe import free_port

import demo.page.live
import demo.service
from demo.engine import ENGINE
from gradcam import Explainer, load_backbone
from gradcam.cam import predict

CHROMIUM = Path("/usr/bin/chromium")
PAINTED_PER_SECOND, CAPTURE_TO_PAINT_S, ENGINE_SHARE = 8.0, 0.25, 1.3

#: In the page before its own scripts: when each camera frame was drawn, and when each explained picture was painted.
WATCH = """
window.__captured = {}; window.__painted = [];
const draw = HTMLCanvasElement.prototype.toDataURL;
HTMLCanvasElement.prototype.toDataURL = function (...args) {
  const drawn = performance.timeOrigin + performance.now();
  const url = draw.apply(this, args);
  (window.__captured[url.slice(-40)] ||= []).push(drawn);  // the camera's film loops: a picture recurs
  return url;
};
let shown = '';
new MutationObserver(() => {
  const img = document.querySelector('#live-view img');
  if (!img || img.src === shown) return;
  shown = img.src;
  const key = shown.slice(-40);
  img.decode().then(() => requestAnimationFrame(() => {
    window.__painted.push([key, performance.timeOrigin + performance.now()]);
  })).catch(() => {});
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
"""


def film(path: Path, frames: int = 90, size: tuple[int, int] = (640, 480)) -> Path:
    """The cat-and-coffee photo panning slowly right and back, as a Y4M for Chromium's fake camera."""
    photo = harness.example_photo("cat-and-coffee.jpg")
    wide = cv2.resize(photo, (size[0] + frames, size[1]), interpolation=cv2.INTER_AREA)
    with path.open("wb") as file:
        file.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F30:1 Ip A1:1 C420jpeg\n".encode())
        for i in [*range(frames // 2), *range(frames // 2, 0, -1)]:
            file.write(
                b"FRAME\n"
                + cv2.cvtColor(np.ascontiguousarray(wide[:, 2 * i : 2 * i + size[0]]), cv2.COLOR_RGB2YUV_I420).tobytes()
            )
    return path


class Probe:
    """What the server did with each frame: its engine time, and which picture it sent back (by base64 tail)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine: list[float] = []
        self.served: list[float] = []  # service.frame: the frame decoded, then the engine call (or a drop)
        self.encoded: list[float] = []  # the explained picture to an inline JPEG
        self.picture_of: dict[str, str] = {}  # picture's tail -> its frame's tail
        self.frames = 0
        self._local = threading.local()

    @contextmanager
    def installed(self) -> Iterator[None]:
        frame, engine, inline = demo.service.DemoService.frame, demo.service.run_engine, demo.page.live.inline

        @functools.wraps(frame)
        def timed_frame(service: Any, request: Any) -> Any:
            self._local.key = base64.b64encode(request.photo.data).decode()[-40:]
            with self.lock:
                self.frames += 1
            started = time.perf_counter()
            try:
                return frame(service, request)
            finally:
                with self.lock:
                    self.served.append(time.perf_counter() - started)

        @functools.wraps(engine)
        def timed_engine(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return engine(*args, **kwargs)
            finally:
                with self.lock:
                    self.engine.append(time.perf_counter() - started)

        @functools.wraps(inline)
        def recorded_inline(picture: Any) -> dict[str, Any]:
            started = time.perf_counter()
            shown = inline(picture)
            with self.lock:
                self.encoded.append(time.perf_counter() - started)
                self.picture_of[shown["url"][-40:]] = getattr(self._local, "key", "")
            return shown

        demo.service.DemoService.frame = timed_frame  # patching on purpose: measuring, nothing else
        demo.service.run_engine = timed_engine
        demo.page.live.inline = recorded_inline
        try:
            yield
        finally:
            demo.service.DemoService.frame, demo.service.run_engine, demo.page.live.inline = frame, engine, inline


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.1f}" if seconds else "-"


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=7)
    p.add_argument("--model", default="efficientnet_lite0", help="backbone spec (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured streaming time (default: %(default)s)")
    p.add_argument(
        "--every",
        type=float,
        default=demo.page.live.LIVE_EVERY,
        help="seconds between the page's frame ticks, the app's LIVE_EVERY (default: %(default)s)",
    )
    args = p.parse_args()
    harness.apply_threads(args)
    if args.quick:
        args.seconds, args.reps = min(args.seconds, 10.0), min(args.reps, 3)
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing (as root: apt-get install chromium); this benchmark needs it.")
    from playwright.sync_api import sync_playwright

    from demo.launch import create_app, launch_options
    from demo.service import DemoService

    folder = Path(tempfile.mkdtemp(prefix="gradcam-bench-live-"))
    probe = Probe()
    try:
        camera = film(folder / "camera.y4m")
        from gradio.utils import get_upload_folder

        explainer = Explainer(load_backbone(args.model))
        service = DemoService({explainer.backbone.title: explainer}, workdir=Path(get_upload_folder()) / folder.name)
        demo.page.live.LIVE_EVERY = args.every  # read when the page is built (the default leaves it as it is)
        blocks = create_app(service)
        port = free_port()
        blocks.launch(
            server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options()
        )
        harness.wait_for_quiet(args.wait_quiet)
        load_before = harness.load_average()
        try:
            with probe.installed(), sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM),
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--use-fake-ui-for-media-stream",
                        "--use-fake-device-for-media-stream",
                        f"--use-file-for-fake-video-capture={camera}",
                    ],
                )
                context = browser.new_context(viewport={"width": 1280, "height": 720})
                context.grant_permissions(["camera"])
                page = context.new_page()
                page.add_init_script(WATCH)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#live-open", timeout=60_000)
                page.click("#live-open")
                page.wait_for_function("() => window.__painted.length > 5", timeout=60_000)
                harness.log("  streaming; warm-up 3 s ...")
                time.sleep(3.0)
                start = page.evaluate("() => performance.timeOrigin + performance.now()")
                dropped, frames_before = ENGINE.dropped, probe.frames
                served_before, encoded_before = len(probe.served), len(probe.encoded)
                harness.log(f"  measuring {args.seconds:g} s ...")
                time.sleep(args.seconds)
                end = page.evaluate("() => performance.timeOrigin + performance.now()")
                captured = page.evaluate("() => window.__captured")
                painted = [(key, t) for key, t in page.evaluate("() => window.__painted") if start <= t <= end]
                dropped, received = ENGINE.dropped - dropped, probe.frames - frames_before
                served, encoded = probe.served[served_before:], probe.encoded[encoded_before:]
                browser.close()
        finally:
            blocks.close()
            service.close()
        frame = cv2.resize(harness.example_photo("cat-and-coffee.jpg"), (320, 240), interpolation=cv2.INTER_AREA)
        x = explainer.preprocess(frame)
        model = explainer.backbone.model

        def forward() -> None:
            with torch.no_grad():
                predict(model, x)

        def timed() -> dict[str, harness.Timing]:
            return harness.time_interleaved(
                {"engine": lambda: explainer.explain(frame), "forward": forward},
                args.reps,
                args.warmup,
                wait_quiet_s=args.wait_quiet,
                clock=args.clock,
            )

        # On a worker thread, as the server runs the engine: with two torch threads on a busy machine, calls
        # from the main thread ran 4-6 x slower than the same calls from a worker thread (275 against 57 ms).
        with ThreadPoolExecutor(1) as worker:
            alone = worker.submit(timed).result()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    seconds = (end - start) / 1000
    latencies = []
    for key, t in painted:  # the frame's last capture before its picture was painted (the film loops every 3 s)
        times = [c for c in captured.get(probe.picture_of.get(key, ""), []) if c <= t]
        if times:
            latencies.append((t - max(times)) / 1000)
    rate = len(painted) / seconds
    latency = statistics.median(latencies) if latencies else float("nan")
    quartiles = statistics.quantiles(latencies, n=4) if len(latencies) > 3 else [latency, latency, latency]
    forward_s = alone["forward"].median
    in_stream = statistics.median(probe.engine[-max(1, len(painted)) :]) if probe.engine else float("nan")
    report = reporting.Report("The live camera in Chromium (bench_live.py)")
    report.add(
        reporting.conditions(
            model=f"{explainer.backbone.title} ({'untrained' if explainer.backbone.untrained else 'pretrained'})",
            camera="Chromium's fake camera filming demo/examples/cat-and-coffee.jpg panning (Y4M 640x480 at 30 "
            f"frames a second; the page asks for 320x240 and sends one every {args.every:g} s)",
            browser="headless Chromium (Playwright), 1280x720, app on 127.0.0.1 in the same process: browser, "
            "server and model share the CPUs",
            measured=f"{seconds:.1f} s after a 3 s warm-up; load average before {load_before:.2f}",
        ),
        reporting.table(
            ["figure", "measured", "target"],
            [
                ["explained frames painted a second", f"**{rate:.1f}**", f">= {PAINTED_PER_SECOND:g}"],
                [
                    "frame captured -> its overlay painted, median (quartiles)",
                    f"**{latency:.3f} s** ({quartiles[0]:.3f}-{quartiles[2]:.3f})",
                    f"<= {CAPTURE_TO_PAINT_S:g} s",
                ],
                ["frames the server received a second", f"{received / seconds:.1f}", ""],
                [
                    "server per frame: decoded + the engine call (`DemoService.frame`), median",
                    f"{_ms(served)} ms",
                    "",
                ],
                ["server per frame: the explained picture to an inline JPEG, median", f"{_ms(encoded)} ms", ""],
                [
                    "the engine call per frame during the stream / a forward pass alone",
                    f"{in_stream / forward_s:.2f} x ({in_stream * 1000:.0f} / {forward_s * 1000:.0f} ms)",
                    "",
                ],
                [
                    "the engine call per frame alone / a forward pass (interleaved)",
                    f"**{alone['engine'].median / forward_s:.2f} x** "
                    f"({alone['engine'].ms()} / {alone['forward'].ms()} ms)",
                    f"<= {ENGINE_SHARE:g} x",
                ],
            ],
        ),
        f"Frames the server received in the window: {received}; dropped because the model was busy: {dropped}; "
        f"matched to their painted picture: {len(latencies)} of {len(painted)}. Verdicts: painted "
        f"{reporting.verdict(rate, PAINTED_PER_SECOND, at_most=False)}, latency "
        f"{reporting.verdict(latency, CAPTURE_TO_PAINT_S)}, engine "
        f"{reporting.verdict(alone['engine'].median / forward_s, ENGINE_SHARE, contended=alone['engine'].contended)}.",
        "Contention while timing the engine alone: " + alone["engine"].rounds.summary() + ".",
    )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
