"""The live camera and video clips against a running app, over HTTP as the page talks to it.

A stream is joined as the page joins it (``queue/join`` with the first frame), its
next frames are posted to ``/gradio_api/stream/<event>`` and its answers read from
the queue's event stream. The model is the light TinyNet with the ImageNet names.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

import demo.service
from demo import text
from demo.engine import ENGINE
from gradcam.video import open_clip

from .app_server import RunningApp, explain_index, join, served
from .light_app import light_service
from .videos import ten_hours_of_one_frame, walking_cat, write_clip

pytestmark = pytest.mark.slow

INPUTS = ["Top prediction", "TinyNet", 0.15, 0.5, "jet"]
#: The settings after the colours (the layer, the method), at their defaults: in a photo or frame event after
#: INPUTS, in a clip event after "every".
NEWER = [None, None]


def _frame(colour: tuple[int, int, int], size: tuple[int, int] = (96, 72)) -> dict:
    """A camera frame as the page sends it: a JPEG data URL."""
    picture = np.zeros((size[1], size[0], 3), np.uint8)
    picture[:] = colour
    picture[20:50, 30:60] = (255 - colour[0], 40, 40)
    ok, encoded = cv2.imencode(".jpg", picture)
    assert ok
    url = "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode()
    return {"path": None, "url": url, "meta": {"_type": "gradio.FileData"}}


def _index(app: RunningApp, name: str) -> int:
    return next(i for i, fn in app.demo.fns.items() if getattr(fn.fn, "__name__", "") == name)


def _stream_index(app: RunningApp) -> int:
    return next(i for i, fn in app.demo.fns.items() if fn.connection == "stream")


class Stream:
    """One visitor's live stream: joined with a first frame, its answers collected from the event stream."""

    def __init__(self, app: RunningApp, session: str, inputs: list | None = None) -> None:
        self.app, self.session, self.inputs = app, session, inputs or [*INPUTS, *NEWER]
        self.fn = _stream_index(app)
        self.messages: list[dict] = []
        self.http = httpx.Client(timeout=30)
        self._socket: socket.socket | None = None
        self._listening: threading.Thread | None = None
        self.event_id = ""

    def start(self, first: dict) -> None:
        body = {"data": [first, *self.inputs], "fn_index": self.fn, "session_hash": self.session}
        joined = self.http.post(self.app.url + "gradio_api/queue/join", json=body)
        assert joined.status_code == 200, joined.text
        self.event_id = joined.json()["event_id"]
        self._listening = threading.Thread(target=self._listen, daemon=True)
        self._listening.start()

    def _listen(self) -> None:
        """Reads the queue's event stream over a plain socket, which :meth:`leave` can cut as a closed tab does."""
        url = httpx.URL(self.app.url)
        self._socket = socket.create_connection((url.host, url.port), timeout=60)
        request = f"GET /gradio_api/queue/data?session_hash={self.session} HTTP/1.0\r\nHost: {url.host}\r\n\r\n"
        self._socket.sendall(request.encode())
        buffer = b""
        try:
            while True:
                chunk = self._socket.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.startswith(b"data:"):
                        self.messages.append(json.loads(line[5:]))
        except OSError:
            return  # cut by leave()

    def send(self, frame: dict) -> int:
        body = {"data": [frame, *self.inputs], "fn_index": self.fn, "session_hash": self.session}
        return self.http.post(self.app.url + f"gradio_api/stream/{self.event_id}", json=body).status_code

    def close(self) -> None:
        self.http.post(self.app.url + f"gradio_api/stream/{self.event_id}/close", json={})

    def leave(self) -> None:
        """The visitor closes the page: the event stream's connection goes."""
        if self._socket is not None:
            self._socket.shutdown(socket.SHUT_RDWR)
            self._socket.close()
        if self._listening is not None:
            self._listening.join(10)

    def outputs(self) -> list[list]:
        """Every answer to a frame, the last one (the stream's end) too."""
        answers = ("process_streaming", "process_completed")
        return [m["output"]["data"] for m in self.messages if m.get("msg") in answers and "data" in m.get("output", {})]

    def wait(self, condition, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; messages: {[m.get('msg') for m in self.messages]}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def app() -> Iterator[RunningApp]:
    with served(light_service()) as running:
        yield running


@pytest.fixture(scope="module")
def short_app() -> Iterator[RunningApp]:
    """The app with live runs of 4 seconds."""
    with served(light_service(), live_seconds=4) as running:
        yield running


@contextmanager
def _recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The frames the model explained (their SHA-256), in order."""
    explained: list[str] = []
    original = demo.service.DemoService.frame

    def frame(self, request):
        result = original(self, request)
        if result is not None:
            explained.append(request.photo.sha256)
        return result

    monkeypatch.setattr(demo.service.DemoService, "frame", frame)
    yield explained


def _sha(frame: dict) -> str:
    import hashlib

    return hashlib.sha256(base64.b64decode(frame["url"].split(",", 1)[1])).hexdigest()


def test_frames_that_arrive_while_the_model_is_busy_are_dropped_never_queued(app, monkeypatch):
    stream = Stream(app, "busy-tab")
    with _recording(monkeypatch) as explained:
        stream.start(_frame((10, 10, 10)))
        stream.wait(lambda: len(explained) >= 1)
        hold = threading.Event()

        def busy() -> None:  # someone's photo holds the model
            with ENGINE.running():
                hold.wait(10)

        holder = threading.Thread(target=busy)
        holder.start()
        time.sleep(0.1)
        before, dropped, answered = len(explained), ENGINE.dropped, len(stream.outputs())
        for i in range(1, 6):
            assert stream.send(_frame((40 * i, 90, 200))) == 200
            time.sleep(0.15)
        assert len(explained) == before, "a frame ran the model while it was busy"
        assert ENGINE.dropped >= dropped + 3 and len(stream.outputs()) > answered  # each answered at once
        hold.set()
        holder.join()

        slow = demo.service.run_engine
        monkeypatch.setattr(demo.service, "run_engine", lambda *a, **k: (time.sleep(0.3), slow(*a, **k))[1])
        burst = [_frame((5 * i, 200, 20)) for i in range(10)]
        for frame in burst:  # 10 frames in half a second, while each takes 0.3 s to explain
            stream.send(frame)
            time.sleep(0.05)
        time.sleep(0.8)
        ran = explained[before:]
        assert 1 <= len(ran) <= 4, f"{len(ran)} of 10 frames explained: frames were queued"
        order = [_sha(f) for f in burst]
        assert [order.index(sha) for sha in ran] == sorted(order.index(sha) for sha in ran)
        last = _frame((250, 250, 0))
        stream.send(last)
        stream.wait(lambda: explained[-1] == _sha(last))  # the newest frame, not a backlog
        stream.close()
    stream.leave()


def test_a_photo_during_a_stream_waits_for_one_frame_at_most(app, monkeypatch):
    slow = demo.service.run_engine

    def one_slow_frame(*args, **kwargs):  # a frame takes 0.25 s: a photo arriving meanwhile must wait for it
        time.sleep(0.25)
        return slow(*args, **kwargs)

    monkeypatch.setattr(demo.service, "run_engine", one_slow_frame)
    stream = Stream(app, "streaming-tab")
    stream.start(_frame((0, 0, 0)))
    sending = threading.Event()

    def camera() -> None:
        i = 0
        while not sending.is_set():
            stream.send(_frame((i % 250, 30, 60)))
            i += 7
            time.sleep(0.05)

    sender = threading.Thread(target=camera)
    sender.start()
    stream.wait(lambda: len(stream.outputs()) >= 2)
    ENGINE.longest_wait_behind_frame = ENGINE.longest_frame = 0.0
    photo = _upload(app, Path(__file__).resolve().parents[1] / "demo" / "examples" / "coffee.png")
    for _ in range(3):
        status, answer = join(app, explain_index(app), [photo, *INPUTS, *NEWER], "photo-tab")
        assert status == 200 and answer["success"], answer
    sending.set()
    sender.join()
    stream.close()
    stream.leave()
    assert ENGINE.longest_frame >= 0.25
    assert ENGINE.longest_wait_behind_frame <= ENGINE.longest_frame + 0.05


def test_a_stream_counts_down_stops_at_its_time_limit_and_can_be_restarted(short_app, monkeypatch):
    app = short_app
    stream = Stream(app, "timed-tab")
    with _recording(monkeypatch) as explained:
        stream.start(_frame((0, 0, 0)))
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 5.5:
            stream.send(_frame((i % 250, 100, 100)))
            i += 11
            time.sleep(0.1)
        statuses = [data[2] for data in stream.outputs() if isinstance(data[2], str)]
        assert any("The live camera stops in" in s for s in statuses), statuses
        assert any("data-ended" in s and "has stopped" in s for s in statuses), statuses
        ended = [m for m in stream.messages if m.get("msg") == "process_completed"]
        assert ended and "data-ended" in ended[-1]["output"]["data"][2], "the server did not end the stream"
        ran = len(explained)
        for _ in range(5):
            stream.send(_frame((200, 0, 0)))  # a page that does not stop its camera
            time.sleep(0.1)
        assert len(explained) == ran, "frames after the end ran the model"
        stream.close()
        stream.leave()
        again = Stream(app, "timed-tab")
        again.start(_frame((0, 200, 0)))
        again.wait(lambda: len(explained) > ran)  # a new run: explained again
        again.close()
        again.leave()


def test_a_visitor_who_leaves_ends_their_stream_at_once(app):
    stream = Stream(app, "leaving-tab")
    stream.start(_frame((0, 0, 0)))
    stream.wait(lambda: len(stream.outputs()) >= 1)
    events = app.demo._queue.event_ids_to_events
    assert stream.event_id in events
    stream.leave()  # the page is closed: its event stream ends
    deadline = time.monotonic() + 3
    while stream.event_id in events:
        assert time.monotonic() < deadline, "the stream still holds its slot after its visitor left"
        time.sleep(0.05)


def test_a_frame_is_a_request_like_a_photo(app):
    """The class picker applies to the next frame; a class the model does not know is said, not an error badge."""
    stream = Stream(app, "typed-tab", ["Egyptian cat", "TinyNet", 0.15, 0.5, "jet", *NEWER])
    stream.start(_frame((0, 0, 0)))
    stream.wait(lambda: any(isinstance(d[1], str) and "Egyptian cat" in d[1] for d in stream.outputs()))
    stream.close()
    stream.leave()
    typo = Stream(app, "typo-tab", ["Egyptian kat", "TinyNet", 0.15, 0.5, "jet", *NEWER])
    typo.start(_frame((0, 0, 0)))
    typo.wait(lambda: any(isinstance(d[1], str) and "No class is called" in d[1] for d in typo.outputs()))
    view = next(d[0] for d in typo.outputs() if d[0])
    assert view["url"].startswith("data:image/jpeg;base64,")  # sent inline: no file per frame
    typo.close()
    typo.leave()


def test_freeze_makes_the_last_explained_frame_the_pages_photo(app):
    stream = Stream(app, "freezing-tab")
    first = _frame((120, 20, 200))
    stream.start(first)
    stream.wait(lambda: len(stream.outputs()) >= 1)
    stream.close()  # "Freeze" stops the camera first
    stream.wait(lambda: any(m.get("msg") == "close_stream" for m in stream.messages))
    status, answer = join(app, _index(app, "frozen"), [], "freezing-tab")
    assert status == 200 and answer["success"], answer
    photo = answer["output"]["data"][0]
    kept = Path(photo["path"]).read_bytes()
    assert kept == base64.b64decode(first["url"].split(",", 1)[1])
    stream.leave()
    status, answer = join(app, _index(app, "frozen"), [], "tab-without-camera")
    assert answer["output"]["data"][1] == text.NOTHING_TO_FREEZE


# Video clips: decoded and encoded in process, never by ffmpeg -----------------------------------


@contextmanager
def _watching(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list]]:
    """An ffmpeg and an ffprobe on the PATH that record being run, and every new process recorded."""
    bin_dir, calls = folder / "bin", folder / "calls.txt"
    bin_dir.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        program = bin_dir / name
        program.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    spawned: list[object] = []
    original = subprocess.Popen.__init__

    def watched(self, args, *more, **options):
        spawned.append(args)
        original(self, args, *more, **options)

    monkeypatch.setattr(subprocess.Popen, "__init__", watched)
    yield calls, spawned


@pytest.fixture
def no_external_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test's work runs while an ffmpeg and an ffprobe are on the PATH (as on a Space); none may run."""
    with _watching(tmp_path, monkeypatch) as (calls, spawned):
        yield
    assert not calls.exists(), f"an external program saw the video: {calls.read_text()}"
    assert spawned == [], f"a process was started: {spawned}"


def test_gradio_would_probe_a_video_it_is_given_to_show(tmp_path, monkeypatch):
    """The premise of the design: ``gr.Video``'s own output path runs ffprobe on the file (so our events skip it)."""
    import gradio as gr

    clip = write_clip(tmp_path / "clip.mp4", walking_cat(2, (320, 200))[0])
    with _watching(tmp_path, monkeypatch) as (calls, spawned):
        gr.Video().postprocess(str(clip))
    assert "ffprobe" in calls.read_text() and spawned and spawned[0][0] == "ffprobe"


def _upload(app: RunningApp, path: Path) -> dict:
    kind = "video/mp4" if path.suffix == ".mp4" else "image/png"
    with path.open("rb") as file:
        uploaded = httpx.post(app.url + "gradio_api/upload", files={"files": (path.name, file, kind)}, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    return {"path": uploaded.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def test_explain_video_answers_with_an_h264_video_as_long_as_the_clip_and_its_table(app, tmp_path, no_external_program):
    frames, _ = walking_cat(8, (320, 200))
    clip = write_clip(tmp_path / "cat.mp4", frames, fps=10)
    index = _index(app, "explain_video")
    status, answer = join(app, index, [_upload(app, clip), *INPUTS, 2, *NEWER], "api-visitor")
    assert status == 200 and answer["success"], answer
    video, table, sentence = answer["output"]["data"]
    with open_clip(Path(video["path"])) as explained:
        assert explained.info.codec == "h264" and explained.info.duration == pytest.approx(0.8, abs=1e-3)
        assert len(list(explained.frames())) == 4  # every 2nd frame, each shown until the next
    rows = Path(table["path"]).read_text().splitlines()
    assert rows[0].startswith("frame,time_s,class") and [r.split(",")[0] for r in rows[1:]] == ["0", "2", "4", "6"]
    assert "4 explained frames" in sentence or "in all 4" in sentence or "of the 4" in sentence
    served_video = httpx.get(app.url + video["url"].lstrip("/").removeprefix(app.url), timeout=30)
    assert served_video.status_code == 200 and served_video.content[4:8] == b"ftyp"


def test_the_page_streams_a_clips_frames_as_they_are_made_then_the_video(app, tmp_path, no_external_program):
    clip = write_clip(tmp_path / "cat.mp4", walking_cat(12, (320, 200))[0], fps=10)
    fn = _index(app, "explained_clip")
    body = {"data": [_upload(app, clip), *INPUTS, 1, *NEWER], "fn_index": fn, "session_hash": "clip-tab"}
    with httpx.Client(timeout=60) as http:
        assert http.post(app.url + "gradio_api/queue/join", json=body).status_code == 200
        messages = []
        with http.stream("GET", app.url + "gradio_api/queue/data", params={"session_hash": "clip-tab"}) as events:
            for line in events.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:]))
                    if messages[-1].get("msg") == "process_completed":
                        break
    assert messages[-1]["success"], messages[-1]
    updates = [m["output"]["data"] for m in messages if m.get("msg") == "process_generating"]
    assert any("Explaining the video" in str(u) for u in updates)
    final = messages[-1]["output"]["data"]
    preview, video, sentence, table = final
    assert video["path"].endswith("overlay.mp4") and table["path"].endswith("frames.csv")
    assert "12 frames" in sentence


def test_a_hostile_clip_is_refused_in_one_sentence(app, tmp_path, no_external_program):
    clip = ten_hours_of_one_frame(tmp_path / "long.mp4")
    status, answer = join(
        app, _index(app, "explain_video"), [_upload(app, clip), *INPUTS, 1, *NEWER], "hostile-visitor"
    )
    assert status == 200 and not answer["success"]
    assert (
        answer["output"]["error"]
        == "This clip lasts 10 hours; we explain clips of up to 30 seconds. Please cut it shorter."
    )
