"""The request guard without a server: the middleware is called as an ASGI app in front of a stand-in."""

from __future__ import annotations

import asyncio
import json

import pytest

from demo.limits import NOT_FOUND, Limits, RequestGuard, route_allowed, visitor_address


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
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"parse error"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _call(middleware, path, chunks, headers=(), method="POST", client="10.0.0.1"):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "client": (client, 1234),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
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
#: A queued event's id, as Gradio makes them (a live camera's frames go to /gradio_api/stream/<id>).
EVENT = "895dc38d1a104785ae1e5f2de21c7921"
JSON = [("content-type", "application/json")]


# Routes -----------------------------------------------------------------------------------------

USED = [
    ("GET", "/"),
    ("GET", "/config"),
    ("GET", "/theme.css"),
    ("GET", "/assets/index-abc.js"),
    ("GET", "/favicon.ico"),
    ("GET", "/gradio_api/info"),
    ("GET", "/gradio_api/queue/data"),
    ("GET", "/gradio_api/heartbeat/abc123"),
    ("GET", "/gradio_api/file=/tmp/gradio/abc/photo.png"),
    ("GET", "/gradio_api/call/explain/0af3"),
    ("POST", "/gradio_api/queue/join"),
    ("POST", "/gradio_api/upload"),
    ("POST", "/gradio_api/call/explain"),
    ("POST", "/gradio_api/mcp/"),
    ("GET", "/gradio_api/mcp/schema"),
    ("POST", "/gradio_api/run/predict"),
    ("POST", f"/gradio_api/stream/{EVENT}"),  # a live camera's next frame
    ("POST", f"/gradio_api/stream/{EVENT}/close"),  # the camera stopped
]
UNUSED = [
    ("POST", "/gradio_api/process_recording"),  # runs ffmpeg on any upload
    ("GET", "/monitoring"),
    ("GET", "/monitoring/summary"),
    ("GET", "/monitoring/abc"),
    ("GET", "/gradio_api/file=https://example.com/big.bin"),  # an open proxy
    ("GET", "/gradio_api/file=http%3A//example.com/x"),
    ("GET", "/gradio_api/proxy=https://example.com/"),
    ("POST", "/gradio_api/vibe-edit"),
    ("POST", "/gradio_api/run/explain"),
    ("POST", "/gradio_api/api/explain"),
    ("GET", "/gradio_api/runs"),
    ("POST", "/login"),
    ("GET", "/gradio_api/dev/reload"),
    ("GET", "/wp-admin.php"),
    ("PUT", "/gradio_api/upload"),
    ("GET", "/gradio_api/stream/abc/1/2/playlist.m3u8"),
    ("GET", f"/gradio_api/stream/{EVENT}/0/7/segment-1.ts"),  # streamed media out: the app sends none
    ("GET", f"/gradio_api/stream/{EVENT}"),
    ("POST", "/gradio_api/stream/not-an-event/close"),
    ("POST", f"/gradio_api/stream/{EVENT}/../../upload"),
]


@pytest.mark.parametrize(("method", "path"), USED, ids=[f"{m} {p}" for m, p in USED])
def test_the_routes_the_app_uses_are_served(method, path):
    assert route_allowed(method, path)


@pytest.mark.parametrize(("method", "path"), UNUSED, ids=[f"{m} {p}" for m, p in UNUSED])
def test_every_other_route_is_not_found_in_a_sentence_before_gradio_sees_it(method, path):
    app = Recorder()
    status, body = _call(RequestGuard(app, LIMITS), path, [b""], method=method)
    assert (status, json.loads(body)["detail"]) == (404, NOT_FOUND) and app.calls == 0


def test_a_websocket_is_refused():
    closed = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        closed.append(message)

    app = Recorder()
    asyncio.run(RequestGuard(app, LIMITS)({"type": "websocket", "path": "/gradio_api/queue/join"}, receive, send))
    assert app.calls == 0


# Bodies -----------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_from_its_length_before_the_app_runs():
    app = Recorder()
    status, body = _call(RequestGuard(app, LIMITS), "/gradio_api/queue/join", [b"x" * 10], [("content-length", "5000")])
    assert status == 413 and "too large" in body
    assert app.calls == 0


def test_a_streamed_body_over_the_limit_is_refused_while_it_arrives():
    status, body = _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/upload", [b"x" * 600, b"x" * 600, b"x" * 600])
    assert status == 413 and "too large" in body


def test_json_routes_allow_a_base64_image_of_the_limit():
    body = json.dumps(
        {"data": [{"url": "data:image/png;base64," + "A" * 1300}], "fn_index": 3, "session_hash": "a"}
    ).encode()
    status, answer = _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/queue/join", [body], JSON)
    assert (status, answer) == (200, str(len(body)))


def test_a_json_body_of_many_small_objects_is_refused_before_it_is_parsed():
    # 12 MB of {"a":1} cost about 550 MB while parsed; a request of the app has fewer than a hundred members.
    limits = Limits(upload_bytes=10 * 1024 * 1024)
    body = b"[" + b",".join([b'{"a":1}'] * 20_000) + b"]"
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    status, answer = _call(RequestGuard(Recorder(), limits), "/gradio_api/queue/join", chunks, JSON)
    assert status == 413 and "far more fields" in answer
    page_request = json.dumps(
        {
            "data": [
                {"path": "/tmp/x.png", "meta": {"_type": "gradio.FileData"}},
                "Top prediction",
                "VGG19",
                0.15,
                0.5,
                "jet",
            ],
            "fn_index": 8,
            "session_hash": "abc",
            "trigger_id": 12,
        }
    )
    assert _call(RequestGuard(Recorder(), limits), "/gradio_api/queue/join", [page_request.encode()], JSON)[0] == 200


def _multipart(
    files: int, content_type: str = "multipart/form-data; boundary=BOUNDARY"
) -> tuple[list[bytes], list[tuple[str, str]]]:
    parts = (
        b"".join(
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="files"; filename="f%d.png"\r\n\r\nab\r\n' % i
            for i in range(files)
        )
        + b"--BOUNDARY--\r\n"
    )
    chunks = [parts[i : i + 7] for i in range(0, len(parts), 7)]  # delimiters split across chunks
    return chunks, [("content-type", content_type)]


@pytest.mark.parametrize(("files", "status"), [(1, 200), (2, 200), (3, 413), (20, 413)])
def test_files_per_upload_are_bounded(files, status):
    chunks, headers = _multipart(files)
    assert _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/upload", chunks, headers)[0] == status


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary = BOUNDARY",
        'multipart/form-data; BOUNDARY="BOUNDARY"',
        "multipart/form-data;boundary=BOUNDARY;x=1",
    ],
    ids=["spaces", "quoted-upper", "no-space"],
)
def test_the_boundary_is_read_as_the_server_reads_it(content_type):
    chunks, headers = _multipart(200, content_type)
    assert _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/upload", chunks, headers)[0] == 413


# Visitors ---------------------------------------------------------------------------------------


def test_bytes_per_visitor_per_minute_are_bounded_and_recover():
    now = [0.0]
    middleware = RequestGuard(Recorder(), LIMITS, clock=lambda: now[0])
    answers = [_call(middleware, "/gradio_api/upload", [b"x" * 900], [("content-length", "900")])[0] for _ in range(12)]
    assert answers[:11] == [200] * 11 and answers[11] == 429
    assert _call(middleware, "/gradio_api/upload", [b"x"], client="10.0.0.2")[0] == 200  # another visitor
    now[0] += 61
    assert _call(middleware, "/gradio_api/upload", [b"x" * 900], [("content-length", "900")])[0] == 200


def test_the_visitor_is_the_address_the_proxy_wrote_never_one_the_client_wrote():
    forged = {
        "x-forwarded-for": "6.6.6.6, 7.7.7.7, 1.2.3.4"
    }  # the client wrote the first two; the proxy appended the last
    assert visitor_address(forged, "10.0.0.1", proxy_hops=0) == "10.0.0.1"  # no proxy: the header is anyone's
    assert visitor_address(forged, "10.0.0.1", proxy_hops=1) == "1.2.3.4"
    assert visitor_address({"x-forwarded-for": "9.9.9.9, 5.5.5.5, 1.2.3.4"}, "10.0.0.1", proxy_hops=2) == "5.5.5.5"
    assert visitor_address({}, "10.0.0.1", proxy_hops=1) == "10.0.0.1"


def test_a_new_forged_address_per_request_does_not_buy_a_new_budget():
    middleware = RequestGuard(
        Recorder(), Limits(upload_bytes=1000, visitor_bytes_per_minute=10_000, proxy_hops=1), clock=lambda: 0.0
    )
    answers = [
        _call(
            middleware,
            "/gradio_api/upload",
            [b"x" * 900],
            [("content-length", "900"), ("x-forwarded-for", f"6.6.6.{i}, 1.2.3.4")],
        )[0]
        for i in range(12)
    ]
    assert answers[11] == 429


def test_uploads_are_refused_when_the_disk_is_nearly_full(tmp_path):
    limits = Limits(upload_dir=tmp_path, min_free_disk=10**18)
    assert _call(RequestGuard(Recorder(), limits), "/gradio_api/upload", [b"x"])[0] == 503
    assert _call(RequestGuard(Recorder(), Limits(upload_dir=tmp_path)), "/gradio_api/upload", [b"x"])[0] == 200


def test_pages_pass_through():
    assert _call(RequestGuard(Recorder(), LIMITS), "/config", [b""], method="GET") == (200, "0")


# A live camera's frames ---------------------------------------------------------------------------


def _frame(payload: str) -> bytes:
    """A frame as the page sends it: the event's inputs, the camera's picture first."""
    picture = {"path": None, "url": payload, "meta": {"_type": "gradio.FileData"}}
    return json.dumps({"data": [picture, "Top prediction", "VGG19", 0.15, 0.5, "jet"], "fn_index": 4}).encode()


def test_a_frame_within_the_limits_reaches_the_app():
    body = _frame("data:image/jpeg;base64," + "A" * 1200)
    assert _call(RequestGuard(Recorder(), LIMITS), f"/gradio_api/stream/{EVENT}", [body], JSON) == (200, str(len(body)))


def test_a_frame_beyond_the_upload_limit_is_refused_before_the_app_runs():
    app = Recorder()
    body = _frame("data:image/jpeg;base64," + "A" * 5000)
    status, answer = _call(RequestGuard(app, LIMITS), f"/gradio_api/stream/{EVENT}", [body], JSON)
    assert status == 413 and "too large" in answer and app.calls == 0


def test_a_frame_that_is_a_link_is_refused_in_words():
    app = Recorder()
    link = {"path": "https://example.com/huge.jpg", "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [link, "Top prediction"], "fn_index": 4}).encode()
    status, answer = _call(RequestGuard(app, LIMITS), f"/gradio_api/stream/{EVENT}", [body], JSON)
    assert status == 422 and "does not fetch links" in answer and app.calls == 0


def test_frames_count_towards_the_visitors_bytes_per_minute():
    middleware = RequestGuard(Recorder(), LIMITS, clock=lambda: 0.0)
    body = _frame("data:image/jpeg;base64," + "A" * 700)
    headers = [*JSON, ("content-length", str(len(body)))]
    answers = [_call(middleware, f"/gradio_api/stream/{EVENT}", [body], headers)[0] for _ in range(14)]
    assert 200 in answers and answers[-1] == 429


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (b"not json", "This request could not be read as JSON"),
        (b'{"data": 5, "fn_index": 1, "session_hash": "a"}', "This request is not an event of this page"),
        (b'{"data": [], "fn_index": "a", "session_hash": "a"}', "This request is not an event of this page"),
        (b'{"data": [], "session_hash": "a"}', "This request is not an event of this page"),
        (b"[1, 2, 3]", "This request is not an event of this page"),
    ],
    ids=["not-json", "data-not-a-list", "index-not-a-number", "no-index", "not-an-object"],
)
def test_a_body_that_is_no_event_is_answered_in_a_sentence_before_the_app_parses_it(body, sentence):
    app = Recorder()
    status, answer = _call(RequestGuard(app, LIMITS), "/gradio_api/queue/join", [body], JSON)
    assert status == 400 and json.loads(answer)["detail"].startswith(sentence) and app.calls == 0


def test_a_file_sent_as_a_link_is_refused_in_the_validation_answer_clients_show():
    link = {"path": "https://huggingface.co/x/cat.png", "meta": {"_type": "gradio.FileData"}}
    body = json.dumps({"data": [link, "Top prediction"], "fn_index": 3, "session_hash": "a"}).encode()
    app = Recorder()
    status, answer = _call(RequestGuard(app, LIMITS), "/gradio_api/queue/join", [body], JSON)
    (detail,) = json.loads(answer)["detail"]
    assert status == 422 and detail["message"].startswith("This app does not fetch links") and app.calls == 0
    uploaded = {
        "path": "/tmp/gradio/abc/cat.png",
        "url": "http://127.0.0.1:7860/gradio_api/file=/tmp/gradio/abc/cat.png",
    }
    body = json.dumps({"data": [uploaded], "fn_index": 3, "session_hash": "a"}).encode()
    assert _call(RequestGuard(Recorder(), LIMITS), "/gradio_api/queue/join", [body], JSON)[0] == 200  # an upload
