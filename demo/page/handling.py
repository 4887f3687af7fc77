"""How a page event becomes a request, and how its failures become words for the person.

Every handler of the page, the API and the Explore area starts with
:meth:`Handling.request`: the visitor who left is dropped before any work, what
was sent is checked once (:func:`demo.request.parse`), and a class the model does
not know is replaced by the top prediction on the page (the API keeps it an
error). :func:`friendly` turns an expected mistake into a ``gr.Error`` in our
words and an unexpected failure into a logged apology: a visitor never sees a
traceback.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr

from demo.limits import visitor_address
from demo.presence import drop_if_gone
from demo.request import ClipRequest, Request
from demo.service import DemoService
from gradcam import GradCAMError
from gradcam.errors import UnknownClassError

log = logging.getLogger("demo")

F = TypeVar("F", bound=Callable[..., Any])
SORRY = "Something went wrong on our side while explaining this image. Please try again, or try another image."


def friendly(fn: F) -> F:
    """Turns expected mistakes into a message and unexpected failures into a logged apology."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            title = "Can't explain this image" if isinstance(exc, GradCAMError) else "Sorry"
            raise gr.Error(in_words(exc, fn.__name__), title=title, print_exception=False) from exc

    return wrapper  # type: ignore[return-value]


def in_words(exc: Exception, where: str) -> str:
    """What a person is told of a failure (see :func:`friendly`); an unexpected one is logged for the operator."""
    if isinstance(exc, gr.Error):
        return str(exc.message)
    if isinstance(exc, GradCAMError):
        return str(exc)
    log.exception("unexpected failure in %s", where, exc_info=exc)
    return SORRY


@dataclass(frozen=True)
class Asked:
    """A page request, and the class the person typed when the model has none of that name."""

    request: Request
    unknown: str | None = None


class Repeats:
    """The last request each browser tab had answered, to tell a repeat from a new request. Safe between threads.

    Gradio 6.31's image component announces a replaced photo twice (two ``change`` events with the same
    file, a moment apart): the second would explain the photo again and send the same pictures twice.
    """

    def __init__(self, within: float = 5.0, sessions: int = 4096) -> None:
        self.within = within
        self.sessions = sessions
        self._last: OrderedDict[str, tuple[Asked, float]] = OrderedDict()
        self._lock = threading.Lock()

    def repeated(self, session: str, asked: Asked) -> bool:
        """Whether ``session`` had this same request answered less than ``within`` seconds ago."""
        with self._lock:
            last = self._last.get(session)
        return last is not None and last[0] == asked and time.monotonic() - last[1] < self.within

    def answered(self, session: str, asked: Asked) -> None:
        with self._lock:
            self._last[session] = (asked, time.monotonic())
            self._last.move_to_end(session)
            while len(self._last) > self.sessions:
                self._last.popitem(last=False)


@dataclass(frozen=True)
class Handling:
    """What every handler needs: the service and how to tell visitors apart.

    Attributes:
        service: answers the requests.
        proxy_hops: proxies in front of the app that append to ``X-Forwarded-For`` (see
            :func:`demo.limits.visitor_address`).
    """

    service: DemoService
    proxy_hops: int = 0
    repeats: Repeats = field(default_factory=Repeats, compare=False)

    def request(self, values: tuple[Any, ...], http: gr.Request | None, *, unknown_class: str = "top") -> Asked:
        """The checked request of an event's inputs (image, class, model, threshold, opacity, colours, layer, method).

        Args:
            values: the event's inputs, in :attr:`demo.page.layout.Layout.inputs` order.
            http: the HTTP request Gradio gives the handler (None in tests).
            unknown_class: "top": a class the model does not know becomes the top prediction
                (the page; :attr:`Asked.unknown` says so), and a layer it does not offer (the
                layer list still the previous model's) its automatic layer; "raise": both are
                errors (the API).

        Raises:
            gradio.Error: the visitor has left.
            GradCAMError: a value that is not one, in words for the person.
        """
        drop_if_gone()  # a visitor who has left gets no model run
        layer = "raise" if unknown_class == "raise" else "automatic"
        request = self.service.parse(*values, visitor=self.visitor(http), unknown_layer=layer)
        if request.target is None:
            return Asked(request)
        try:
            self.service.models.get(request.model).class_index(request.target)
        except UnknownClassError:
            if unknown_class != "top":
                raise
            return Asked(request.top_prediction(), request.target)
        return Asked(request)

    def on_request(
        self,
        fn: Callable[[Asked, gr.Progress], Any],
        *,
        unknown_class: str = "top",
        failed: Callable[[str], Any] | None = None,
        empty: Callable[[], Any] | None = None,
        repeat: Callable[[], Any] | None = None,
    ) -> Callable[..., Any]:
        """A Gradio handler of the page's inputs that calls ``fn`` with the checked request.

        The handler takes the inputs in :attr:`demo.page.layout.Layout.inputs` order (this is
        the one place they are spelled out), and the HTTP request and progress Gradio injects.

        Args:
            fn: the answer, from the request and the progress.
            unknown_class: see :meth:`request`.
            failed: what the handler returns for a mistake or a failure, given its message (None:
                a ``gr.Error`` in our words, see :func:`friendly`).
            empty: what the handler returns when no photo is given (None: it is a mistake).
            repeat: what the handler returns, instead of answering again, for the request the same
                browser tab just had answered (None: every request is answered).
        """

        @friendly
        def answer(values: tuple[Any, ...], http: gr.Request | None, progress: gr.Progress) -> Any:
            asked = self.request(values, http, unknown_class=unknown_class)
            session = getattr(http, "session_hash", None) or ""
            if repeat is not None and session and self.repeats.repeated(session, asked):
                return repeat()
            result = fn(asked, progress)
            if session:
                self.repeats.answered(session, asked)
            return result

        def handle(
            image: Any,
            target: Any,
            model: Any,
            threshold: Any,
            alpha: Any,
            colormap: Any,
            layer: Any,
            method: Any,
            http: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Any:
            if empty is not None and image is None:
                return empty()
            try:
                return answer((image, target, model, threshold, alpha, colormap, layer, method), http, progress)
            except gr.Error as exc:
                if failed is None:
                    raise
                return failed(str(exc.message))

        handle.__name__ = handle.__qualname__ = getattr(fn, "__name__", "handle")
        return handle

    def clip_request(
        self, values: tuple[Any, ...], http: gr.Request | None, *, unknown_layer: str = "raise"
    ) -> ClipRequest:
        """The checked request of a video event's inputs (clip, class, model, threshold, opacity, colours, every, ...).

        After ``every`` come the newer settings, as the photo's: the layer, the method.

        ``unknown_layer`` as for :func:`demo.request.parse` ("automatic" on the page).

        Raises:
            gradio.Error: the visitor has left.
            GradCAMError: a value that is not one, in words for the person.
        """
        drop_if_gone()
        return self.service.parse_clip(*values, visitor=self.visitor(http), unknown_layer=unknown_layer)

    def on_clip(
        self,
        fn: Callable[[ClipRequest, gr.Progress], Iterator[Any]],
        *,
        failed: Callable[[str], Any],
        empty: Callable[[], Any],
    ) -> Callable[..., Iterator[Any]]:
        """A Gradio generator handler of a video event's inputs that yields what ``fn`` yields for the checked request.

        The handler takes the clip, the page's inputs after the photo up to the colours, "every",
        then the newer settings (the layer, the method); a
        mistake or a failure, before or while the clip is explained, is yielded as
        ``failed(message)``.
        """

        def handle(
            video: Any,
            target: Any,
            model: Any,
            threshold: Any,
            alpha: Any,
            colormap: Any,
            every: Any,
            layer: Any,
            method: Any,
            http: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[Any]:
            if video is None:
                yield empty()
                return
            try:
                values = (video, target, model, threshold, alpha, colormap, every, layer, method)
                asked = self.clip_request(values, http, unknown_layer="automatic")
                yield from fn(asked, progress)
            except Exception as exc:
                yield failed(in_words(exc, getattr(fn, "__name__", "clip")))

        handle.__name__ = handle.__qualname__ = getattr(fn, "__name__", "handle")
        return handle

    def visitor(self, http: gr.Request | None) -> str:
        """The visitor's network address, as the request guard counts it."""
        if http is None:
            return ""
        headers = {str(k).lower(): str(v) for k, v in (http.headers or {}).items()}
        client = getattr(http.client, "host", None) if http.client is not None else None
        return visitor_address(headers, client, self.proxy_hops)
