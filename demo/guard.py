"""Limits on what a visitor may send the app, and checks on every value they send.

A public Space is used by strangers, so every request is bounded before any work
is done:

- :class:`RequestGuard`, an ASGI middleware in front of Gradio, refuses request
  bodies beyond the upload limit (HTTP 413) before they are parsed, from the
  ``Content-Length`` header or by counting the bytes as they stream in; limits
  the files in one upload and the bytes one visitor sends per minute (429);
  refuses uploads when the disk is nearly full (503); and notes which visitors
  still listen to the queue's event stream, so that :func:`drop_if_gone` can skip
  a request whose visitor has left before the model runs for it.
- :func:`number`, :func:`text` and :func:`choice` check one input each and raise
  :class:`InvalidInput` with a message for the person, echoing what they sent
  cut to a readable length; :func:`checked` puts such a check in front of a
  Gradio component, so the page and API callers get the same message.
- :class:`TruncatingFilter` keeps what a visitor sent out of the log, beyond a
  short prefix.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import shutil
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import parse_qs

from gradcam import GradCAMError
from gradcam.config import COLORMAP

from demo.settings import MAX_UPLOAD_BYTES

log = logging.getLogger("demo")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")

#: How many characters of a visitor's input are echoed in a message.
ECHO = 40
#: How long a log message may be before it is cut.
LOG_LIMIT = 2000


class InvalidInput(GradCAMError, ValueError):
    """A value the app cannot use, with a message for the person who sent it."""


# Inputs -----------------------------------------------------------------------------------------


def shorten(value: object, limit: int = ECHO) -> str:
    """``value`` as the person wrote it, cut to ``limit`` characters with "…" when longer."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        shown = f"a number with {len(str(abs(value))) if abs(value) < 10**4000 else 'thousands of'} digits"
        return shown
    shown = value if isinstance(value, str) else repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def number(value: object, name: str, low: float, high: float) -> float:
    """A finite number between ``low`` and ``high`` (inclusive).

    Args:
        value: what was sent: an int or a float (not a bool, not a string).
        name: what the number is, as the page calls it ("Box threshold").
        low: the smallest value allowed.
        high: the largest value allowed.

    Returns:
        The value as a float.

    Raises:
        InvalidInput: for another type, NaN, infinity or a value out of range.
    """
    expected = f"{name} must be a number from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{expected}; got {shorten(value)} ({_kind(value)}).")
    if isinstance(value, int) and not low <= value <= high:  # a huge int would overflow a float
        raise InvalidInput(f"{expected}; got {shorten(value)}.")
    result = float(value)
    if not math.isfinite(result) or not low <= result <= high:
        raise InvalidInput(f"{expected}; got {shorten(value)}.")
    return result


def text(value: object, name: str, max_len: int, *, default: str | None = None) -> str:
    """A string of at most ``max_len`` characters; ``None`` becomes ``default`` when one is given.

    Raises:
        InvalidInput: for another type, or a longer string.
    """
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text; got {shorten(value)} ({_kind(value)}).")
    if len(value) > max_len:
        raise InvalidInput(f"{name} is too long ({len(value):,} characters; at most {max_len}): {shorten(value)}")
    return value


def choice(value: object, name: str, options: Iterable[str], *, default: str | None = None) -> str:
    """One of ``options``; ``None`` becomes ``default`` when one is given.

    Raises:
        InvalidInput: for anything else, naming the options.
    """
    allowed = list(options)
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value in allowed:
        return value
    shown = ", ".join(allowed[:8]) + (", …" if len(allowed) > 8 else "")
    raise InvalidInput(f"{name} must be one of: {shown}; got {shorten(value)}.")


def colormap(value: object, default: str = COLORMAP) -> str:
    """The name of a matplotlib colour map; ``None`` becomes ``default``.

    Raises:
        InvalidInput: for anything else.
    """
    import matplotlib

    if value is None:
        return default
    if isinstance(value, str) and len(value) <= ECHO and value in matplotlib.colormaps:
        return value
    raise InvalidInput(f"Colours must be the name of a colour map such as {default!r} or 'viridis'; got {shorten(value)}.")


def image_data_size(value: str) -> int:
    """The decoded size in bytes of a base64 ``data:`` URL, without decoding it."""
    payload = value.split(",", 1)[1] if "," in value else ""
    return len(payload) * 3 // 4 - payload[-2:].count("=")


def data_url(value: str, limit: int = MAX_UPLOAD_BYTES) -> str:
    """A ``data:`` URL whose image is at most ``limit`` bytes.

    Raises:
        InvalidInput: when it is larger.
    """
    if image_data_size(value) > limit:
        raise InvalidInput(f"The image is too large: at most {limit // 1024 // 1024} MB, please.")
    return value


def _kind(value: object) -> str:
    names = {type(None): "nothing", bool: "true/false", int: "a whole number", float: "a number", str: "text",
             list: "a list", dict: "an object"}
    return names.get(type(value), "something else")


def checked(component: T, check: Callable[[Any], Any]) -> T:
    """Runs ``check`` on what a Gradio component receives before the component's own processing.

    An :class:`InvalidInput` becomes a ``gr.Error`` with its message: the page shows
    it, API callers receive it, and no traceback is logged.

    Args:
        component: a Gradio input component.
        check: takes the raw value sent and returns the value to process.

    Returns:
        The same component.
    """
    import gradio as gr

    original = component.preprocess  # type: ignore[attr-defined]

    def preprocess(payload: Any) -> Any:
        try:
            value = check(payload)
        except InvalidInput as exc:
            raise gr.Error(str(exc), title="Please check your settings", print_exception=False) from exc
        return original(value)

    component.preprocess = preprocess  # type: ignore[attr-defined]
    return component


# Visitors who have left -------------------------------------------------------------------------


class Listeners:
    """Which sessions have the queue's event stream open: the visitors still waiting for answers.

    The middleware calls :meth:`opened` and :meth:`closed`; request handlers ask
    :meth:`gone` before running the model. Clients join the queue first and open
    the stream after, and close it whenever nothing of theirs is pending, so a
    request is only known to be abandoned when no stream is open for it some
    time after it joined.
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = defaultdict(int)
        self._changed = threading.Condition()
        self.dropped = 0

    def opened(self, key: str) -> None:
        with self._changed:
            self._open[key] += 1
            self._changed.notify_all()

    def closed(self, key: str) -> None:
        with self._changed:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
            self._changed.notify_all()

    def listening(self, *keys: str) -> bool:
        """Whether a stream is open now for any of ``keys``."""
        with self._changed:
            return any(self._open.get(k, 0) > 0 for k in keys)

    def gone(self, keys: Iterable[str], until: float) -> bool:
        """Whether nobody waits for a request made under ``keys`` (session hash, event id).

        Waits until ``until`` (``time.monotonic()`` seconds) for a stream to open.
        """
        keys = [k for k in keys if k]
        if not keys:
            return False  # not a queued request: nothing to tell
        with self._changed:
            while not any(self._open.get(k, 0) > 0 for k in keys):
                left = until - time.monotonic()
                if left <= 0:
                    return True
                self._changed.wait(left)
            return False


#: The listeners of this process: one server per process serves the app.
LISTENERS = Listeners()
#: Seconds after joining the queue within which a visitor must be listening for the answer.
GRACE = 3.0


def drop_if_gone(listeners: Listeners = LISTENERS, grace: float = GRACE) -> None:
    """Raises when the visitor who queued the running request has left; call first in a handler.

    Raises:
        gradio.Error: with a short message nobody will read, to skip the work.
    """
    import gradio as gr
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    event_id = LocalContext.event_id.get(None)
    if request is None or event_id is None:
        return  # called outside a queued request (cached examples, tests)
    joined = time.monotonic()
    blocks = LocalContext.blocks.get(None)
    queue = getattr(blocks, "_queue", None)
    event = getattr(queue, "event_ids_to_events", {}).get(event_id)
    if event is not None and isinstance(getattr(event, "enqueue_time", None), float):
        joined = min(joined, event.enqueue_time)  # time.monotonic() when it joined
    keys = [getattr(request, "session_hash", None) or "", event_id]
    if listeners.gone(keys, joined + grace):
        listeners.dropped += 1
        log.info("dropped a queued request: its visitor has left")
        raise gr.Error("You left before this request ran.", print_exception=False)


# Requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one request and one visitor may send.

    Attributes:
        upload_bytes: largest image, in any encoding.
        files_per_upload: files in one upload request.
        visitor_bytes_per_minute: bytes one visitor (client address) may send in a minute.
        min_free_disk: uploads are refused when less disk than this is free (bytes).
        upload_dir: the folder whose free disk is checked (None: not checked).
        trust_forwarded: take the visitor's address from ``X-Forwarded-For`` (behind
            Hugging Face's proxy; anywhere else a visitor could forge it).
        overhead: allowance for multipart and JSON framing (bytes).
    """

    upload_bytes: int = MAX_UPLOAD_BYTES
    files_per_upload: int = 2
    visitor_bytes_per_minute: int = 60 * 1024 * 1024
    min_free_disk: int = 512 * 1024 * 1024
    upload_dir: Path | None = None
    trust_forwarded: bool = False
    overhead: int = 64 * 1024

    def body_limit(self, path: str) -> int:
        """Largest body accepted on ``path``: an image plus framing, base64-encoded outside uploads."""
        if path.endswith("/upload"):
            return self.upload_bytes + self.overhead
        return math.ceil(self.upload_bytes / 3) * 4 + self.overhead


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestGuard:
    """ASGI middleware: bounded request bodies, files, bytes per visitor, free disk; event-stream listeners.

    Args:
        app: the application behind it (Gradio's).
        limits: the bounds.
        listeners: where open event streams are recorded.
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self, app: ASGIApp, limits: Limits | None = None, listeners: Listeners = LISTENERS,
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
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
        visitor = self._visitor(scope, headers)
        limit = self.limits.body_limit(path)
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

        try:
            length = int(headers["content-length"]) if "content-length" in headers else None
        except ValueError:
            length = None
        try:
            if length is not None and length > limit:
                raise refuse(413, f"Request too large: at most {self.limits.upload_bytes // 1024 // 1024} MB of image data.")
            if length is not None:
                self._count(visitor, length)
            if path.endswith("/upload"):
                self._check_disk(length or 0)
            parts = _PartCounter(headers.get("content-type", ""), self.limits.files_per_upload) if path.endswith("/upload") else None
            received = 0

            async def bounded_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > limit:
                        raise refuse(413, f"Request too large: at most {self.limits.upload_bytes // 1024 // 1024} MB of image data.")
                    if length is None:
                        try:
                            self._count(visitor, len(chunk))
                        except _Refused as refused:
                            raise refuse(refused.status, refused.message) from None
                    if parts is not None and parts.feed(chunk):
                        raise refuse(413, f"Too many files in one upload: at most {self.limits.files_per_upload}.")
                return message

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

    def _visitor(self, scope: Scope, headers: dict[str, str]) -> str:
        if self.limits.trust_forwarded and headers.get("x-forwarded-for"):
            return headers["x-forwarded-for"].split(",")[0].strip()
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def _count(self, visitor: str, size: int) -> None:
        now = self._clock()
        with self._lock:
            sent = self._sent[visitor]
            while sent and sent[0][0] < now - 60:
                sent.popleft()
            if sum(n for _, n in sent) + size > self.limits.visitor_bytes_per_minute:
                raise _Refused(429, "You are sending a lot right now. Please wait a minute and try again.")
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
            raise _Refused(503, "The app is busy right now. Please try again in a few minutes.")


class _PartCounter:
    """Counts the parts of a multipart body as it streams in; says when there are more than ``most``."""

    def __init__(self, content_type: str, most: int) -> None:
        boundary = ""
        for item in content_type.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            if key.lower() == "boundary":
                boundary = value.strip('"')
        self.delimiter = b"--" + boundary.encode("latin-1") if boundary else b""
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
    body = message.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})


# The log ----------------------------------------------------------------------------------------


class TruncatingFilter(logging.Filter):
    """Cuts long log messages, so that what a visitor sent never reaches the log whole.

    Args:
        limit: the most characters of a message kept.
    """

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > self.limit:
            record.msg = f"{message[: self.limit]}… [{len(message) - self.limit:,} more characters cut]"
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text_ = str(record.exc_info[1])
            if len(text_) > self.limit:
                # the traceback's last line repeats the exception's text: keep the type and a short message
                kind = type(record.exc_info[1])
                record.exc_info = (kind, kind(text_[: self.limit] + "…") if _rebuildable(kind) else None, record.exc_info[2])  # type: ignore[assignment]
        return True


def _rebuildable(kind: type[BaseException]) -> bool:
    try:
        kind("x")
    except Exception:  # noqa: BLE001 - some exceptions need more arguments
        return False
    return True


class TruncatingStream(io.TextIOBase):
    """A text stream that cuts every line longer than ``limit`` characters (Gradio prints some errors itself).

    Args:
        stream: the stream written to (``sys.stderr``).
        limit: the most characters of a line kept.
    """

    def __init__(self, stream: TextIO, limit: int = LOG_LIMIT) -> None:
        super().__init__()
        self.stream = stream
        self.limit = limit

    def write(self, text_: str) -> int:
        if len(text_) > self.limit:
            lines = text_.split("\n")
            text_ = "\n".join(
                line if len(line) <= self.limit else f"{line[: self.limit]}… [{len(line) - self.limit:,} more characters cut]"
                for line in lines
            )
        self.stream.write(text_)
        return len(text_)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def install_log_filter(limit: int = LOG_LIMIT, names: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "gradio", "httpx")) -> TruncatingFilter:
    """Keeps long messages out of the log: cuts lines written to ``sys.stderr`` and ``sys.stdout``, and adds a
    :class:`TruncatingFilter` to the named loggers and their handlers (the root logger's by default).

    Call once at start-up.

    Returns:
        The filter (added once per handler).
    """
    for name in ("stderr", "stdout"):
        stream = getattr(sys, name)
        if not isinstance(stream, TruncatingStream):
            setattr(sys, name, TruncatingStream(stream, limit))
    found = TruncatingFilter(limit)
    for name in names:
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, TruncatingFilter) for f in handler.filters):
                handler.addFilter(found)
        if not any(isinstance(f, TruncatingFilter) for f in logger.filters):
            logger.addFilter(found)
    return found
