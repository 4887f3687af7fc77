"""Which visitors still wait for their answers, so that a request whose visitor has left never runs the model.

:class:`demo.limits.RequestGuard` tells :class:`Listeners` when a visitor's
event stream opens and closes; :func:`drop_if_gone`, called first in every
handler, skips the work of a request nobody is listening for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import gradio as gr

from demo.gradio_internals import current_event

log = logging.getLogger("demo")

#: Seconds after joining the queue within which a visitor must be listening for the answer.
GRACE = 3.0


class Listeners:
    """Which sessions have the queue's event stream open: the visitors still waiting for answers.

    Clients join the queue first and open the stream after, and close it
    whenever nothing of theirs is pending, so a request is only known to be
    abandoned when no stream is open for it some time after it joined.
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = defaultdict(int)
        self._changed = threading.Condition()
        self.dropped = 0
        self._when_closed: list[Callable[[str], None]] = []

    def when_closed(self, callback: Callable[[str], None]) -> None:
        """Calls ``callback(key)`` each time the last stream open for ``key`` closes (the visitor left or is done)."""
        with self._changed:
            self._when_closed.append(callback)

    def opened(self, key: str) -> None:
        with self._changed:
            self._open[key] += 1
            self._changed.notify_all()

    def closed(self, key: str) -> None:
        with self._changed:
            self._open[key] -= 1
            last = self._open[key] <= 0
            if last:
                del self._open[key]
            self._changed.notify_all()
            callbacks = list(self._when_closed) if last else []
        for callback in callbacks:
            try:
                callback(key)
            except Exception:  # one listener's failure must not keep the others from hearing
                log.exception("a callback for a closed event stream failed")

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


def drop_if_gone(listeners: Listeners = LISTENERS, grace: float = GRACE) -> None:
    """Raises when the visitor who queued the running request has left; call first in a handler.

    Raises:
        gradio.Error: with a short message nobody will read, to skip the work.
    """
    event = current_event()
    if event is None:
        return  # called outside a queued request (cached examples, tests)
    if listeners.gone([event.session_hash, event.event_id], event.enqueued + grace):
        listeners.dropped += 1
        log.info("dropped a queued request: its visitor has left")
        raise gr.Error("You left before this request ran.", print_exception=False)
