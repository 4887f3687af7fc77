"""Limits on what a stranger may send the app, enforced in front of Gradio before any work is done.

:class:`RequestGuard` is an ASGI middleware. For every request it

- answers 404 for every route the app does not use (:data:`ROUTES`): Gradio's
  recording converter (which runs ffmpeg), its monitoring dashboard, ``file=``
  with a URL (an open proxy), the streamed-media playlists (the app streams
  camera frames in, never media out), and the rest;
- refuses request bodies beyond the upload limit (HTTP 413) before they are
  parsed, from the ``Content-Length`` header or by counting the bytes as they
  stream in, and JSON bodies with more structure (objects, arrays, members) than
  any request of the app needs, whose parsing would cost hundreds of MB;
- refuses a request whose files are links (an API client or an assistant may send a
  file as a URL; Gradio would fetch it whole, with no size cap or deadline, inside
  the request), in the validation answer API clients show as it is (422);
- limits the files in one upload and the bytes one visitor sends per minute (429);
- refuses uploads when the disk is nearly full (503);
- notes which visitors still listen to the queue's event stream
  (:mod:`demo.presence`).

A visitor is a network address (:func:`visitor_address`): the connection's, or
behind a proxy that appends to ``X-Forwarded-For`` (a Hugging Face Space), the
entry that proxy wrote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import shutil
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from python_multipart.multipart import parse_options_header

from demo.presence import LISTENERS, Listeners
from demo.settings import MAX_UPLOAD_BYTES

log = logging.getLogger("demo")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_API = "/gradio_api"
#: The routes the page, the API clients and the MCP server use: (methods, path pattern). Everything else is 404.
ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods.split()), re.compile(pattern))
    for methods, pattern in (
        ("GET HEAD", r"/"),
        ("GET", r"/(config|theme\.css|favicon\.ico|manifest\.json|robots\.txt)/?"),
        ("GET", r"/(assets|static|svelte)/[^?]*"),
        ("GET", r"/pwa_icon(/\d+)?"),
        ("GET", _API + r"/(info|config|app_id|startup-events|heartbeat/[\w-]+|queue/data|upload_progress)/?"),
        ("GET", _API + r"/call/\w+/[\w-]+"),
        ("GET HEAD", _API + r"/file=(?!\w+:)[^?]*"),  # a local file Gradio may serve; never a URL
        ("POST", _API + r"/(queue/join|upload|cancel)/?"),
        ("POST", _API + r"/stream/[0-9a-f]+(/close)?/?"),  # a live camera's next frame, and its end
        ("POST", _API + r"/run/predict/?"),  # the examples' lookup (Gradio refuses every queued event there)
        ("POST", _API + r"/call/\w+/?"),
        ("GET POST DELETE", _API + r"/mcp/?(http/?)?"),
        ("GET", _API + r"/mcp/schema/?"),
    )
)
NOT_FOUND = "Not found: this app answers only the page, its upload, its queue and its API (see 'Use via API')."
TOO_LARGE = "Request too large: at most {mb} MB of image data."
TOO_COMPLEX = "Request refused: it holds far more fields than any request of this app."
TOO_MANY_FILES = "Too many files in one upload: at most {most}."
TOO_FAST = "You are sending a lot right now. Please wait a minute and try again."
BUSY = "The app is busy right now. Please try again in a few minutes."
NOT_JSON = "This request could not be read as JSON: the page and the API send their events as JSON objects."
NOT_AN_EVENT = (
    "This request is not an event of this page: see 'Use via API' at the bottom of the page for what the API takes."
)
NO_LINKS = (
    "This app does not fetch links. Please send the photo itself: upload the file, or give it as a base64 data: URL."
)
#: The routes whose JSON body holds an event's inputs, files among them (a live camera's frames too).
_EVENT_BODY = re.compile(_API + r"/(queue/join|call/\w+|stream/[0-9a-f]+)/?")


def route_allowed(method: str, path: str) -> bool:
    """Whether the app answers ``method`` on ``path`` (see :data:`ROUTES`)."""
    path = unquote(path)
    return any(method in methods and pattern.fullmatch(path) for methods, pattern in ROUTES)


def visitor_address(headers: Mapping[str, str], client: str | None, proxy_hops: int = 0) -> str:
    """The visitor's network address.

    Args:
        headers: the request's headers, names in lower case.
        client: the connection's peer address.
        proxy_hops: how many proxies in front of the app append to ``X-Forwarded-For``.
            With one (a Hugging Face Space), the last entry is the address that proxy saw;
            entries before it are whatever the client wrote and are ignored. With none,
            the header is ignored: anyone could write it.
    """
    if proxy_hops > 0:
        entries = [e.strip() for e in headers.get("x-forwarded-for", "").split(",") if e.strip()]
        if len(entries) >= proxy_hops:
            return entries[-proxy_hops]
    return client or "unknown"


@dataclass(frozen=True)
class Limits:
    """What one request and one visitor may send.

    Attributes:
        upload_bytes: largest image, in any encoding.
        files_per_upload: files in one upload request.
        visitor_bytes_per_minute: bytes one visitor (network address) may send in a minute.
        min_free_disk: uploads are refused when less disk than this is free (bytes).
        upload_dir: the folder whose free disk is checked (None: not checked).
        proxy_hops: proxies in front of the app that append to ``X-Forwarded-For`` (see :func:`visitor_address`).
        overhead: allowance for multipart and JSON framing (bytes).
        json_structure: most ``{``, ``[``, ``,`` and ``:`` a JSON body may hold (a request of the app has
            fewer than a hundred; a base64 image inside a string has none).
    """

    upload_bytes: int = MAX_UPLOAD_BYTES
    files_per_upload: int = 2
    visitor_bytes_per_minute: int = 60 * 1024 * 1024
    min_free_disk: int = 512 * 1024 * 1024
    upload_dir: Path | None = None
    proxy_hops: int = 0
    overhead: int = 64 * 1024
    json_structure: int = 5_000

    def body_limit(self, path: str) -> int:
        """Largest body accepted on ``path``: an image plus framing, base64-encoded outside uploads."""
        if path.rstrip("/").endswith("/upload"):
            return self.upload_bytes + self.overhead
        return math.ceil(self.upload_bytes / 3) * 4 + self.overhead

    def visitor(self, headers: Mapping[str, str], client: str | None) -> str:
        """The visitor's address under these limits (see :func:`visitor_address`)."""
        return visitor_address(headers, client, self.proxy_hops)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestGuard:
    """ASGI middleware: known routes only; bounded bodies, JSON, files, bytes per visitor, free disk; listeners.

    Args:
        app: the application behind it (Gradio's).
        limits: the bounds.
        listeners: where open event streams are recorded.
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: Limits | None = None,
        listeners: Listeners = LISTENERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.listeners = listeners
        self._clock = clock
        self._sent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.refused: dict[int, int] = defaultdict(int)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        if scope["type"] != "http" or not route_allowed(method, path):
            self.refused[404] += 1
            log.info("no such route: %s %s", method, path[:120])
            if scope["type"] == "http":
                await _plain(send, 404, NOT_FOUND)
            return
        stream = _stream_key(path, scope.get("query_string", b""))
        if method == "GET" and stream:
            await self._listen(stream, scope, receive, send)
            return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        await self._bounded(scope, receive, send, path)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client")
        visitor = self.limits.visitor(headers, str(client[0]) if client else None)
        limit = self.limits.body_limit(path)
        upload = path.rstrip("/").endswith("/upload")
        json_body = "json" in headers.get("content-type", "")
        started = False
        refusal: _Refused | None = None

        async def tracked_send(message: Message) -> None:
            # Once a limit is hit, the app's own answer (it sees a broken body) is replaced by ours.
            nonlocal started
            if refusal is not None:
                if not started:
                    started = True
                    await _plain(send, refusal.status, refusal.message)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        def refuse(status: int, message: str) -> _Refused:
            nonlocal refusal
            refusal = _Refused(status, message)
            self.refused[status] += 1
            log.warning("refused a request to %s: %s", path[:80], message)
            return refusal

        too_large = TOO_LARGE.format(mb=self.limits.upload_bytes // 1024 // 1024)
        try:
            length = int(headers["content-length"]) if "content-length" in headers else None
        except ValueError:
            length = None
        try:
            if length is not None and length > limit:
                raise refuse(413, too_large)
            if length is not None:
                self._count(visitor, length)
            if upload:
                self._check_disk(length or 0)
            parts = _PartCounter(headers.get("content-type", ""), self.limits.files_per_upload) if upload else None
            received = structure = 0

            async def bounded_receive() -> Message:
                nonlocal received, structure
                message = await receive()
                if message["type"] == "http.request":
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > limit:
                        raise refuse(413, too_large)
                    if length is None:
                        try:
                            self._count(visitor, len(chunk))
                        except _Refused as refused:
                            raise refuse(refused.status, refused.message) from None
                    if parts is not None and parts.feed(chunk):
                        raise refuse(413, TOO_MANY_FILES.format(most=self.limits.files_per_upload))
                    if json_body:
                        structure += sum(chunk.count(c) for c in (b"{", b"[", b",", b":"))
                        if structure > self.limits.json_structure:
                            raise refuse(413, TOO_COMPLEX)
                return message

            if _EVENT_BODY.fullmatch(path):
                body = await _whole_body(bounded_receive)
                problem = _event_problem(body, joins=path.rstrip("/").endswith("/queue/join"))
                if problem == NO_LINKS:
                    self.refused[422] += 1
                    await _validation_error(send, NO_LINKS)
                    return
                if problem is not None:
                    self.refused[400] += 1
                    await _plain(send, 400, problem)
                    return
                await self.app(scope, _replay(body), tracked_send)
            else:
                await self.app(scope, bounded_receive, tracked_send)
        except _Refused as refused:
            if refusal is None:  # raised before the app ran
                refuse(refused.status, refused.message)
            await tracked_send({"type": "http.response.start"})

    async def _listen(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Passes an event stream through, noting when it opens and when its visitor leaves."""
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        left = False

        async def pump() -> None:
            nonlocal left
            while True:
                message = await receive()
                await inbox.put(message)
                if message["type"] == "http.disconnect":
                    if not left:
                        left = True
                        self.listeners.closed(key)
                    return

        self.listeners.opened(key)
        task = asyncio.ensure_future(pump())
        try:
            await self.app(scope, inbox.get, send)
        finally:
            task.cancel()
            if not left:
                left = True
                self.listeners.closed(key)

    def _count(self, visitor: str, size: int) -> None:
        now = self._clock()
        with self._lock:
            sent = self._sent[visitor]
            while sent and sent[0][0] < now - 60:
                sent.popleft()
            if sum(n for _, n in sent) + size > self.limits.visitor_bytes_per_minute:
                raise _Refused(429, TOO_FAST)
            sent.append((now, size))
            if len(self._sent) > 10_000:
                for quiet in [v for v, s in self._sent.items() if not s or s[-1][0] < now - 60]:
                    del self._sent[quiet]

    def _check_disk(self, size: int) -> None:
        folder = self.limits.upload_dir
        if folder is None:
            return
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return
        if free - size < self.limits.min_free_disk:
            raise _Refused(503, BUSY)


class _PartCounter:
    """Counts the parts of a multipart body as it streams in; says when there are more than ``most``.

    The boundary is read from the ``Content-Type`` header by the parser the server itself uses
    (python-multipart's, as Starlette), so a header the server understands cannot hide its parts.
    """

    def __init__(self, content_type: str, most: int) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary", b"")
        self.delimiter = b"--" + boundary if boundary else b""
        self.most = most
        self.count = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> bool:
        if not self.delimiter:
            return False
        data = self._tail + chunk
        self.count += data.count(self.delimiter)
        # keep a tail that might hold the start of a delimiter split across chunks
        self._tail = data[-(len(self.delimiter) - 1) :] if len(self.delimiter) > 1 else b""
        return self.count - 1 > self.most  # the last delimiter closes the body


async def _whole_body(receive: Receive) -> bytes:
    """The request body, read to its end (each chunk through the bounds of ``receive``)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the app a body already read, then waits for the disconnect as a server does."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the app only asks again to learn that the client left
        return {"type": "http.disconnect"}

    return receive


def _event_problem(body: bytes, *, joins: bool) -> str | None:
    """What is wrong with an event's body, in a sentence, or None.

    It must be a JSON object (for the queue, with the event's number and its list of values), and send
    no file as a link: a file payload whose ``path``, or whose ``url`` when it has no path, is an http(s)
    address (then :data:`NO_LINKS`).
    """
    try:
        data = json.loads(body)
    except ValueError:
        return NOT_JSON
    if not isinstance(data, dict) or not isinstance(data.get("data", []), list):
        return NOT_AN_EVENT
    if joins and (not isinstance(data.get("fn_index"), int) or not isinstance(data.get("session_hash"), str)):
        return NOT_AN_EVENT
    return NO_LINKS if _has_link(data) else None


def _has_link(data: object) -> bool:
    """Whether a parsed event body sends a file as a link (see :func:`_event_problem`)."""

    def link(text: object) -> bool:
        return isinstance(text, str) and text.strip().lower().startswith(("http://", "https://", "//"))

    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item or "url" in item:
                if link(item.get("path")) or (not item.get("path") and link(item.get("url"))):
                    return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def _validation_error(send: Send, message: str) -> None:
    """A 422 answer in Gradio's validation format: API clients and assistants show ``message`` as it is."""
    detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": "image"}]
    body = json.dumps({"detail": detail, "error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _stream_key(path: str, query: bytes) -> str:
    """The session an event-stream request listens for: ``queue/data?session_hash=`` or ``call/<api>/<event id>``."""
    if path.endswith("/queue/data"):
        values = parse_qs(query.decode("latin-1")).get("session_hash", [""])
        return values[0]
    parts = path.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "call":
        return parts[-1]
    return ""


async def _plain(send: Send, status: int, message: str) -> None:
    """The refusal as Gradio answers its own: JSON whose ``detail`` (and ``error``) the page shows as it is."""
    body = json.dumps({"detail": message, "error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
