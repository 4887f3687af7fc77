"""Running explanations for the web app, independent of Gradio.

:class:`DemoService` holds the models (loaded once at start-up), remembers the
last few explanations so that a slider change re-renders without running the
model again, and writes each request's files (four PNGs and a zip) through a
:class:`demo.files.OutputStore`, which keeps them downloadable for 15 minutes.
Every public method checks its settings first (:mod:`demo.guard`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from gradcam import BACKBONES, Explainer, Explanation, GradCAMError, load_backbone, load_image
from gradcam.boxes import box_iou
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA
from gradcam.errors import InvalidImageError
from gradcam.explanation import percent
from gradcam.faithfulness import MaskingTest, masking_test
from gradcam.guided import guided_gradcam
from gradcam.plots import deletion_plot, report
from gradcam.render import draw_boxes, heatmap
from gradcam.save import save_explanation

from demo import guard
from demo.files import OutputStore
from demo.text import TOP_PREDICTION, describe, top_k_label

log = logging.getLogger("demo")

#: Longest side of the image the app explains and shows; the network sees 224 pixels anyway.
MAX_SIDE = 1280
#: How many explanations are kept for re-rendering.
CACHE_SIZE = 8
#: Longest class name accepted (the longest ImageNet name has 80 characters).
MAX_CLASS_NAME = 200


class UserError(GradCAMError):
    """A request the app cannot serve, with a message for the person who made it."""


@dataclass(frozen=True)
class Rendered:
    """What one request returns: the explanation, its files and its words."""

    explanation: Explanation
    panels: dict[str, Path]
    archive: Path
    sentence: str
    label: dict[str, float]


class DemoService:
    """Explains uploads with the loaded models; safe to call from several threads.

    Args:
        explainers: the usable models, keyed by their title ("VGG19").
        unavailable: models that failed to load, keyed by title, with the reason.
        workdir: where request folders are written (a new temporary folder by default;
            inside Gradio's cache folder, Gradio serves the files without copying them).
        cache_size: how many explanations are remembered for re-rendering.
        store: where request files are kept (by default an :class:`OutputStore` on ``workdir``).
    """

    def __init__(
        self,
        explainers: Mapping[str, Explainer],
        unavailable: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        cache_size: int = CACHE_SIZE,
        store: OutputStore | None = None,
    ) -> None:
        if not explainers:
            raise ValueError("At least one model is needed.")
        self.explainers = dict(explainers)
        self.unavailable = dict(unavailable or {})
        if store is not None:
            self.workdir = store.root
        elif workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="gradcam-app-"))
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = store or OutputStore(self.workdir)
        self.cache_size = cache_size
        self.model_runs = 0
        self._cache: OrderedDict[tuple[str, str, int | None], Explanation] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def default_model(self) -> str:
        return next(iter(self.explainers))

    @property
    def model_titles(self) -> list[str]:
        return [*self.explainers, *self.unavailable]

    @property
    def categories(self) -> tuple[str, ...]:
        return self.explainers[self.default_model].backbone.categories

    @property
    def untrained(self) -> bool:
        return any(e.backbone.untrained for e in self.explainers.values())

    def explain(
        self,
        image: str | bytes | None,
        target: str | None = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        alpha: float = OVERLAY_ALPHA,
        colormap: str = COLORMAP,
        name: str = "image",
    ) -> Rendered:
        """Explains an upload, or re-renders a remembered explanation.

        Args:
            image: the uploaded file's path or bytes.
            target: a class name, or "Top prediction" (None means the same).
            model: a model title; the default model when None.
            threshold: box threshold, a fraction of the map's maximum.
            alpha: heatmap opacity in the overlay.
            colormap: matplotlib colormap of the heatmap.
            name: the upload's file name, for the download's name.

        Raises:
            UserError, GradCAMError: with a message for the person.
        """
        alpha, colormap = _look(alpha, colormap)
        explanation, asked = self.explanation(image, target, model, threshold)
        panels, archive = self.store.write_explanation(explanation, alpha, colormap, name)
        return Rendered(explanation, panels, archive, describe(explanation, asked), top_k_label(explanation))

    def explanation(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None, threshold: float = BOX_THRESHOLD
    ) -> tuple[Explanation, bool]:
        """The explanation of a request, remembered or computed; and whether the class was asked for.

        Raises:
            UserError, GradCAMError: with a message for the person.
        """
        target = guard.text(target, "Class to explain", MAX_CLASS_NAME, default=TOP_PREDICTION)
        threshold = guard.number(threshold, "Box threshold", 0.0, 1.0)
        title = model or self.default_model
        explainer = self._explainer(title)
        data = self._read(image)
        asked = target not in (None, "", TOP_PREDICTION)
        index = explainer.class_index(target) if asked else None
        key = (hashlib.sha256(data).hexdigest(), title, index)  # titles are unique; backbone names need not be
        explanation = self._remembered(key)
        if explanation is None:
            rgb = _fit(load_image(data), MAX_SIDE)
            explanation = explainer.explain(rgb, index, threshold=threshold, counterfactual=True)
            with self._lock:
                self.model_runs += 1
                self._cache[key] = explanation
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if explanation.threshold != threshold:
            explanation = explanation.with_threshold(threshold)
        return explanation, asked

    def masking(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None, threshold: float = BOX_THRESHOLD
    ) -> tuple[MaskingTest, np.ndarray, np.ndarray, np.ndarray]:
        """Runs the masking test: the result, the image with the region hidden, with only the region kept, the curve."""
        explanation, _ = self.explanation(image, target, model, threshold)
        test = masking_test(self._explainer(model), explanation)
        return test, test.hidden_image, test.kept_image, deletion_plot(test)

    def counterfactual(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None,
        alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """What speaks against the class: its heatmap, its overlay and a sentence."""
        alpha, colormap = _look(alpha, colormap)
        explanation, _ = self.explanation(image, target, model)
        counter = explanation.counter_cam
        assert counter is not None  # the service always computes it
        if explanation.counter_empty:
            words = f"Nothing in this image speaks against {explanation.class_name}: the model found no contrary evidence."
        else:
            words = (
                f"The warm colours now show what speaks **against** {explanation.class_name}: "
                "the parts that, if they were stronger, would make the model less sure."
            )
        return heatmap(counter, colormap), explanation.counter_overlay(alpha, colormap), words

    def guided(self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None) -> np.ndarray:
        """Guided Grad-CAM: the fine detail inside the highlighted region."""
        explanation, _ = self.explanation(image, target, model)
        return guided_gradcam(self._explainer(model), explanation)

    def compare_classes(
        self, image: str | bytes | None, model: str | None = None, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP, top: int = 3
    ) -> list[tuple[np.ndarray, str]]:
        """The overlays of the best ``top`` classes, from one forward pass, with captions."""
        alpha, colormap = _look(alpha, colormap)
        explainer = self._explainer(model)
        rgb = _fit(load_image(self._read(image)), MAX_SIDE)
        explanations = explainer.explain_classes(rgb, None, top=top)
        return [(e.overlay(alpha, colormap), f"{e.class_name}: {percent(e.probability)}") for e in explanations]

    def compare_models(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, threshold: float = BOX_THRESHOLD,
        alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> tuple[list[tuple[np.ndarray, str]], str]:
        """The same image through every loaded model: overlays with boxes, and how much the boxes agree (IoU)."""
        alpha, colormap = _look(alpha, colormap)
        results = {title: self.explanation(image, target, title, threshold)[0] for title in self.explainers}
        pictures = [
            (draw_boxes(e.overlay(alpha, colormap), e.boxes, e.label), f"{title}: {e.class_name} {percent(e.probability)}")
            for title, e in results.items()
        ]
        pairs = []
        titles = list(results)
        for i, first in enumerate(titles):
            for second in titles[i + 1 :]:
                a, b = results[first].boxes, results[second].boxes
                if a and b:
                    pairs.append(f"{first} and {second}: {box_iou(a[0], b[0]):.0%}")
        if len(titles) < 2:
            return pictures, "Only one model is loaded on this server, so there is nothing to compare."
        if not pairs:
            return pictures, "The models' boxes cannot be compared: at least one map is empty."
        words = "How much the models' boxes overlap (intersection over union, 100% = the same box): " + "; ".join(pairs) + "."
        return pictures, words

    def report(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None,
        threshold: float = BOX_THRESHOLD, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> Path:
        """One PNG for slides: the four panels, the top-5 and the sentence."""
        alpha, colormap = _look(alpha, colormap)
        explanation, asked = self.explanation(image, target, model, threshold)
        sentence = describe(explanation, asked).replace("**", "").replace("*", "")
        folder = self.store.folder()
        try:
            path = folder / "gradcam-report.png"
            Image.fromarray(report(explanation, sentence, alpha=alpha, colormap=colormap)).save(path)
        finally:
            self.store.done(folder)
        return path

    def forget(self) -> None:
        """Drops the remembered explanations: the next requests run the model."""
        with self._lock:
            self._cache.clear()

    def _explainer(self, model: str | None) -> Explainer:
        title = guard.text(model, "Model", MAX_CLASS_NAME, default=self.default_model) or self.default_model
        if title in self.unavailable:
            raise UserError(f"{title} is not available on this server right now ({self.unavailable[title]}). Please pick another model.")
        if title not in self.explainers:
            raise UserError(f"Unknown model {guard.shorten(title)!r}; choose one of: {', '.join(self.explainers)}.")
        return self.explainers[title]

    @staticmethod
    def _read(image: str | bytes | None) -> bytes:
        if image is None or image == b"" or image == "":
            raise UserError("Please add an image first: drag one in, paste it, or pick an example below.")
        if isinstance(image, bytes):
            return image
        try:
            return Path(image).read_bytes()
        except OSError as exc:
            raise InvalidImageError("The upload could not be read. Please try again.") from exc

    def _remembered(self, key: tuple[str, str, int | None]) -> Explanation | None:
        with self._lock:
            explanation = self._cache.get(key)
            if explanation is not None:
                self._cache.move_to_end(key)
            return explanation

    def close(self) -> None:
        """Deletes every file the service wrote."""
        self.store.close()


def _look(alpha: object, colormap: object) -> tuple[float, str]:
    """The overlay settings, checked: an opacity from 0 to 1 and a known colour map (None: the default)."""
    return guard.number(alpha, "Heatmap opacity", 0.0, 1.0), guard.colormap(colormap)


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_service(
    weights: str | None = None, models: tuple[str, ...] = tuple(BACKBONES), workdir: Path | None = None, compile: bool = False,
    store: OutputStore | None = None,
) -> DemoService:
    """Loads the models once, at start-up. The first must load; the others may fail and are marked unavailable.

    Args:
        weights: as for :func:`gradcam.load_backbone` (None: ``GRADCAM_WEIGHTS`` or torchvision's).
        models: backbone names, the default first.
        workdir: where request folders are written.
        compile: compile VGG19's trunk with ``torch.compile`` at start-up (falls back to eager).
        store: where request files are kept (default: an :class:`OutputStore` on ``workdir``).

    Raises:
        WeightsError: when the first (default) model cannot be loaded.
    """
    explainers: dict[str, Explainer] = {}
    unavailable: dict[str, str] = {}
    for i, name in enumerate(models):
        title = BACKBONES[name].title
        try:
            explainers[title] = Explainer(load_backbone(name, weights, compile=compile))
        except GradCAMError as exc:
            if i == 0:
                raise
            log.warning("%s is unavailable: %s", title, exc)
            unavailable[title] = "its weights could not be loaded"
    return DemoService(explainers, unavailable, workdir, store=store)
