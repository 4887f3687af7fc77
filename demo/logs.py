"""Log hygiene: nothing a visitor sends reaches the log whole.

A stranger's 5 MB class name or data URL can end up in a log message, an
exception's text or a line Gradio prints itself (it prints some errors with
``print``). :func:`install_log_filter`, called once at start-up, cuts long
messages in the loggers and long lines written to ``sys.stderr`` and
``sys.stdout``; the process keeps its streams, wrapped.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import TextIO

#: How long a log message may be before it is cut.
LOG_LIMIT = 2000


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
                record.exc_info = (
                    kind,
                    kind(text_[: self.limit] + "…") if _rebuildable(kind) else None,
                    record.exc_info[2],
                )  # type: ignore[assignment]
        return True


def _rebuildable(kind: type[BaseException]) -> bool:
    try:
        kind("x")
    except Exception:
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
                line
                if len(line) <= self.limit
                else f"{line[: self.limit]}… [{len(line) - self.limit:,} more characters cut]"
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


def install_log_filter(
    limit: int = LOG_LIMIT, names: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "gradio", "httpx")
) -> TruncatingFilter:
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
