"""Answering the app's requests, independent of Gradio: one request value in, an explanation and its files out.

A request travels one way: :func:`demo.request.parse` checks what was sent and
makes a :class:`demo.request.Request`; :meth:`DemoService.explanation` gives its
explanation, remembered (a look or threshold change never runs the model) or
computed by the one engine call (:func:`demo.engine.run_engine`) with what the
Explore views asked for so far; :meth:`DemoService.show` draws what the page
shows first (light copies of the four panels), :meth:`DemoService.files` the
full-quality files and the zip, the same for the page's download and the API.
The pictures come from :mod:`gradcam.views`, the sentences from :mod:`gradcam.words`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from demo import request as requests
from demo.cache import ExplanationCache
from demo.engine import ENGINE, Needs, run_engine, run_frames
from demo.files import OutputStore
from demo.models import LoadFailed, ModelSet, ModelUnavailable
from demo.request import ClipRequest, Photo, Request
from demo.settings import CACHE_SIZE, CLIP_SECONDS, CLIP_SIDE, MAX_SIDE, SCORE_CAM_SECONDS, ModelChoice
from gradcam import (
    Explainer,
    Explanation,
    WeightsError,
    available_offline,
    describe_spec,
    load_backbone,
    load_image,
    views,
    words,
)
from gradcam.boxes import box_iou
from gradcam.clips import ExplainedClip, FrameRow, explain_clip
from gradcam.encode import write_png
from gradcam.methods import DEFAULT as DEFAULT_METHOD
from gradcam.methods import get_method

__all__ = ["DemoService", "Files", "Shown", "Stopped", "load_service"]

log = logging.getLogger("demo")

#: Best classes kept with every explanation, for the class comparison.
COMPARED_CLASSES = 3

Progress = Callable[[float], None]
#: What an explanation is remembered by: the upload's SHA-256, the model's title, the class (None: the top one),
#: the layer (None: the model's automatic one), the method.
Key = tuple[str, str, int | None, str | None, str]


class Stopped(Exception):
    """A clip's explanation was stopped by its caller (the visitor left)."""


@dataclass(frozen=True)
class Shown:
    """What the page shows for a request.

    Attributes:
        request: the request.
        explanation: its explanation.
        display: light JPEG copies of the four panels, drawn at the size shown.
    """

    request: Request
    explanation: Explanation
    display: dict[str, Path]


@dataclass(frozen=True)
class Files:
    """The full-quality files of a request: the four panel PNGs by name and the zip of everything; their explanation."""

    explanation: Explanation
    panels: dict[str, Path]
    archive: Path


class DemoService:
    """Explains uploads with the loaded models; safe to call from several threads.

    Args:
        models: the models, a :class:`ModelSet` or ready explainers keyed by their title ("VGG19").
        unavailable: with explainers: models that failed to load, keyed by title, with the reason.
        workdir: where request folders are written (a new temporary folder by default;
            inside Gradio's cache folder, Gradio serves the files without copying them).
        cache_size: how many explanations are remembered for re-rendering.
        store: where request files are kept (by default an :class:`OutputStore` on ``workdir``).
    """

    def __init__(
        self,
        models: ModelSet | Mapping[str, Explainer],
        unavailable: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        cache_size: int = CACHE_SIZE,
        store: OutputStore | None = None,
    ) -> None:
        self.models = models if isinstance(models, ModelSet) else ModelSet(models, unavailable)
        if store is None:
            root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="gradcam-app-"))
            store = OutputStore(root)
        self.store = store
        self.cache = ExplanationCache(cache_size)
        for explainer in self.models.ready.values():
            explainer.layers()  # the layers a person may pick, found now (dry passes) rather than on a request

    @property
    def default_model(self) -> str:
        return self.models.default

    @property
    def model_titles(self) -> list[str]:
        return self.models.titles

    @property
    def categories(self) -> tuple[str, ...]:
        return self.models.get(None).backbone.categories

    @property
    def untrained(self) -> bool:
        return any(e.backbone.untrained for e in self.models.ready.values())

    def parse(
        self,
        image: object,
        target: object = requests.TOP_PREDICTION,
        model: object = None,
        threshold: object = None,
        alpha: object = None,
        colormap: object = None,
        layer: object = None,
        method: object = None,
        *,
        visitor: str = "",
        unknown_layer: str = "raise",
    ) -> Request:
        """What was sent, checked, as a request for one of this service's models (see :func:`demo.request.parse`)."""
        return requests.parse(
            image,
            target,
            model,
            threshold,
            alpha,
            colormap,
            layer,
            method,
            models=self.models.titles,
            default_model=self.default_model,
            visitor=visitor,
            layers=self.layers,
            unknown_layer=unknown_layer,
        )

    def parse_clip(
        self,
        video: object,
        target: object = requests.TOP_PREDICTION,
        model: object = None,
        threshold: object = None,
        alpha: object = None,
        colormap: object = None,
        every: object = None,
        layer: object = None,
        method: object = None,
        *,
        visitor: str = "",
        unknown_layer: str = "raise",
    ) -> ClipRequest:
        """A video request, checked, for one of this service's models (see :func:`demo.request.parse_clip`)."""
        return requests.parse_clip(
            video,
            target,
            model,
            threshold,
            alpha,
            colormap,
            every,
            layer,
            method,
            models=self.models.titles,
            default_model=self.default_model,
            visitor=visitor,
            layers=self.layers,
            unknown_layer=unknown_layer,
        )

    def layers(self, title: str | None = None) -> tuple[str, ...] | None:
        """The layers a model offers, its automatic one first (the default model for None); None while it loads."""
        try:
            return self.models.get(title).layers()
        except ModelUnavailable:
            return None

    def explanation(self, request: Request, needs: Needs = Needs(), progress: Progress | None = None) -> Explanation:
        """The explanation of a request, remembered or computed.

        One engine call gives the map and what the Explore views asked for so far;
        a view asking for something the remembered explanation lacks gets one new
        engine call that keeps everything it had.

        Raises:
            GradCAMError: an unknown class, a model not ready, an unreadable photo: in words for the person.
        """
        explainer = self.models.get(request.model)
        index = None if request.target is None else explainer.class_index(request.target)
        key: Key = (request.photo.sha256, request.model, index, request.layer, request.method)
        remembered = self.cache.get(key)
        if not needs.lacking(remembered):
            assert remembered is not None
            return (
                remembered
                if remembered.threshold == request.threshold
                else remembered.with_threshold(request.threshold)
            )
        rgb = load_image(request.photo.data, max_side=MAX_SIDE)
        explanation = run_engine(
            explainer,
            rgb,
            index,
            request.threshold,
            needs.keeping(remembered),
            progress,
            method=request.method,
            time_limit=SCORE_CAM_SECONDS,
            layer=request.layer,
        )
        self.cache.put(key, explanation)
        return explanation

    def show(self, request: Request, progress: Progress | None = None) -> Shown:
        """What the page shows: the explanation and light copies of the four panels.

        Args:
            request: the request.
            progress: called with the share of the work done (Score-CAM takes a while).

        Raises:
            GradCAMError: in words for the person.
        """
        explanation = self.explanation(request, progress=progress)
        display = self.store.write_display(explanation, request.look, owner=request.visitor)
        return Shown(request, explanation, display)

    def files(self, request: Request, *, workers: int | None = None) -> Files:
        """The full-quality files of a request: the four panel PNGs, the raw map, the manifest and their zip.

        Args:
            request: the request (its explanation is remembered, or computed).
            workers: threads encoding the PNGs (one leaves the other cores to the page and the next request).

        Raises:
            GradCAMError: in words for the person, or a full store.
        """
        explanation = self.explanation(request)
        written = self.store.write_explanation(
            explanation, request.look, request.photo.name, owner=request.visitor, workers=workers
        )
        return Files(explanation, written.panels, written.archive)

    def report(self, request: Request) -> Path:
        """One PNG for slides: the four panels, the top-5 and the sentence."""
        explanation = self.explanation(request)
        folder = self.store.folder(request.visitor)
        try:
            path = folder / "gradcam-report.png"
            picture = views.one_picture(
                explanation, request.look.alpha, request.look.colormap, asked=request.target is not None
            )
            write_png(path, picture)
        finally:
            self.store.done(folder)
        return path

    def compare_models(self, request: Request) -> tuple[list[tuple[np.ndarray, str]], str]:
        """The same photo through every loaded model: overlays with boxes, and how much the boxes agree (IoU)."""
        look = request.look
        results = {title: self.explanation(replace(request, model=title, layer=None)) for title in self.models.ready}
        pictures = [
            (views.boxed_overlay(e, look.alpha, look.colormap), f"{title}: {words.label(e.class_name, e.probability)}")
            for title, e in results.items()
        ]
        titles = list(results)
        overlaps = []
        for i, first in enumerate(titles):
            for second in titles[i + 1 :]:
                a, b = results[first].boxes, results[second].boxes
                overlaps.append((first, second, box_iou(a[0], b[0]) if a and b else None))
        return pictures, words.models_agreement(overlaps).plain

    def frame(self, request: Request) -> Explanation | None:
        """A live camera's frame explained by the one engine call, or None when the model is busy.

        A frame never waits for the model (:meth:`demo.engine.EngineGate.trying`): when a
        request holds it or waits for it, the frame is dropped and the next one tried.
        Frames are not remembered, so a stream never pushes out the photos' explanations.

        Raises:
            GradCAMError: an unknown class, a model not ready, a frame that cannot be read.
        """
        explainer = self.models.get(request.model)
        index = None if request.target is None else explainer.class_index(request.target)
        rgb = load_image(request.photo.data, max_side=MAX_SIDE)
        with ENGINE.trying() as free:
            if not free:
                return None
            method = request.method if get_method(request.method).cheap else DEFAULT_METHOD  # Score-CAM: too slow
            return run_engine(explainer, rgb, index, request.threshold, Needs(), method=method, layer=request.layer)

    def keep(self, photo: Photo, visitor: str = "", name: str = "frame.jpg") -> Path:
        """Writes an upload's bytes (a frozen live frame) into the store; the path to show it from."""
        folder = self.store.folder(visitor)
        try:
            path = folder / name
            path.write_bytes(photo.data)
        finally:
            self.store.done(folder)
        return path

    def clip(
        self,
        asked: ClipRequest,
        *,
        progress: Callable[[int, int], None] | None = None,
        shown: Callable[[np.ndarray, FrameRow], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> ExplainedClip:
        """A video clip explained into the store: ``overlay.mp4`` and ``frames.csv`` (see :mod:`gradcam.clips`).

        The frames go a batch at a time through :func:`demo.engine.run_frames`, each batch
        behind the page's requests; the clip is bounded by :mod:`gradcam.video`'s limits and
        ``CLIP_SECONDS`` of wall time.

        Args:
            asked: the checked video request.
            progress: called with the frames read and the frames announced.
            shown: called with each explained frame's picture and row, as they are made.
            stop: asked before each batch; True stops the work (raises :class:`Stopped`).

        Raises:
            GradCAMError: an unknown class, a model not ready, a clip that cannot be read, a full store.
            Stopped: ``stop`` said so.
        """
        request = asked.request
        explainer = self.models.get(request.model)
        index = None if request.target is None else explainer.class_index(request.target)

        def engine(frames: list[np.ndarray]) -> list[Explanation]:
            if stop is not None and stop():
                raise Stopped
            method = request.method if get_method(request.method).cheap else DEFAULT_METHOD  # Score-CAM: too slow
            return run_frames(explainer, frames, index, request.threshold, request.layer, method)

        folder = self.store.folder(request.visitor)
        try:
            return explain_clip(
                explainer,
                request.photo.data,
                folder,
                target=index,
                every=asked.every,
                threshold=request.threshold,
                alpha=request.look.alpha,
                colormap=request.look.colormap,
                max_side=CLIP_SIDE,
                engine=engine,
                progress=progress,
                shown=shown,
                deadline=time.monotonic() + CLIP_SECONDS,
            )
        finally:
            self.store.done(folder)

    def forget(self) -> None:
        """Drops the remembered explanations: the next requests run the model."""
        self.cache.clear()

    def close(self) -> None:
        """Deletes every file the service wrote."""
        self.store.close()


def load_service(
    weights: str | None = None,
    models: Sequence[str | ModelChoice] = ("vgg19", "resnet50", "densenet121"),
    workdir: Path | None = None,
    compile: bool = False,
    *,
    device: str = "cpu",
    labels: str | None = None,
    layer: str | None = None,
    background: bool = False,
    store: OutputStore | None = None,
) -> DemoService:
    """Loads the models: the first that loads is the default, the others load after it.

    Args:
        weights: for the first model: a state dict, "random" (untrained, for tests:
            then every model without weights of its own is untrained), or None for
            pretrained weights.
        models: the models in page order: specs (see :func:`gradcam.load_backbone`) or
            :class:`demo.settings.ModelChoice` values with their own weights, labels,
            layer, head, input size, normalisation and title.
        workdir: where request folders are written.
        compile: compile VGG19's trunk with ``torch.compile`` at start-up (falls back to eager).
        device: where the models run ("cpu", "cuda").
        labels: class names for the first model (a fine-tuned one).
        layer: the first model's target layer.
        background: serve while the models after the default load (each waits for a moment
            without explanations running).
        store: where request files are kept (default: an :class:`OutputStore` on ``workdir``).

    Raises:
        GradCAMError: when no model can be loaded, or the first model, configured by its
            operator, cannot.
    """
    choices = [choice if isinstance(choice, ModelChoice) else ModelChoice(choice) for choice in models]
    first = choices[0]
    choices[0] = replace(
        first, weights=first.weights or weights, labels=first.labels or labels, layer=first.layer or layer
    )

    def loader(choice: ModelChoice) -> Callable[[], Explainer]:
        def load() -> Explainer:
            own = choice.weights if choice.weights is not None else "random" if weights == "random" else None
            try:
                backbone = load_backbone(
                    choice.spec, own, choice.labels, choice.layer, device=device, progress=True,
                    **choice.input_options(),
                )
            except WeightsError as exc:
                offline, reason = available_offline(choice.spec)
                raise LoadFailed(str(exc), "its weights could not be loaded" if offline else reason) from exc
            if choice.title:
                backbone = replace(backbone, title=choice.title)
            explainer = Explainer(backbone, compile=compile)
            explainer.layers()  # the layers a person may pick, found now rather than on the first request
            return explainer

        return load

    loaders = [(choice.title or describe_spec(choice.spec), loader(choice)) for choice in choices]
    # Weights, labels, a layer, a head or an input given for the first model are the operator's choice: if they
    # fail, say so and stop, rather than serve another model.
    model_set = ModelSet.load(loaders, background=background, fallback=not choices[0].configured, idle=ENGINE.wait_idle)
    return DemoService(model_set, workdir=workdir, store=store)
