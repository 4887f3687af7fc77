"""Explaining images: preprocessing, class targets and the one engine call.

:class:`Explainer` ties a :class:`gradcam.backbone.Backbone` to the
:class:`gradcam.cam.GradCAM` engine and returns :class:`Explanation` objects
that carry everything later views need: one call computes the maps and, when
asked, the counterfactual maps, the maps of the best classes, the masking test,
the guided gradient, the trust check (:mod:`gradcam.trust`) and the other
methods' maps with their scores. The whole image is explained: it is resized keeping
its aspect ratio (shorter side 224 by default), never centre-cropped, so the
map lines up with every pixel of the upload; models that take one input size
only (vision transformers), and backbones asked to (``resize="exact"``), get the
image stretched to that size. A grayscale model (one input channel) gets the
image in grayscale. Probabilities follow the backbone's head
(:mod:`gradcam.heads`): softmax, independent sigmoids, or a binary logit.

Image -> network image (uint8, input size) -> tensor -> CAMResult -> Explanation.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from gradcam.backbone import Backbone
from gradcam.boxes import cam_to_boxes
from gradcam.cam import CAMResult, GradCAM
from gradcam.config import BOX_THRESHOLD, TOP_K
from gradcam.explanation import ClassMap, Explanation, MaskingTest, Prediction, TrustCheck
from gradcam.faithfulness import Progress, blurred, run_masking_test, split_progress
from gradcam.guided import guided_backprop
from gradcam.heads import probabilities as head_probabilities
from gradcam.images import ImageSource, load_image
from gradcam.inference import predict
from gradcam.layers import TargetLayer, candidate_layers, find_layer
from gradcam.layout import Layout
from gradcam.methods import CHEAP, get_method
from gradcam.models import HookedVGG19
from gradcam.names import first_line, resolve_class
from gradcam.preprocess import LUMA, input_channels, input_size
from gradcam.randomisation import Randomised
from gradcam.trust import BASELINES, LEVELS, STEPS, at_size, method_maps, trust_check

Target = int | str | None
log = logging.getLogger("gradcam")


class Explainer:
    """Explains images with one backbone; safe to share between threads.

    The explainer runs the model, so it also pays the one-time costs at
    construction: one tiny explanation warms the engine up (the VGG19 weight
    sums, autograd's first-use state) so that the first request does not, and
    with ``compile`` (or ``backbone.compile``) VGG19's trunk is compiled with
    ``torch.compile``, falling back to eager with a warning. Another layer than
    the backbone's can be asked for per call (``explain(..., layer=...)``): its
    engine is made once, its layout traced once, and kept. A backbone filled in by
    hand without a layout gets its layer's layout traced here (two dry passes).

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
        self.channels = backbone.channels or input_channels(backbone.model)
        layout, prefix = backbone.layout, backbone.prefix_tokens
        if layout is None:  # a backbone filled in by hand: its layer's layout is traced, not assumed
            traced = find_layer(
                backbone.model, self._dry_size(), backbone.target_layer, channels=self.channels,
                fixed_size=backbone.strict_size,
            )
            layout, prefix = traced.layout, traced.prefix_tokens
        self.cam = GradCAM(
            backbone.model, backbone.target_layer, prefix_tokens=prefix if layout is Layout.TOKENS else None,
            layout=layout, method=method,
        )
        self._cams: dict[str, GradCAM] = {backbone.target_layer: self.cam}
        self._cams_lock = threading.Lock()
        self._layers: dict[str, TargetLayer] | None = None  # the readable layers, once asked for
        self.device = next(backbone.model.parameters()).device
        if len(backbone.mean) != self.channels or len(backbone.std) != self.channels:
            raise ValueError(
                f"The backbone's mean and std have {len(backbone.mean)} and {len(backbone.std)} values; "
                f"its model takes {self.channels} input channels."
            )
        self._mean = np.asarray(backbone.mean, dtype=np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(backbone.std, dtype=np.float32) * 255.0)
        self._luma = np.asarray(LUMA, dtype=np.float32)[:, None]  # (3, 1)
        if compile or backbone.compile:
            self._compile()
        if warm_up:
            self._warm_up()

    def _warm_up(self) -> None:
        height, width = self.backbone.fixed_size or (64, 64)
        x = torch.zeros(1, self.channels, height, width, device=self.device)
        self.cam.compute(x.contiguous(memory_format=torch.channels_last))

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
        """Equally sized RGB network images to a normalised float batch ``(N, C, h, w)``, channels-last, on the device.

        ``C`` is the model's input channels: 3, or 1 for a grayscale model (the images' luma).
        """
        if self.channels == 1:
            batch = np.stack([(image.astype(np.float32) @ self._luma - self._mean) * self._inv_std for image in images])
        else:
            batch = np.stack([(image.astype(np.float32) - self._mean) * self._inv_std for image in images])
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)  # (N, C, h, w), NHWC in memory

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 image to a normalised float tensor ``(1, C, h, w)``, channels-last."""
        return self.to_tensor([self.network_image(image)])

    def probabilities_of(self, logits: torch.Tensor) -> np.ndarray:
        """Class probabilities ``(N, num_classes)``, float64, of logits by the backbone's head (see gradcam.heads)."""
        return head_probabilities(logits.cpu(), self.backbone.head).numpy()

    def probabilities(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` of equally sized network images, one forward pass (head's rule)."""
        return self.probabilities_of(predict(self.backbone.model, self.to_tensor(images)))

    def cam_for(self, layer: str | None = None) -> GradCAM:
        """The engine of a layer (the backbone's for None), made once: its layout traced by one dry pass, then kept.

        Raises:
            UnknownLayerError: for a layer the model does not have or that cannot be
                explained; the message lists the closest names.
        """
        if layer is None or layer == self.backbone.target_layer:
            return self.cam
        with self._cams_lock:
            found = self._cams.get(layer)
            if found is None:
                traced = (self._layers or {}).get(layer) or find_layer(
                    self.backbone.model, self._dry_size(), layer, channels=self.channels,
                    fixed_size=self.backbone.strict_size,
                )
                prefix = traced.prefix_tokens if traced.layout is Layout.TOKENS else None
                found = GradCAM(self.backbone.model, traced.name, prefix_tokens=prefix, layout=traced.layout)
                self._cams[layer] = found
        return found

    def layers(self) -> tuple[str, ...]:
        """The layers a person may pick, the backbone's own first (see :func:`gradcam.layers.candidate_layers`).

        Found by dry passes the first time, then kept; their layouts too, so that
        :meth:`cam_for` needs no other pass for them.
        """
        with self._cams_lock:
            if self._layers is None:
                found = candidate_layers(
                    self.backbone.model, self._dry_size(), channels=self.channels, fixed_size=self.backbone.strict_size
                )
                own = self.backbone.target_layer
                self._layers = {layer.name: layer for layer in found if layer.name != own}
            return (self.backbone.target_layer, *self._layers)

    def _dry_size(self) -> tuple[int, int]:
        return self.backbone.fixed_size or (self.short_side, self.short_side)

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
        layer: str | None = None,
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
            layer: the layer to read (see :meth:`cam_for`); None: the backbone's.

        Returns:
            The explanation.

        Raises:
            InvalidImageError: the image cannot be used (see :func:`gradcam.load_image`).
            UnknownClassError: the target is not a class of the model.
            UnknownMethodError: an unknown method.
            UnknownLayerError: the layer cannot be explained.
            NotAvailableError: ``guided`` for a model without a guided rule, ``counterfactual`` for a
                method without one.
            TimeLimitError: Score-CAM would take longer than ``time_limit``.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        cam = self.cam_for(layer)
        engine = cam if method is None else cam.with_method(method)
        compared = (list(CHEAP) if methods is True else list(methods or ())) if methods is not False else []
        chosen = [get_method(name) for name in compared]  # unknown names fail before the model runs
        rgb = load_image(image)
        rgb.setflags(write=False)  # ours, shared by the explanation without a copy
        index = None if target is None else self.class_index(target)
        small = self.network_image(rgb)
        slow = engine.method.name == "scorecam"
        stages = split_progress(progress, [0.5 if slow else 0.1, 0.3 if masking else 0.0, 1.0 if trust else 0.0,
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
        explanation = self._explanation(rgb, small, result, top_k, threshold, engine.target_layer)
        if stages[0] is not None:
            stages[0](1.0)
        if guided:
            explanation = dataclasses.replace(explanation, guided=self._guided(small, explanation.class_index))
        if masking:
            test = self._masking(explanation, progress=stages[1])
            explanation = dataclasses.replace(explanation, masking=test)
        if trust:
            check = self._trust(
                small, explanation.cam, explanation.class_index, explanation.probability, engine,
                progress=stages[2], time_limit=time_limit,
            )
            explanation = dataclasses.replace(explanation, trust=check)
        if chosen:
            maps = method_maps(
                cam, self.to_tensor([small]), self.baseline(small), chosen, class_index=explanation.class_index,
                before=explanation.probability, size=rgb.shape[:2], progress=stages[3], head=self.backbone.head,
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
        layer: str | None = None,
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
            layer: the layer that made ``cam`` (see :meth:`cam_for`); None: the backbone's.
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
        before = float(self.probabilities_of(logits)[0, index])
        engine = None if method is None or not sanity else self.cam_for(layer).with_method(method)
        return self._trust(
            small, cam, index, before, engine, steps=steps, levels=levels, baseline=baseline, control=control,
            seed=seed, randomised=randomised, progress=progress, extra_passes=1,
        )

    def explain_frames(
        self,
        frames: Sequence[np.ndarray],
        target: Target = None,
        *,
        top_k: int = TOP_K,
        threshold: float = BOX_THRESHOLD,
        layer: str | None = None,
        method: str | None = None,
    ) -> list[Explanation]:
        """Explains equally sized RGB frames (a video's) for one class, in one engine call.

        Each explanation equals what :meth:`explain` gives for that frame alone (the
        maps within float rounding: the frames share one batched pass).

        Args:
            frames: RGB uint8 arrays ``(height, width, 3)``, all of one size.
            target: None for each frame's top prediction, a class index or a class name.
            top_k: how many predictions to report.
            threshold: box threshold, a fraction of the map's maximum.
            layer: the layer to read (see :meth:`cam_for`); None: the backbone's.
            method: the method (see :mod:`gradcam.methods`); the explainer's by default.

        Raises:
            ValueError: no frames, frames that are not RGB uint8 or not all of one size, or a
                threshold outside [0, 1].
            UnknownClassError: the target is not a class of the model.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        if not frames:
            raise ValueError("explain_frames needs at least one frame.")
        shape = frames[0].shape
        if any(f.dtype != np.uint8 or f.ndim != 3 or f.shape != shape or shape[2] != 3 for f in frames):
            raise ValueError("The frames must be RGB uint8 arrays (height, width, 3) of one size.")
        index = None if target is None else self.class_index(target)
        images = [_read_only(frame) for frame in frames]
        smalls = [self.network_image(image) for image in images]
        cam = self.cam_for(layer) if method is None else self.cam_for(layer).with_method(method)
        result = cam.compute(self.to_tensor(smalls), [index] * len(images), size=shape[:2])
        return [
            self._explanation(image, small, result, top_k, threshold, cam.target_layer, row=row)
            for row, (image, small) in enumerate(zip(images, smalls))
        ]

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
        self,
        rgb: np.ndarray,
        small: np.ndarray,
        result: CAMResult,
        top_k: int,
        threshold: float,
        layer: str,
        row: int = 0,
    ) -> Explanation:
        """The explanation of image ``row``'s first map in a result; the maps after it are the compared classes."""
        categories = self.backbone.categories
        top_k = max(1, min(top_k, len(categories)))
        probabilities = torch.from_numpy(self.probabilities_of(result.logits[row : row + 1]))[0]
        best_p, best_i = probabilities.topk(top_k)
        ranking = tuple(Prediction(int(i), categories[int(i)], float(p)) for p, i in zip(best_p, best_i))
        classes = result.classes[row].tolist()
        maps, empty = result.maps[row].cpu(), result.empty[row].tolist()  # .cpu() copies nothing when already there
        counter = None if result.counter_maps is None else result.counter_maps[row, 0].cpu().numpy()
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
            layer_name=layer,
            weights=self.backbone.weights,
            untrained=self.backbone.untrained,
            cam_empty=empty[0],
            counter_cam=counter,
            counter_empty=result.counter_empty is not None and bool(result.counter_empty[row, 0]),
            input_size=(small.shape[0], small.shape[1]),
            classes=compared,
            method=result.method,
            head=self.backbone.head,
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
        self, small: np.ndarray, cam: np.ndarray, index: int, before: float, engine: GradCAM | None, **options: Any
    ) -> TrustCheck:
        """:func:`gradcam.trust.trust_check` of a map on a network image, with its options (steps, levels...)."""
        return trust_check(
            self.backbone.model, self.to_tensor([small]), self.baseline(small, options.get("baseline", "mean")),
            at_size(cam, small.shape[:2]), class_index=index, class_name=self.backbone.categories[index],
            before=before, engine=engine, head=self.backbone.head, **options,
        )

    def _guided(self, small: np.ndarray, class_index: int) -> np.ndarray:
        gradient = guided_backprop(self.backbone.model, self.to_tensor([small]), class_index)  # (C, h, w)
        picture = gradient.float().permute(1, 2, 0).cpu().numpy()  # (h, w, C)
        return np.repeat(picture, 3, axis=2) if picture.shape[2] == 1 else picture  # a grayscale model's, as RGB



def _read_only(image: np.ndarray) -> np.ndarray:
    """A read-only copy of a caller's array (the explanation keeps it without another copy)."""
    copy = np.array(image, copy=True)
    copy.setflags(write=False)
    return copy
