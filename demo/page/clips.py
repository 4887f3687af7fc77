"""Video clips on the page, and the ``explain_video`` endpoint of the API and the assistants.

A clip (MP4, WebM or MOV, up to 30 seconds and the usual 10 MB) is a request like
a photo's, with the clip as its upload (:func:`demo.request.parse_clip`). It is
explained by :meth:`demo.service.DemoService.clip` (the frames a batch at a time
through the one engine for videos, :func:`demo.engine.run_frames`, each batch behind
the page's requests) while the page shows the frames as they are made and how far
it has come; then the explained video (H.264 in MP4, which every browser plays) and
the per-frame table.

No external program sees a clip: it is decoded and encoded in this process
(:mod:`gradcam.video`). Gradio's ``Video`` component would run ffprobe (and ffmpeg)
on a video it is given to show, to check that a browser can play it; so the events
that show one skip the component's own conversion (``postprocess=False``) and hand
it the file as it is, and the input's (``preprocess=False``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from demo import text
from demo.gradio_internals import current_event
from demo.page.handling import Handling, friendly
from demo.page.layout import Layout
from demo.page.live import inline
from demo.presence import LISTENERS
from demo.request import TOP_PREDICTION, ClipRequest
from demo.settings import EVERY
from gradcam import words
from gradcam.clips import ExplainedClip, FrameRow

log = logging.getLogger("demo")
Outputs = dict[Any, Any]

#: How often the page hears how far a clip has come (seconds).
UPDATE_EVERY = 0.4


def served(path: Path, mime_type: str) -> dict[str, Any]:
    """A file as Gradio sends it to the browser, as it is: no conversion (see the module's docstring)."""
    return {
        "path": str(path),
        "orig_name": path.name,
        "mime_type": mime_type,
        "size": path.stat().st_size,
        "meta": {"_type": "gradio.FileData"},
    }


@dataclass
class VideoClips:
    """The video panel's components (laid out by :meth:`build`, wired by :meth:`wire`)."""

    video: gr.Video | None = None
    every: gr.Slider | None = None
    button: gr.Button | None = None
    preview: gr.Image | None = None
    result: gr.Video | None = None
    sentence: gr.Markdown | None = None
    table: gr.File | None = None

    def build(self) -> None:
        """Lays out the video panel, closed (call inside a ``gr.Blocks`` context)."""
        with gr.Column(elem_id="clip-panel"):
            gr.Markdown(text.CLIP_HELP)
            with gr.Row(equal_height=False):
                self.video = gr.Video(
                    label="Your clip",
                    sources=["upload"],
                    include_audio=True,  # never converted: the file is read as it was sent
                    height=260,
                    elem_id="clip-input",
                    min_width=260,
                )
                self.preview = gr.Image(
                    label=text.CLIP_PREVIEW,
                    interactive=False,
                    height=260,
                    elem_id="clip-preview",
                    elem_classes="panel",
                    min_width=260,
                )
                self.result = gr.Video(
                    label=text.CLIP_RESULT,
                    interactive=False,
                    height=260,
                    elem_id="clip-result",
                    elem_classes="panel",
                    min_width=260,
                    buttons=["download"],
                )
            with gr.Row(equal_height=False):
                self.every = gr.Slider(
                    EVERY.low,
                    EVERY.high,
                    value=EVERY.default,
                    step=EVERY.step,
                    label="Explain every N-th frame",
                    info="1 explains every frame; 3 is three times quicker (each explained frame is shown until the "
                    "next).",
                    elem_id="clip-every",
                    scale=3,
                )
                self.button = gr.Button(text.CLIP_EXPLAIN, variant="primary", elem_id="clip-run", scale=1)
            self.sentence = gr.Markdown(elem_id="clip-sentence", label="What the model saw")
            self.table = gr.File(label=text.CLIP_TABLE, elem_id="clip-table", elem_classes="until-filled")

    def wire(self, handling: Handling, layout: Layout) -> None:
        """Connects the panel and the ``explain_video`` endpoint (inside the ``gr.Blocks`` context, after ``build``)."""
        assert self.video and self.every and self.button and self.preview and self.result and self.sentence
        assert self.table
        service = handling.service
        preview, result, sentence, table = self.preview, self.result, self.sentence, self.table
        answers = [preview, result, sentence, table]

        def explained_clip(asked: ClipRequest, progress: gr.Progress) -> Iterator[Outputs]:
            event = current_event()
            keys = (event.session_hash, event.event_id) if event is not None else ()
            latest: dict[str, Any] = {"done": 0, "total": 0, "picture": None}
            finished: dict[str, Any] = {}
            stop = threading.Event()

            def shown(picture: np.ndarray, row: FrameRow) -> None:
                latest["picture"] = picture

            def counted(done: int, total: int) -> None:
                latest["done"], latest["total"] = done, total

            def gone() -> bool:  # the visitor closed the page: stop before the next batch
                return stop.is_set() or (bool(keys) and not LISTENERS.listening(*keys))

            def work() -> None:
                try:
                    finished["clip"] = service.clip(asked, progress=counted, shown=shown, stop=gone)
                except BaseException as exc:  # handed to the page's thread, which words it
                    finished["error"] = exc

            worker = threading.Thread(target=work, name="clip", daemon=True)
            worker.start()
            try:
                yield {preview: None, result: None, table: None, sentence: text.clip_progress(0, 0)}
                while worker.is_alive():
                    worker.join(UPDATE_EVERY)
                    done, total = latest["done"], latest["total"]
                    update: Outputs = {sentence: text.clip_progress(done, total)}
                    picture, latest["picture"] = latest["picture"], None
                    if picture is not None:
                        update[preview] = inline(picture)
                    if total:
                        progress(min(1.0, done / total), desc="Explaining the video")
                    yield update
            finally:
                stop.set()  # also when Gradio stops iterating (the visitor left)
            if "error" in finished:
                raise finished["error"]
            clip: ExplainedClip = finished["clip"]
            yield {
                result: served(clip.video, "video/mp4"),
                table: served(clip.table, "text/csv"),
                sentence: words.clip_summary(clip).markdown,
            }

        def failed(message: str) -> Outputs:
            return {sentence: text.cannot_explain_clip(message), result: None, table: None}

        def empty() -> Outputs:
            return {preview: None, result: None, table: None, sentence: ""}

        handle = handling.on_clip(explained_clip, failed=failed, empty=empty)
        # The page's settings up to the colours, "every", then the newer settings: the endpoint's order.
        inputs = [self.video, *layout.inputs[1:6], self.every, *layout.inputs[6:]]
        options: dict[str, Any] = {
            "api_visibility": "private",
            "concurrency_id": "video",
            "concurrency_limit": 1,
            "preprocess": False,  # the clip reaches our checks as sent, never converted
            "postprocess": False,  # the explained video is served as made, never probed (see served)
            "show_progress_on": [result],
        }
        self.video.upload(handle, inputs, answers, **options)
        self.button.click(handle, inputs, answers, **options)

        # The API (and the MCP tool): the same request and pipeline, the files as the answer.
        @friendly
        def explain_video(
            video: Any,
            target: str = TOP_PREDICTION,
            model: str | None = None,
            threshold: float = 0.15,
            alpha: float = 0.5,
            colormap: str = "jet",
            every: int = 1,
            layer: str | None = None,
            method: str = "Grad-CAM",
            http: gr.Request = None,  # type: ignore[assignment]  # given by Gradio
        ) -> Outputs:
            """Explains a short video clip frame by frame: where an image classifier looks in each frame (Grad-CAM).

            Give a clip (MP4, WebM or MOV, up to 30 seconds and 10 MB; a file, or a base64 data: URL; links are
            not fetched). Each explained frame gets its heatmap, a box around the strongest evidence and the
            class with its probability.

            Args:
                video: the clip to explain.
                target: the ImageNet class to explain in every frame, e.g. "tabby"; "Top prediction" explains each
                    frame's own best guess.
                model: which model; leave empty for the default.
                threshold: box threshold, 0.05 to 0.95 (share of the strongest evidence).
                alpha: heatmap opacity over the frames, 0 to 1.
                colormap: heatmap colours: jet, viridis, cividis or magma.
                every: explain every N-th frame, 1 to 10 (1: every frame).
                layer: the model's layer to read (empty: the automatic one).
                method: how the heatmaps are made: Grad-CAM (the default), Grad-CAM++, XGrad-CAM, HiResCAM,
                    LayerCAM or Eigen-CAM (Score-CAM, one pass per feature map, falls back to Grad-CAM for clips).

            Returns:
                The explained video (H.264 MP4, as long as the clip); a CSV table with one row per explained frame
                (frame, time in seconds, class, probability, box x0, y0, x1, y1 in the clip's pixels); one sentence
                on what the model saw.
            """
            values = (video, target, model, threshold, alpha, colormap, every, layer, method)
            asked = handling.clip_request(values, http)
            clip = service.clip(asked)
            return {
                result: served(clip.video, "video/mp4"),
                table: served(clip.table, "text/csv"),
                sentence: words.clip_summary(clip).markdown,
            }

        gr.Button(visible=False).click(
            explain_video,
            inputs,
            [result, table, sentence],
            api_name="explain_video",
            concurrency_id="video",
            concurrency_limit=1,
            preprocess=False,
            postprocess=False,
        )
