"""Explaining images: preprocessing, class targets and the one engine call.

:class:`Explainer` ties a :class:`gradcam.backbone.Backbone` to the
:class:`gradcam.cam.GradCAM` engine and returns :class:`Explanation` objects
that carry everything later views need: one call computes the maps and, when
asked, the counterfactual maps, the maps of the best classes, the masking test,
the guided gradient, the trust check (:mod:`gradcam.trust`) and the other
methods' maps with their scores. The whole image is explained: it is resized keeping
its aspect ratio (shorter side 224 by default), never centre-cropped, so the
map lines up with every pixel of the upload; models that take one input size
only (vision transformers) get the image stretched to that size.

Image -> network image (uint8, input size) -> tensor -> CAMResult -> Explanation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch

from gradcam.backbone import Backbone
from gradcam.boxes import cam_to_boxes
from gradcam.cam import CAMResult, GradCAM
from gradcam.config import BOX_THRESHOLD, INPUT_MAX_LONG_SIDE, INPUT_MIN_SIDE, TOP_K
from gradcam.errors import UnknownClassError
from gradcam.explanation import ClassMap, Explanation, MaskingTest, Prediction, TrustCheck
from gradcam.faithfulness import Progress, blurred, run_masking_test
from gradcam.guided import guided_backprop
from gradcam.images import ImageSource, load_image
from gradcam.inference import predict
from gradcam.methods import CHEAP, Method, get_method
from gradcam.models import HookedVGG19
from gradcam.names import closest_hint, first_line
from gradcam.randomisation import Randomised
from gradcam.trust import BASELINES, LEVELS, STEPS, at_size, method_maps, trust_check

Target = int | str | None
log = logging.getLogger("gradcam")


def input_size(height: int, width: int, short_side: int = 224) -> tuple[int, int]:
    """Network input ``(height, width)``: shorter side ``short_side``, aspect ratio kept.

    The longer side is capped at ``INPUT_MAX_LONG_SIDE`` and neither side goes
    below ``INPUT_MIN_SIDE``; only images more elongated than that are stretched.
    """
    scale = short_side / min(height, width)
    scale = min(scale, INPUT_MAX_LONG_SIDE / max(height, width))
    return max(INPUT_MIN_SIDE, round(height * scale)), max(INPUT_MIN_SIDE, round(width * scale))


def resolve_class(categories: Sequence[str], target: int | str) -> int:
    """A class index from an index or a (case-insensitive) class name.

    Raises:
        UnknownClassError: for an index out of range or an unknown name; the
            message lists the closest names.
    """
    if isinstance(target, str) and target.strip().isdecimal():  # isdigit() accepts "²", which int() refuses
        target = int(target.strip())
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(categories):
            raise UnknownClassError(f"Class index {target} is out of range: use 0 to {len(categories) - 1}.")
        return int(target)
    if not isinstance(target, str):
        raise UnknownClassError(f"A class is a name or an index, not {type(target).__name__}.")
    wanted = " ".join(target.split()).lower()
    lowered = [name.lower() for name in categories]
    if wanted in lowered:
        return lowered.index(wanted)
    raise UnknownClassError(f"Unknown class {target!r}.{closest_hint(target, categories)}")


class Explainer:
    """Explains images with one backbone; safe to share between threads.

    The explainer runs the model, so it also pays the one-time costs at
    construction: one tiny explanation warms the engine up (the VGG19 weight
    sums, autograd's first-use state) so that the first request does not, and
    with ``compile`` (or ``backbone.compile``) VGG19's trunk is compiled with
    ``torch.compile``, falling back to eager with a warning.

    Args:
        backbone: the model to explain, from :func:`gradcam.load_backbone`.
        short_side: shorter side of the network input, in pixels (the
            backbone's own by default, 224 for ImageNet models).
        warm_up: run one tiny explanation now.
        compile: compile VGG19's convolutional trunk (the other backbones run
            through hooks and stay eager).
        method: the method :meth:`explain` uses when none is named (see :mod:`gradcam.methods`).
    """

    def __init__(
        self,
        backbone: Backbone,
        short_side: int | None = None,
        *,
        warm_up: bool = True,
        compile: bool = False,
        method: str = "gradcam",
    ) -> None:
        self.backbone = backbone
        self.short_side = short_side or backbone.short_side
        prefix_tokens = backbone.prefix_tokens if backbone.tokens else None
        self.cam = GradCAM(backbone.model, backbone.target_layer, prefix_tokens=prefix_tokens, method=method)
        self.device = next(backbone.model.parameters()).device
        self._mean = np.asarray(backbone.mean, dtype=np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(backbone.std, dtype=np.float32) * 255.0)
        if compile or backbone.compile:
            self._compile()
        if warm_up:
            self._warm_up()

    def _warm_up(self) -> None:
        height, width = self.backbone.fixed_size or (64, 64)
        x = torch.zeros(1, 3, height, width, device=self.device).contiguous(memory_format=torch.channels_last)
        self.cam.compute(x)

    def _compile(self) -> None:
        model = self.backbone.model
        if not isinstance(model, HookedVGG19):
            log.warning("compile only applies to VGG19; %s runs eagerly", self.backbone.title)
            return
        eager = model.features_conv
        try:
            model.features_conv = torch.compile(eager, dynamic=True)
            self._warm_up()  # compilation happens in the first call
        except Exception as exc:  # any compiler failure means: run eagerly
            log.warning("torch.compile is not available here (%s); running eagerly", first_line(exc))
            model.features_conv = eager

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input ``(height, width)`` for an image of that size."""
        return self.backbone.fixed_size or input_size(height, width, self.short_side)

    def network_image(self, image: np.ndarray) -> np.ndarray:
        """An RGB uint8 image resized to the network input, still RGB uint8 ``(h, w, 3)``."""
        height, width = self.network_size(*image.shape[:2])
        if (height, width) == image.shape[:2]:
            return image
        shrinking = height * width < image.shape[0] * image.shape[1]
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Equally sized network images to a normalised float batch ``(N, 3, h, w)``, channels-last, on the device."""
        batch = np.stack([(image.astype(np.float32) - self._mean) * self._inv_std for image in images])  # (N, h, w, 3)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)  # (N, 3, h, w), NHWC in memory

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 image to a normalised float tensor ``(1, 3, h, w)``, channels-last."""
        return self.to_tensor([self.network_image(image)])

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``(N, num_classes)`` of equally sized network images, one forward pass."""
        logits = predict(self.backbone.model, self.to_tensor(images))
        return logits.double().softmax(dim=1).cpu().numpy()

    def baseline(self, small: np.ndarray, kind: str = "mean") -> torch.Tensor:
        """What the trust check hides pixels with, preprocessed ``(1, 3, h, w)``: the mean colour (zeros after
        normalisation) or the masking test's blur of a network image."""
        return self.to_tensor([blurred(small)]) if kind == "blur" else torch.zeros_like(self.to_tensor([small]))

    def class_index(self, target: int | str) -> int:
        """The index of a class given by index or name (see :func:`resolve_class`)."""
        return resolve_class(self.backbone.categories, target)

    def explain(
        self,
        image: ImageSource,
        target: Target = None,
        *,
        top_k: int = TOP_K,
        threshold: float = BOX_THRESHOLD,
        counterfactual: bool = False,
        masking: bool = False,
        guided: bool = False,
        compare: int = 0,
        method: str | None = None,
        trust: bool = False,
        methods: bool | Sequence[str] = False,
        progress: Progress | None = None,
        time_limit: float | None = None,
    ) -> Explanation:
        """Explains one image for one class: everything later views need, in one call.

        Args:
            image: a path, file bytes, PIL image or RGB array (see :func:`gradcam.load_image`).
            target: None for the top prediction, a class index or a class name.
            top_k: how many predictions to report.
            threshold: box threshold, a fraction of the map's maximum.
            counterfactual: also compute the map of what speaks against the class.
            masking: also run the masking test (10 more forward passes at the
                network input's size, see :mod:`gradcam.faithfulness`).
            guided: also compute the guided-backpropagation gradient (one more
                forward and backward pass through the whole network).
            compare: also keep the maps of the ``compare`` best classes, from the same pass.
            method: the method (see :mod:`gradcam.methods`); the explainer's by default.
            trust: also run the trust check of the map (see :meth:`trust`: about 60 forward passes).
            methods: also make the class's map with each cheap method (True) or the methods named, from
                one more pass, each with its deletion and insertion curves (``2 * 20 - 1`` passes each).
            progress: called with the share of the work done, for long calls.
            time_limit: seconds Score-CAM's masked passes may take (see :meth:`gradcam.GradCAM.compute`).

        Returns:
            The explanation.

        Raises:
            InvalidImageError: the image cannot be used (see :func:`gradcam.load_image`).
            UnknownClassError: the target is not a class of the model.
            UnknownMethodError: an unknown method.
            NotAvailableError: ``guided`` for a model without a guided rule, ``counterfactual`` for a
                method without one.
            TimeLimitError: Score-CAM would take longer than ``time_limit``.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        engine = self.cam if method is None else self.cam.with_method(method)
        compared = (list(CHEAP) if methods is True else list(methods or ())) if methods is not False else []
        chosen = [get_method(name) for name in compared]  # unknown names fail before the model runs
        rgb = load_image(image)
        rgb.setflags(write=False)  # ours, shared by the explanation without a copy
        index = None if target is None else self.class_index(target)
        small = self.network_image(rgb)
        slow = engine.method.name == "scorecam"
        stages = _stages(progress, [0.5 if slow else 0.1, 0.3 if masking else 0.0, 1.0 if trust else 0.0,
                                    1.0 if chosen else 0.0])
        result = engine.compute(
            self.to_tensor([small]),
            [index],
            size=rgb.shape[:2],
            counterfactual=counterfactual,
            extra_top=compare,
            progress=stages[0] if slow else None,
            time_limit=time_limit,
        )
        explanation = self._explanation(rgb, small, result, top_k, threshold)
        if stages[0] is not None:
            stages[0](1.0)
        if guided:
            explanation = dataclasses.replace(explanation, guided=self._guided(small, explanation.class_index))
        if masking:
            test = self._masking(explanation, progress=stages[1])
            explanation = dataclasses.replace(explanation, masking=test)
        if trust:
            check = self._trust(
                small, explanation.cam, explanation.class_index, explanation.probability, engine.method,
                progress=stages[2], time_limit=time_limit,
            )
            explanation = dataclasses.replace(explanation, trust=check)
        if chosen:
            maps = method_maps(
                self.cam, self.to_tensor([small]), self.baseline(small), chosen, class_index=explanation.class_index,
                before=explanation.probability, size=rgb.shape[:2], progress=stages[3],
            )
            explanation = dataclasses.replace(explanation, methods=maps)
        return explanation

    def trust(
        self,
        image: ImageSource,
        cam: np.ndarray,
        target: Target = None,
        *,
        method: str | None = None,
        steps: int = STEPS,
        levels: Sequence[float] | None = LEVELS,
        baseline: str = "mean",
        sanity: bool = True,
        control: bool = True,
        seed: int = 0,
        randomised: Sequence[Randomised] | None = None,
        progress: Progress | None = None,
    ) -> TrustCheck:
        """The trust check of any map of an image: this method's, another's, a random baseline's.

        Every map is scored the same way, at the network input's size (see :mod:`gradcam.trust`):
        deletion and insertion (``2 * steps - 1`` forward passes), ROAD (``2 * len(levels)`` passes and as
        many imputations) and, for a map made by one of this package's methods on this model, the
        randomisation test (see :mod:`gradcam.randomisation`: three re-initialised copies of the model, each
        about 2 passes and one guided pass for Guided Backpropagation's control).

        Args:
            image: the image (see :func:`gradcam.load_image`).
            cam: its map, float ``(height, width)`` at the image's or the network input's size; higher is
                more important.
            target: the class the map explains (None: the top prediction), an index or a name.
            method: the method that made ``cam`` on this model, for the randomisation test; None (a map from
                elsewhere) leaves the test out.
            steps: deletion and insertion's steps.
            levels: ROAD's shares of pixels removed; None leaves ROAD out.
            baseline: what deletion hides pixels with and insertion reveals them on: "mean" (the dataset's
                mean colour) or "blur" (the masking test's blur of the image).
            sanity: run the randomisation test (with ``method``).
            control: with it, Guided Backpropagation's correlation too (where the model has a guided rule).
            seed: of ROAD's noise, and the first of the randomisation test's three draws of new weights.
            randomised: randomised copies made before (:func:`gradcam.randomisation.randomised_copy`), to share.
            progress: called with the share of the work done.

        Raises:
            ValueError: a map whose shape is neither the image's nor the network input's, another baseline.
        """
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}.")
        rgb = load_image(image)
        small = self.network_image(rgb)
        if cam.shape not in (rgb.shape[:2], small.shape[:2]):
            raise ValueError(f"The map {cam.shape} matches neither the image {rgb.shape[:2]} nor the input.")
        x = self.to_tensor([small])
        logits = predict(self.backbone.model, x)
        index = int(logits.argmax(1)[0]) if target is None else self.class_index(target)
        before = float(logits.double().softmax(dim=1)[0, index])
        engine = None if method is None or not sanity else get_method(method)
        return self._trust(
            small, cam, index, before, engine, steps=steps, levels=levels, baseline=baseline, control=control,
            seed=seed, randomised=randomised, progress=progress, extra_passes=1,
        )

    def masking_test(
        self,
        explanation: Explanation,
        *,
        steps: int = 8,
        region: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> MaskingTest:
        """The masking test of an explanation this explainer's model made, for another region if given.

        Args:
            explanation: the explanation to test.
            steps: points of the deletion curve after the start.
            region: a boolean mask ``(height, width)`` at the image's size to hide
                instead of the highlighted region.
            progress: called with the share of the work done.

        Raises:
            ValueError: when another model made the explanation, or for a region
                of the wrong shape.
        """
        self._check_made_here(explanation)
        return self._masking(explanation, steps=steps, region=region, progress=progress)

    def guided_gradient(self, explanation: Explanation) -> np.ndarray:
        """The guided-backpropagation gradient of an explanation's class, ``(h, w, 3)`` at the network input's size.

        Raises:
            ValueError: when another model made the explanation.
            NotAvailableError: for a model without a guided rule.
        """
        self._check_made_here(explanation)
        return self._guided(self.network_image(explanation.image), explanation.class_index)

    def _check_made_here(self, explanation: Explanation) -> None:
        if (explanation.model_name, explanation.weights) != (self.backbone.title, self.backbone.weights):
            raise ValueError(
                f"This explanation was made by {explanation.model_name} ({explanation.weights}), "
                f"not by this explainer's {self.backbone.title} ({self.backbone.weights})."
            )

    def _explanation(
        self, rgb: np.ndarray, small: np.ndarray, result: CAMResult, top_k: int, threshold: float
    ) -> Explanation:
        """The explanation of the first map of a one-image result; the maps after it are the compared classes."""
        categories = self.backbone.categories
        top_k = max(1, min(top_k, len(categories)))
        probabilities = torch.softmax(result.logits[0].double().cpu(), dim=0)
        best_p, best_i = probabilities.topk(top_k)
        ranking = tuple(Prediction(int(i), categories[int(i)], float(p)) for p, i in zip(best_p, best_i))
        classes = result.classes[0].tolist()
        maps, empty = result.maps[0].cpu(), result.empty[0].tolist()  # .cpu() copies nothing when already there
        counter = None if result.counter_maps is None else result.counter_maps[0, 0].cpu().numpy()
        compared = tuple(
            ClassMap(index, categories[index], float(probabilities[index]), maps[k].numpy(), empty[k])
            for k, index in enumerate(classes[1:], start=1)
        )
        cam = maps[0].numpy()  # the Explanation keeps a read-only copy
        return Explanation(
            image=rgb,
            cam=cam,
            class_index=classes[0],
            class_name=categories[classes[0]],
            probability=float(probabilities[classes[0]]),
            top_k=ranking,
            boxes=tuple(cam_to_boxes(cam, threshold)),
            threshold=threshold,
            model_name=self.backbone.title,
            layer_name=self.backbone.target_layer,
            weights=self.backbone.weights,
            untrained=self.backbone.untrained,
            cam_empty=empty[0],
            counter_cam=counter,
            counter_empty=result.counter_empty is not None and bool(result.counter_empty[0, 0]),
            input_size=(small.shape[0], small.shape[1]),
            classes=compared,
            method=result.method,
        )

    def _masking(
        self,
        explanation: Explanation,
        *,
        steps: int = 8,
        region: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> MaskingTest:
        def probabilities(images: list[np.ndarray]) -> np.ndarray:
            return self.probabilities([self.network_image(image) for image in images])

        return run_masking_test(
            probabilities,
            explanation.image,
            explanation.cam,
            class_index=explanation.class_index,
            class_name=explanation.class_name,
            before=explanation.probability,
            threshold=explanation.threshold,
            steps=steps,
            region=region,
            progress=progress,
        )

    def _trust(
        self,
        small: np.ndarray,
        cam: np.ndarray,
        index: int,
        before: float,
        method: Method | None,
        *,
        steps: int = STEPS,
        levels: Sequence[float] | None = LEVELS,
        baseline: str = "mean",
        control: bool = True,
        seed: int = 0,
        randomised: Sequence[Randomised] | None = None,
        progress: Progress | None = None,
        extra_passes: int = 0,
        time_limit: float | None = None,
    ) -> TrustCheck:
        return trust_check(
            self.backbone.model,
            self.to_tensor([small]),
            self.baseline(small, baseline),
            at_size(cam, small.shape[:2]),
            class_index=index,
            class_name=self.backbone.categories[index],
            before=before,
            engine=None if method is None else self.cam.with_method(method),
            baseline=baseline,
            steps=steps,
            levels=levels,
            control=control,
            seed=seed,
            randomised=randomised,
            progress=progress,
            extra_passes=extra_passes,
            time_limit=time_limit,
        )

    def _guided(self, small: np.ndarray, class_index: int) -> np.ndarray:
        gradient = guided_backprop(self.backbone.model, self.to_tensor([small]), class_index)  # (3, h, w)
        return gradient.float().permute(1, 2, 0).cpu().numpy()


def _stages(progress: Progress | None, weights: Sequence[float]) -> list[Progress | None]:
    """One progress callback per stage of a call, each mapping its own share done onto the whole's."""
    total = sum(weights)
    if progress is None or total <= 0:
        return [None] * len(weights)
    stages: list[Progress | None] = []
    start = 0.0
    for weight in weights:
        if weight <= 0:
            stages.append(None)
            continue
        stages.append(_stage(progress, start / total, weight / total))
        start += weight
    return stages


def _stage(progress: Progress, offset: float, share: float) -> Callable[[float], None]:
    return lambda done: progress(min(1.0, round(offset + share * done, 9)))
