"""The live camera on the page: point it at a mug and the heatmap follows the mug.

The browser's camera sends a small frame (``LIVE_WIDTH`` x ``LIVE_HEIGHT``, scaled
down by the browser before it travels) every ``LIVE_EVERY`` seconds to one
streaming event (Gradio's ``Image.stream``). Each frame is a request like a photo's:
the page's inputs with the frame as the photo (:meth:`Handling.on_request`), so the
class picker, the model and the look apply to the next frame; it is explained by
the one engine call (:meth:`demo.service.DemoService.frame`) when the model is
free, and dropped when it is not (Gradio keeps only the newest frame of a stream,
so frames never queue). The map is averaged over the last frames
(:mod:`demo.live`), drawn with its box and label, and sent back inline: no file per
frame. The sentence changes at most once a second; the page counts down the last
seconds of a run and stops the camera at the end; "Freeze" makes the frame shown
the page's photo, so every Explore view answers about it.

The streaming routes (``/gradio_api/stream/<event>`` and its ``/close``) pass the
request guard's limits like every other request (:mod:`demo.limits`); a visitor who
leaves ends their run at once (:func:`demo.gradio_internals.end_streams`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import gradio as gr

from demo import text
from demo.gradio_internals import current_event, end_streams
from demo.live import LiveRuns, steadied
from demo.page.handling import Asked, Handling
from demo.page.layout import Layout, inline_jpeg
from demo.presence import LISTENERS
from demo.settings import LIVE_EVERY, LIVE_HEIGHT, LIVE_SECONDS, LIVE_STREAMS, LIVE_WARNING, LIVE_WIDTH
from gradcam import views, words
from gradcam.encode import jpeg
from gradcam.methods import get_method
from gradcam.names import closest

Outputs = dict[Any, Any]

#: What the page asks the camera for: a small picture (the network sees 224 pixels), the rear camera of a phone.
CONSTRAINTS = {
    "video": {
        "width": {"ideal": LIVE_WIDTH},
        "height": {"ideal": LIVE_HEIGHT},
        "facingMode": {"ideal": "environment"},
    }
}
#: JPEG quality of the frames sent back.
VIEW_QUALITY = 80

CSS = """
#sources { gap: 8px; }
#sources button { flex: 0 1 auto; }
#live-panel:not(.open), #clip-panel:not(.open) { display: none; }
#live-camera, #live-view { min-height: 200px; }
#live-help p { margin: 0; }
#live-words { align-items: center; }
#live-status { color: #8a1c1c; font-weight: 600; min-height: 1.2em; }
#live-sentence p { margin: 0; }
"""

#: Run once at load: the camera starts with one click and stops at the end of a run, when its panel closes,
#: or on "Freeze". Gradio's own webcam buttons stay usable (Record, Stop, the camera picker).
LIVE_JS = """
() => {
  // Whether the camera sends frames: Gradio's webcam draws each one on a canvas (toDataURL) before sending it.
  // (Its button shows whether the server's stream is open, which is not the same.)
  let lastFrame = -1, lastClick = 0;
  const draw = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (...args) {
    lastFrame = performance.now();
    return draw.apply(this, args);
  };
  const capturing = () => lastFrame > lastClick && performance.now() - lastFrame < 600;
  const button = () => document.querySelector('#live-camera button.capture-button');
  const press = () => { const b = button(); if (b) { lastClick = performance.now(); b.click(); } return Boolean(b); };
  const start = async () => {
    for (let tries = 0; tries < 200; tries++) {
      const access = document.querySelector('#live-camera [title="grant webcam access"] button');
      if (access) access.click();
      if (button()) { if (!capturing()) press(); return; }
      await new Promise(next => setTimeout(next, 50));
    }
  };
  const stop = () => { if (capturing()) press(); };
  const show = (name, open) => {
    const panel = document.querySelector(`#${name}-panel`);
    if (panel) panel.classList.toggle('open', open);
    const opener = document.querySelector(`#${name}-open`);
    if (opener) opener.setAttribute('aria-expanded', String(open));
  };
  const isOpen = (name) => document.querySelector(`#${name}-panel.open`) !== null;
  window.gradcamSources = {
    live: () => {
      const open = !isOpen('live');
      show('clip', false); show('live', open);
      if (open) start(); else stop();
    },
    clip: () => { const open = !isOpen('clip'); stop(); show('live', false); show('clip', open); },
    stop,
    capturing,
  };
  // The server says a run is over once: the camera stops then, and may be started again at once.
  new MutationObserver(() => {
    const ended = document.querySelector('#live-status [data-ended]:not([data-seen])');
    if (ended) { ended.setAttribute('data-seen', ''); stop(); }
  }).observe(document.body, {childList: true, subtree: true});
}
"""


@dataclass
class LiveCamera:
    """The live camera's components (laid out by :meth:`build`, wired by :meth:`wire`)."""

    camera: gr.Image | None = None
    view: gr.Image | None = None
    sentence: gr.Markdown | None = None
    status: gr.HTML | None = None
    freeze: gr.Button | None = None
    runs: LiveRuns = dataclasses.field(default_factory=LiveRuns)

    def build(self) -> None:
        """Lays out the camera panel, closed (call inside a ``gr.Blocks`` context)."""
        with gr.Column(elem_id="live-panel"):
            gr.Markdown(text.LIVE_HELP, elem_id="live-help")
            with gr.Row(equal_height=False):
                self.camera = gr.Image(
                    label="Camera",
                    sources=["webcam"],
                    streaming=True,
                    webcam_options=gr.WebcamOptions(mirror=False, constraints=CONSTRAINTS),
                    height=230,
                    elem_id="live-camera",
                    min_width=260,
                )
                self.view = gr.Image(
                    label=text.LIVE_VIEW,
                    interactive=False,
                    height=230,
                    format="jpeg",
                    buttons=["fullscreen"],
                    elem_id="live-view",
                    elem_classes="panel",
                    min_width=260,
                )
            with gr.Row(equal_height=False, elem_id="live-words"):
                with gr.Column(scale=4, min_width=260):
                    self.sentence = gr.Markdown(text.LIVE_STARTING, elem_id="live-sentence")
                    self.status = gr.HTML("", elem_id="live-status", padding=False)
                self.freeze = gr.Button(text.FREEZE, elem_id="live-freeze", size="sm", scale=1, min_width=200)

    def wire(self, handling: Handling, layout: Layout, blocks: gr.Blocks, *, seconds: float = LIVE_SECONDS) -> None:
        """Connects the camera's stream and "Freeze" (call inside the ``gr.Blocks`` context, after :meth:`build`).

        A visitor's run ends the moment they leave: when their page's event stream closes.
        """
        assert self.camera and self.view and self.sentence and self.status and self.freeze
        page = weakref.ref(blocks)

        def left(session: str) -> None:
            current = page()
            if current is not None and end_streams(current, session):
                self.runs.end(session)

        LISTENERS.when_closed(left)
        blocks.load(None, js=LIVE_JS)
        watchdog = _Watchdog(page, lambda: self.runs)

        def end_now(session: str) -> None:
            """Ends the tab's stream from a handler's thread, on the server's loop."""
            try:
                anyio.from_thread.run_sync(end_streams, blocks, session)
            except RuntimeError:  # not on a server's worker thread (a handler called by a test)
                pass

        self.runs = runs = LiveRuns(seconds)
        service = handling.service
        view, sentence, status = self.view, self.sentence, self.status
        categories = list(service.categories)

        def frame(asked: Asked, progress: gr.Progress) -> Outputs:
            event = current_event()
            session, event_id = (event.session_hash, event.event_id) if event is not None else ("", "")
            watchdog.watch()
            run = runs.run(session, event_id)
            now = runs.clock()
            left, over = text.live_time(run.left(now, seconds), seconds, LIVE_WARNING)
            if over:  # this answer ends the stream, and the page stops the camera
                runs.finish(session)
                end_now(session)
                return {status: _status(left, ended=True)}
            request = asked.request
            explanation = service.frame(request)
            if explanation is None:  # the model is busy with someone's photo: this frame is dropped
                return {status: _status(left)}
            height, width = explanation.cam.shape
            key = (request.model, request.target, request.layer, explanation.method, (height, width))
            steady, cam = run.steady.add(key, explanation.cam)
            shown = steadied(explanation, cam)
            look = request.look
            picture = views.boxed_overlay(shown, look.alpha, look.colormap)
            answer: Outputs = {view: inline(picture), status: _status(left)}
            speaks = run.may_speak(now)
            if speaks:
                said = words.summary(shown, request.target is not None, look.colormap).markdown
                if asked.unknown is not None:
                    said = f"{text.unknown_class(asked.unknown, closest(asked.unknown, categories))} {said}"
                if explanation.method != request.method:  # Score-CAM: the live map is Grad-CAM's, and says so
                    said = f"{text.live_method(get_method(request.method).title)} {said}"
                answer[sentence] = said
            runs.update(
                session,
                dataclasses.replace(
                    run,
                    steady=steady,
                    said=now if speaks else run.said,
                    frame=request.photo,
                    explained=run.explained + 1,
                ),
            )
            return answer

        def failed(message: str) -> Outputs:
            return {sentence: text.cannot_explain(message)}

        stream = handling.on_request(frame, failed=failed, empty=dict)
        self.camera.stream(
            stream,
            [self.camera, *layout.inputs[1:]],
            [view, sentence, status],
            stream_every=LIVE_EVERY,
            time_limit=seconds + 5,  # Gradio's own bound; the page stops the camera at ``seconds``
            concurrency_id="live",
            concurrency_limit=LIVE_STREAMS,
            preprocess=False,
            postprocess=False,  # the frame is sent back inline, as made (see inline)
            show_progress="hidden",
            api_visibility="private",
        )

        def frozen(http: gr.Request) -> Outputs:
            photo = runs.frame(http.session_hash or "")
            if photo is None:
                return {sentence: text.NOTHING_TO_FREEZE}
            return {layout.image: str(service.keep(photo, handling.visitor(http)))}

        self.freeze.click(
            frozen,
            None,
            [layout.image, sentence],
            js="() => { if (window.gradcamSources) window.gradcamSources.stop(); }",
            api_visibility="private",
            concurrency_id="page",
            concurrency_limit=None,
        )


class _Watchdog:
    """Ends the streams that get no frame for ``QUIET`` seconds, so that none holds a slot for nothing.

    A page whose camera stopped without closing its stream (a phone put away, the
    page's own restart after a stop) would otherwise hold its slot until the time limit.
    One thread per page, started with its first frame; it stops with the page.
    """

    #: Seconds without a frame after which a stream is ended (a camera sends ten a second).
    QUIET = 2.0

    def __init__(self, page: weakref.ref[gr.Blocks], runs: Any) -> None:
        self._page, self._runs = page, runs
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self) -> None:
        """Starts the watch (call from a handler's thread: it learns the server's loop there)."""
        if self._thread is not None:
            return
        with self._started:
            if self._thread is not None:
                return
            try:
                self._loop = anyio.from_thread.run_sync(asyncio.get_running_loop)
            except RuntimeError:  # not on a server's worker thread: nothing to watch
                return
            self._thread = threading.Thread(target=self._run, name="live-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.QUIET / 4)
            page, loop = self._page(), self._loop
            if page is None or loop is None or loop.is_closed() or not page.is_running:
                return
            for session in self._runs().quiet(self.QUIET):
                loop.call_soon_threadsafe(end_streams, page, session)
            del page


def source_buttons() -> None:
    """The buttons beside the photo that open the live camera and the video panel (no server round trip)."""
    with gr.Row(elem_id="sources"):
        live = gr.Button(text.LIVE_BUTTON, elem_id="live-open", size="sm", variant="secondary")
        clip = gr.Button(text.CLIP_BUTTON, elem_id="clip-open", size="sm", variant="secondary")
    live.click(None, js="() => window.gradcamSources && window.gradcamSources.live()")
    clip.click(None, js="() => window.gradcamSources && window.gradcamSources.clip()")


def inline(picture: Any) -> dict[str, str]:
    """A drawn picture, as a JPEG the image component shows inline (see :func:`demo.page.layout.inline_jpeg`)."""
    return inline_jpeg(jpeg(picture, VIEW_QUALITY), "live.jpg")


def _status(words_left: str, *, ended: bool = False) -> str:
    """The countdown line; ``data-ended`` tells the page script to stop the camera."""
    marker = " data-ended" if ended else ""
    return f"<div{marker}>{html.escape(words_left)}</div>" if words_left else ""
