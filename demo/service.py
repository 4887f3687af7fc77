"""Running explanations for the web app, independent of Gradio.

:class:`DemoService` answers the page's requests: it reads the upload, asks the
engine for one explanation (with everything the Explore views need), remembers
it in an :class:`demo.cache.ExplanationCache` so that a slider change re-renders
without running the model, draws the pictures with :mod:`gradcam.views`, takes
the sentences from :mod:`gradcam.words`, and writes each request's files into
its own folder. The models come from a :class:`demo.models.ModelSet`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gradcam import Explainer, Explanation, WeightsError, available_offline, describe_spec, load_backbone, load_image, views, words
from gradcam.boxes import box_iou
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA
from gradcam.errors import InvalidImageError
from gradcam.explanation import MaskingTest
from gradcam.save import save_explanation

from demo import guard
from demo.cache import ExplanationCache
from demo.files import OutputStore
from demo.gpu import on_gpu
from demo.errors import UserError
from demo.models import ModelSet
from demo.settings import CACHE_SIZE, MAX_SIDE
from demo.text import TOP_PREDICTION, top_k_label

__all__ = ["DemoService", "Rendered", "Shown", "UserError"]

log = logging.getLogger("demo")

#: Longest class or model name accepted (the echo in a message is shorter still).
MAX_CLASS_NAME = 200
#: Best classes kept with every explanation, for the class comparison.
COMPARED_CLASSES = 3

Progress = Callable[[float], None]
#: What an explanation is remembered by: the upload's SHA-256, the model's title, the class (None: the top one).
Key = tuple[str, str, int | None]


@dataclass(frozen=True)
class Rendered:
    """What one request returns: the explanation, its files and its words."""

    explanation: Explanation
    panels: dict[str, Path]
    archive: Path
    sentence: str
    label: dict[str, float]


@dataclass(frozen=True)
class Shown:
    """What the page shows first: the explanation, whether its class was asked for, light panel copies."""

    explanation: Explanation
    asked: bool
    display: dict[str, Path]
    key: Key


class DemoService:
    """Explains uploads with the loaded models; safe to call from several threads.

    Args:
        models: the models, a :class:`ModelSet` or ready explainers keyed by their title ("VGG19").
        unavailable: with explainers: models that failed to load, keyed by title, with the reason.
        workdir: where request folders are written (a new temporary folder by default;
            inside Gradio's cache folder, Gradio serves the files without copying them).
        cache_size: how many explanations are remembered for re-rendering.
        store: where request files are kept (by default an :class:`OutputStore` on ``workdir``).

    Every public method checks its settings first (:mod:`demo.guard`): a mistaken
    value gets one sentence for the person, the same on the page and through the API.
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
        if store is not None:
            self.workdir = store.root
        elif workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="gradcam-app-"))
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = store or OutputStore(self.workdir)
        self.cache = ExplanationCache(cache_size)
        self.model_runs = 0

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
        written = self.store.write_explanation(explanation, alpha, colormap, name)
        sentence = words.summary(explanation, asked, colormap).markdown
        return Rendered(explanation, written.panels, written.archive, sentence, top_k_label(explanation))

    def show(
        self,
        image: str | bytes | None,
        target: str | None = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        alpha: float = OVERLAY_ALPHA,
        colormap: str = COLORMAP,
    ) -> Shown:
        """What the page shows first: the explanation and light copies of the four panels.

        The full-quality files come after, from :meth:`files` with the returned key, without running the model again.

        Raises:
            UserError, GradCAMError: with a message for the person.
        """
        alpha, colormap = _look(alpha, colormap)
        explanation, asked, key = self._explanation(image, target, model, threshold)
        return Shown(explanation, asked, self.store.write_display(explanation, alpha, colormap), key)

    def files(self, key: Key, threshold: float, alpha: float, colormap: str, name: str = "image") -> Path | None:
        """The zip of a remembered explanation (see :meth:`show`'s ``key``); None once it is forgotten.

        Never runs the model, so the page can write the files beside the next explanation.

        Raises:
            UserError, GradCAMError: a setting that is not one (checked as :meth:`show` checks it), or a full store.
        """
        threshold = guard.number(threshold, "Box threshold", 0.0, 1.0)
        alpha, colormap = _look(alpha, colormap)
        explanation = self.cache.get(key)
        if explanation is None:
            return None
        if explanation.threshold != threshold:
            explanation = explanation.with_threshold(threshold)
        # One thread: the files are written while the person looks at the pictures, perhaps already moving a
        # slider; the browser and the next explanation keep the other cores.
        return self.store.write_explanation(explanation, alpha, colormap, name, workers=1).archive

    def explanation(
        self,
        image: str | bytes | None,
        target: str | None = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        *,
        counterfactual: bool = False,
        compare: bool = False,
        masking: bool = False,
        guided: bool = False,
        progress: Progress | None = None,
    ) -> tuple[Explanation, bool]:
        """The explanation of a request, remembered or computed; and whether the class was asked for.

        One engine call gives the map and what the Explore views asked for so far:
        the counterfactual map, the best classes' maps, the masking test, the guided
        gradient. A view asking for something the remembered explanation lacks gets
        one new engine call that keeps everything it had.

        Raises:
            UserError, GradCAMError: with a message for the person.
        """
        explanation, asked, _ = self._explanation(
            image, target, model, threshold, counterfactual=counterfactual, compare=compare, masking=masking,
            guided=guided, progress=progress,
        )
        return explanation, asked

    def _explanation(
        self,
        image: str | bytes | None,
        target: str | None = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        *,
        counterfactual: bool = False,
        compare: bool = False,
        masking: bool = False,
        guided: bool = False,
        progress: Progress | None = None,
    ) -> tuple[Explanation, bool, Key]:
        """:meth:`explanation`, and the key it is remembered by."""
        threshold = guard.number(threshold, "Box threshold", 0.0, 1.0)
        key, data = self._key_of(image, target, model)
        explainer, index = self.models.get(key[1]), key[2]
        asked = index is not None
        explanation = self.cache.get(key)
        if explanation is not None and explanation.threshold != threshold:
            explanation = explanation.with_threshold(threshold)
        had = explanation
        asks = {
            "counterfactual": counterfactual or (had is not None and had.counter_cam is not None),
            "compare": COMPARED_CLASSES if compare or (had is not None and had.classes) else 0,
            "masking": masking,  # only for the threshold it was made at: not kept
            "guided": guided or (had is not None and had.guided is not None),
        }
        lacking = had is None or (
            (counterfactual and had.counter_cam is None) or (compare and not had.classes)
            or (masking and had.masking is None) or (guided and had.guided is None)
        )
        if lacking:
            rgb = load_image(data, max_side=MAX_SIDE)
            explanation = _run_engine(explainer, rgb, index, threshold=threshold, progress=progress, **asks)
            self.model_runs += 1
            self.cache.put(key, explanation)
        assert explanation is not None
        return explanation, asked, key

    def masking(
        self,
        image: str | bytes | None,
        target: str | None = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        progress: Progress | None = None,
    ) -> tuple[MaskingTest, np.ndarray, np.ndarray, np.ndarray]:
        """Runs the masking test: the result, the image with the region hidden, with only the region kept, the curve."""
        explanation, _ = self.explanation(image, target, model, threshold, masking=True, progress=progress)
        assert explanation.masking is not None
        return (explanation.masking, *views.masking(explanation))

    def counterfactual(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None,
        alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """What speaks against the class: its heatmap, its overlay and a sentence."""
        alpha, colormap = _look(alpha, colormap)
        explanation, _ = self.explanation(image, target, model, counterfactual=True)
        heat, over = views.counterfactual(explanation, alpha, colormap)
        return heat, over, words.counterfactual(explanation).markdown

    def guided(self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None) -> np.ndarray:
        """Guided Grad-CAM: the fine detail inside the highlighted region."""
        explanation, _ = self.explanation(image, target, model, guided=True)
        return views.guided(explanation)

    def compare_classes(
        self, image: str | bytes | None, model: str | None = None, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
        top: int = COMPARED_CLASSES,
    ) -> list[tuple[np.ndarray, str]]:
        """The overlays of the best ``top`` classes, from the explanation's own pass, with captions."""
        alpha, colormap = _look(alpha, colormap)
        explanation, _ = self.explanation(image, None, model, compare=True)
        return [(picture, _caption(caption)) for picture, caption in views.classes(explanation, alpha, colormap)[:top]]

    def compare_models(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, threshold: float = BOX_THRESHOLD,
        alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> tuple[list[tuple[np.ndarray, str]], str]:
        """The same image through every loaded model: overlays with boxes, and how much the boxes agree (IoU)."""
        alpha, colormap = _look(alpha, colormap)
        results = {title: self.explanation(image, target, title, threshold)[0] for title in self.models.ready}
        pictures = [
            (views.boxed_overlay(e, alpha, colormap), f"{title}: {words.label(e.class_name, e.probability)}")
            for title, e in results.items()
        ]
        titles = list(results)
        overlaps = []
        for i, first in enumerate(titles):
            for second in titles[i + 1 :]:
                a, b = results[first].boxes, results[second].boxes
                overlaps.append((first, second, box_iou(a[0], b[0]) if a and b else None))
        return pictures, words.models_agreement(overlaps).plain

    def report(
        self, image: str | bytes | None, target: str | None = TOP_PREDICTION, model: str | None = None,
        threshold: float = BOX_THRESHOLD, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP,
    ) -> Path:
        """One PNG for slides: the four panels, the top-5 and the sentence."""
        alpha, colormap = _look(alpha, colormap)
        explanation, asked = self.explanation(image, target, model, threshold)
        folder = self.store.folder()
        try:
            path = folder / "gradcam-report.png"
            Image.fromarray(views.one_picture(explanation, alpha, colormap, asked=asked)).save(path)
        finally:
            self.store.done(folder)
        return path

    def forget(self) -> None:
        """Drops the remembered explanations: the next requests run the model."""
        self.cache.clear()

    def _key_of(self, image: str | bytes | None, target: str | None, model: str | None) -> tuple[Key, bytes]:
        """What a request's explanation is remembered by (the upload's SHA-256, the model's title, the class), and the upload.

        Raises:
            UserError, GradCAMError: with a message for the person.
        """
        target = guard.text(target, "Class to explain", MAX_CLASS_NAME, default=TOP_PREDICTION)
        title = guard.text(model, "Model", MAX_CLASS_NAME, default=self.default_model) or self.default_model
        explainer = self.models.get(title)
        asked = target not in (None, "", TOP_PREDICTION)
        index = explainer.class_index(target) if asked else None
        data = self._read(image)
        return (hashlib.sha256(data).hexdigest(), title, index), data  # titles are unique; backbone names need not be

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

    def close(self) -> None:
        """Deletes every file the service wrote."""
        self.store.close()


def _look(alpha: object, colormap: object) -> tuple[float, str]:
    """The overlay settings, checked: an opacity from 0 to 1 and a known colour map (None: the default)."""
    return guard.number(alpha, "Heatmap opacity", 0.0, 1.0), guard.colormap(colormap)


def _run_engine(explainer: Explainer, rgb: np.ndarray, index: int | None, **options: Any) -> Explanation:
    """The one engine call of a request (on a ZeroGPU Space, with a GPU attached for its duration)."""
    return explainer.explain(rgb, index, **options)


_run_engine = on_gpu(_run_engine)


def _caption(label: str) -> str:
    """ "tabby 61%" -> "tabby: 61%": the class and its probability, for a gallery caption."""
    name, _, share = label.rpartition(" ")
    return f"{name}: {share}"


def load_service(
    weights: str | None = None,
    models: tuple[str, ...] = ("vgg19", "resnet50", "densenet121"),
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
            then every model is untrained), or None for pretrained weights.
        models: model specs in page order (see :func:`gradcam.load_backbone`).
        workdir: where request folders are written.
        compile: compile VGG19's trunk with ``torch.compile`` at start-up (falls back to eager).
        device: where the models run ("cpu", "cuda").
        labels: class names for the first model (a fine-tuned one).
        layer: the first model's target layer.
        background: serve while the models after the default load.
        store: where request files are kept (default: an :class:`OutputStore` on ``workdir``).

    Raises:
        GradCAMError: when no model can be loaded.
    """

    def loader(spec: str, first: bool) -> Callable[[], Explainer]:
        def load() -> Explainer:
            try:
                if first:
                    backbone = load_backbone(spec, weights, labels, layer, device=device, progress=True)
                else:
                    backbone = load_backbone(spec, "random" if weights == "random" else None, device=device, progress=True)
            except WeightsError as exc:
                offline, reason = available_offline(spec)
                exc.reason = "its weights could not be loaded" if offline else reason  # type: ignore[attr-defined]
                raise
            return Explainer(backbone, compile=compile)

        return load

    loaders = [(describe_spec(spec), loader(spec, i == 0)) for i, spec in enumerate(models)]
    # Weights, labels or a layer given for the first model are the operator's choice: if they
    # fail, say so and stop, rather than serve another model.
    chosen = (weights not in (None, "random")) or labels is not None or layer is not None
    return DemoService(ModelSet.load(loaders, background=background, fallback=not chosen), workdir=workdir, store=store)
