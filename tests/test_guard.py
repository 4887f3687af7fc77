"""Request limits, input checks and log cutting, without a server: the middleware is called as an ASGI app."""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
import time

import pytest

from demo import guard
from demo.guard import InvalidInput, Limits, Listeners, RequestGuard, TruncatingFilter, TruncatingStream

# Inputs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "got nan"),
        (math.inf, "got inf"),
        (1e308, "got 1e\\+308"),
        (10**5000, "got a number with thousands of digits"),
        ("0.5", r"got 0.5 \(text\)"),
        (None, r"got None \(nothing\)"),
        (True, r"got True \(true/false\)"),
        ([0.5], r"got \[0.5\] \(a list\)"),
    ],
    ids=["nan", "inf", "huge", "huge-int", "text", "null", "bool", "list"],
)
def test_a_bad_number_gets_a_clear_message(value, message):
    with pytest.raises(InvalidInput, match=f"Box threshold must be a number from 0.05 to 0.95; {message}"):
        guard.number(value, "Box threshold", 0.05, 0.95)


def test_good_numbers_pass():
    assert guard.number(1, "x", 0, 1) == 1.0 and guard.number(0.25, "x", 0, 1) == 0.25


def test_a_long_text_is_refused_with_a_short_echo():
    with pytest.raises(InvalidInput) as info:
        guard.text("a" * 5_000_000, "Class to explain", 200)
    message = str(info.value)
    assert len(message) < 150 and "5,000,000 characters" in message and message.endswith("a…")


def test_text_defaults_and_types():
    assert guard.text(None, "Class", 10, default="Top") == "Top"
    with pytest.raises(InvalidInput, match=r"must be text; got 5 \(a whole number\)"):
        guard.text(5, "Class", 10)


def test_choice_and_colormap():
    assert guard.choice(None, "Colours", ["jet"], default="jet") == "jet"
    with pytest.raises(InvalidInput, match="must be one of: jet, viridis; got x{40}…"):
        guard.choice("x" * 5000, "Colours", ["jet", "viridis"])
    assert guard.colormap("magma") == "magma" and guard.colormap(None) == "jet"
    with pytest.raises(InvalidInput, match="colour map"):
        guard.colormap({"a": 1})


def test_a_data_url_over_the_limit_is_refused_without_decoding():
    import base64

    url = "data:image/png;base64," + base64.b64encode(bytes(1001)).decode()
    assert guard.image_data_size(url) == 1001
    assert guard.data_url(url, limit=1001) == url
    with pytest.raises(InvalidInput, match="too large"):
        guard.data_url(url, limit=1000)


# The middleware ---------------------------------------------------------------------------------


class Recorder:
    """A stand-in for Gradio: reads the whole body, answers 200 with its length (400 if reading failed)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        size = 0
        try:
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
        except Exception:  # noqa: BLE001 - like a framework failing to parse
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"parse error"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _call(middleware, path, chunks, headers=(), method="POST", client="10.0.0.1"):
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "client": (client, 1234),
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode()


LIMITS = Limits(upload_bytes=1000, files_per_upload=2, visitor_bytes_per_minute=10_000, overhead=100)


def test_a_body_over_the_limit_is_refused_from_its_length_before_the_app_runs():
    app = Recorder()
    status, body = _call(RequestGuard(app, LIMITS), "/gradio_api/queue/join", [b"x" * 10], [("content-length", "5000")])
    assert status == 413 and "too large" in body
    assert app.calls == 0


def test_a_streamed_body_over_the_limit_is_refused_while_it_arrives():
    app = Recorder()
    status, body = _call(RequestGuard(app, LIMITS), "/gradio_api/upload", [b"x" * 600, b"x" * 600, b"x" * 600])
    assert status == 413 and "too large" in body


def test_json_routes_allow_a_base64_image_of_the_limit():
    status, body = _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/queue/join", [b"x" * 1400])
    assert (status, body) == (200, "1400")


def _multipart(files: int) -> tuple[list[bytes], list[tuple[str, str]]]:
    parts = b"".join(
        b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"files\"; filename=\"f%d.png\"\r\n\r\nab\r\n" % i for i in range(files)
    ) + b"--BOUNDARY--\r\n"
    chunks = [parts[i : i + 7] for i in range(0, len(parts), 7)]  # delimiters split across chunks
    return chunks, [("content-type", "multipart/form-data; boundary=BOUNDARY")]


@pytest.mark.parametrize(("files", "status"), [(1, 200), (2, 200), (3, 413), (20, 413)])
def test_files_per_upload_are_bounded(files, status):
    chunks, headers = _multipart(files)
    assert _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/upload", chunks, headers)[0] == status


def test_bytes_per_visitor_per_minute_are_bounded_and_recover():
    now = [0.0]
    middleware = RequestGuard(Recorder(), LIMITS, clock=lambda: now[0])
    answers = [_call(middleware, "/gradio_api/upload", [b"x" * 900], [("content-length", "900")])[0] for _ in range(12)]
    assert answers[:11] == [200] * 11 and answers[11] == 429
    assert _call(middleware, "/gradio_api/upload", [b"x"], client="10.0.0.2")[0] == 200  # another visitor
    now[0] += 61
    assert _call(middleware, "/gradio_api/upload", [b"x" * 900], [("content-length", "900")])[0] == 200


def test_forwarded_addresses_count_only_behind_a_trusted_proxy():
    headers = [("content-length", "900"), ("x-forwarded-for", "1.2.3.4")]
    for trusted, expected in ((False, "10.0.0.1"), (True, "1.2.3.4")):
        middleware = RequestGuard(Recorder(), Limits(trust_forwarded=trusted))
        assert middleware._visitor({"client": ("10.0.0.1", 1)}, dict(headers)) == expected


def test_uploads_are_refused_when_the_disk_is_nearly_full(tmp_path):
    limits = Limits(upload_dir=tmp_path, min_free_disk=10**18)
    assert _call(RequestGuard(Recorder(), limits), "/gradio_api/upload", [b"x"])[0] == 503
    assert _call(RequestGuard(Recorder(), Limits(upload_dir=tmp_path)), "/gradio_api/upload", [b"x"])[0] == 200


def test_other_methods_and_paths_pass_through():
    assert _call(RequestGuard(Recorder(), LIMITS), "/config", [b""], method="GET") == (200, "0")


# Visitors who have left -------------------------------------------------------------------------


def test_an_event_stream_marks_its_visitor_present_until_they_disconnect():
    listeners = Listeners()
    seen = []

    async def stream(scope, receive, send):
        seen.append(listeners.listening("abc"))
        await receive()  # the request
        message = await receive()  # the visitor leaves
        seen.append(message["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    scope = {"type": "http", "method": "GET", "path": "/gradio_api/queue/data", "query_string": b"session_hash=abc"}
    messages = [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        pass

    asyncio.run(RequestGuard(stream, listeners=listeners)(scope, receive, send))
    assert seen == [True, "http.disconnect"]
    assert not listeners.listening("abc")


def test_a_request_is_gone_only_when_no_stream_opens_in_time():
    listeners = Listeners()
    assert listeners.gone(["s1"], until=time.monotonic())  # nobody listening, no time left
    assert not listeners.gone([], until=time.monotonic())  # not a queued request
    listeners.opened("s1")
    assert not listeners.gone(["s1", "e1"], until=time.monotonic())
    listeners.closed("s1")
    opener = threading.Timer(0.05, listeners.opened, args=("s1",))
    opener.start()
    assert not listeners.gone(["s1"], until=time.monotonic() + 60)  # the stream opens while it waits
    opener.join()


# The log ----------------------------------------------------------------------------------------


def test_long_log_messages_are_cut(caplog):
    logger = logging.getLogger("test-guard")
    logger.addFilter(TruncatingFilter(100))
    with caplog.at_level(logging.INFO, logger="test-guard"):
        logger.info("payload %s", "data:" + "A" * 100_000)
    (record,) = caplog.records
    assert len(record.getMessage()) < 200 and "more characters cut" in record.getMessage()


def test_long_lines_printed_to_stderr_are_cut():
    buffer = io.StringIO()
    stream = TruncatingStream(buffer, limit=50)
    stream.write("short\n" + "x" * 10_000 + "\nend\n")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "short" and lines[2] == "end" and len(lines[1]) < 100
