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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

    def request(self, values: tuple[Any, ...], http: gr.Request | None, *, unknown_class: str = "top") -> Asked:
        """The checked request of an event's inputs (image, class, model, threshold, opacity, colours).

        Args:
            values: the event's inputs, in :attr:`demo.page.layout.Layout.inputs` order.
            http: the HTTP request Gradio gives the handler (None in tests).
            unknown_class: "top": a class the model does not know becomes the top prediction
                (the page; :attr:`Asked.unknown` says so); "raise": it is an error (the API).

        Raises:
            gradio.Error: the visitor has left.
            GradCAMError: a value that is not one, in words for the person.
        """
        drop_if_gone()  # a visitor who has left gets no model run
        request = self.service.parse(*values, visitor=self.visitor(http))
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
        """

        @friendly
        def answer(values: tuple[Any, ...], http: gr.Request | None, progress: gr.Progress) -> Any:
            return fn(self.request(values, http, unknown_class=unknown_class), progress)

        def handle(
            image: Any,
            target: Any,
            model: Any,
            threshold: Any,
            alpha: Any,
            colormap: Any,
            http: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Any:
            if empty is not None and image is None:
                return empty()
            try:
                return answer((image, target, model, threshold, alpha, colormap), http, progress)
            except gr.Error as exc:
                if failed is None:
                    raise
                return failed(str(exc.message))

        handle.__name__ = handle.__qualname__ = getattr(fn, "__name__", "handle")
        return handle

    def clip_request(self, values: tuple[Any, ...], http: gr.Request | None) -> ClipRequest:
        """The checked request of a video event's inputs (clip, class, model, threshold, opacity, colours, every).

        Raises:
            gradio.Error: the visitor has left.
            GradCAMError: a value that is not one, in words for the person.
        """
        drop_if_gone()
        return self.service.parse_clip(*values, visitor=self.visitor(http))

    def on_clip(
        self,
        fn: Callable[[ClipRequest, gr.Progress], Iterator[Any]],
        *,
        failed: Callable[[str], Any],
        empty: Callable[[], Any],
    ) -> Callable[..., Iterator[Any]]:
        """A Gradio generator handler of a video event's inputs that yields what ``fn`` yields for the checked request.

        The handler takes the clip and the page's inputs after the photo, then "every"; a
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
            http: gr.Request,
            progress: gr.Progress = gr.Progress(),
        ) -> Iterator[Any]:
            if video is None:
                yield empty()
                return
            try:
                asked = self.clip_request((video, target, model, threshold, alpha, colormap, every), http)
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
