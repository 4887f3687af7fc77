"""Explaining images: preprocessing, class targets and the Grad-CAM call.

:class:`Explainer` ties a :class:`gradcam.models.Backbone` to the
:class:`gradcam.cam.GradCAM` engine and returns :class:`Explanation` objects.
The whole image is explained: it is resized keeping its aspect ratio (shorter
side 224 by default), never centre-cropped, so the map lines up with every
pixel of the upload.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from gradcam.boxes import cam_to_boxes
from gradcam.cam import CAMResult, GradCAM
from gradcam.config import BOX_THRESHOLD, INPUT_MAX_LONG_SIDE, INPUT_MIN_SIDE, INPUT_SHORT_SIDE, TOP_K
from gradcam.errors import UnknownClassError
from gradcam.explanation import Explanation, Prediction
from gradcam.images import ImageSource, load_image
from gradcam.models import Backbone, HookedVGG19

Target = int | str | None
log = logging.getLogger("gradcam")


def input_size(height: int, width: int, short_side: int = INPUT_SHORT_SIDE) -> tuple[int, int]:
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
    close = difflib.get_close_matches(wanted, lowered, n=5, cutoff=0.6)
    close += [name for name in lowered if wanted and wanted in name and name not in close][: 5 - len(close)]
    hint = f" Closest: {', '.join(categories[lowered.index(name)] for name in close)}." if close else ""
    raise UnknownClassError(f"Unknown class {target!r}.{hint}")


class Explainer:
    """Explains images with one backbone; safe to share between threads.

    The explainer runs the model, so it also pays the one-time costs at
    construction: one tiny explanation warms the engine up (the VGG19 weight
    sums, autograd's first-use state) so that the first request does not, and
    with ``compile`` (or ``backbone.compile``) VGG19's trunk is compiled with
    ``torch.compile``, falling back to eager with a warning.

    Args:
        backbone: the model to explain, from :func:`gradcam.load_backbone`.
        short_side: shorter side of the network input, in pixels.
        warm_up: run one tiny explanation now.
        compile: compile VGG19's convolutional trunk (the other backbones run
            through hooks and stay eager).
    """

    def __init__(
        self, backbone: Backbone, short_side: int = INPUT_SHORT_SIDE, *, warm_up: bool = True, compile: bool = False
    ) -> None:
        self.backbone = backbone
        self.short_side = short_side
        self.cam = GradCAM(backbone.model, backbone.target_layer)
        self.device = next(backbone.model.parameters()).device
        self._mean = np.asarray(backbone.mean, dtype=np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(backbone.std, dtype=np.float32) * 255.0)
        if compile or backbone.compile:
            self._compile()
        if warm_up:
            self._warm_up()

    def _warm_up(self) -> None:
        x = torch.zeros(1, 3, 64, 64, device=self.device).contiguous(memory_format=torch.channels_last)
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
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("torch.compile is not available here (%s); running eagerly", reason)
            model.features_conv = eager

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 image to a normalised float tensor ``(1, 3, h, w)``, channels-last."""
        height, width = input_size(*image.shape[:2], self.short_side)
        shrinking = height * width < image.shape[0] * image.shape[1]
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        normalised = (resized.astype(np.float32) - self._mean) * self._inv_std  # (h, w, 3)
        x = torch.from_numpy(normalised).permute(2, 0, 1).unsqueeze(0)  # (1, 3, h, w), NHWC in memory
        return x.to(self.device)

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
    ) -> Explanation:
        """Explains one image for one class.

        Args:
            image: a path, file bytes, PIL image or RGB array (see :func:`gradcam.load_image`).
            target: None for the top prediction, a class index or a class name.
            top_k: how many predictions to report.
            threshold: box threshold, a fraction of the map's maximum.
            counterfactual: also compute the map of what speaks against the class.

        Returns:
            The explanation.

        Raises:
            InvalidImageError: the image cannot be used (see :func:`gradcam.load_image`).
            UnknownClassError: the target is not a class of the model.
        """
        return self.explain_classes(image, [target], top_k=top_k, threshold=threshold, counterfactual=counterfactual)[0]

    def explain_classes(
        self,
        image: ImageSource,
        targets: Sequence[Target] | None = None,
        *,
        top: int = 3,
        top_k: int = TOP_K,
        threshold: float = BOX_THRESHOLD,
        counterfactual: bool = False,
    ) -> list[Explanation]:
        """Explains one image for several classes from one forward pass.

        Args:
            image: as for :meth:`explain`.
            targets: the classes (None in the list stands for the top prediction);
                None for the ``top`` best classes.
            top: how many best classes when ``targets`` is None.
            top_k: how many predictions to report.
            threshold: box threshold, a fraction of the map's maximum.
            counterfactual: also compute the maps of what speaks against each class.

        Returns:
            One explanation per class, in the order asked.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        rgb = load_image(image)
        rgb.setflags(write=False)  # ours, shared by every explanation below without copies
        categories = self.backbone.categories
        top_k = max(1, min(top_k, len(categories)))
        x = self.preprocess(rgb)
        fixed = None if targets is None else [None if t is None else self.class_index(t) for t in targets]
        if fixed is not None and not fixed:
            raise ValueError("Give at least one target, or None for the best classes.")
        result = self.cam.compute(x, None if fixed is None else [fixed], top=top, size=rgb.shape[:2], counterfactual=counterfactual)
        fields = (getattr(result, field.name) for field in dataclasses.fields(result))
        result = CAMResult(*(None if t is None else t.cpu() for t in fields))  # no copy when already there
        probabilities = torch.softmax(result.logits[0].double(), dim=0)
        best_p, best_i = probabilities.topk(top_k)
        ranking = tuple(Prediction(int(i), categories[int(i)], float(p)) for p, i in zip(best_p, best_i))
        explanations = []
        for k, index in enumerate(result.classes[0].tolist()):
            cam = result.maps[0, k].numpy()  # the Explanation keeps a read-only copy
            explanations.append(
                Explanation(
                    image=rgb,
                    cam=cam,
                    class_index=index,
                    class_name=categories[index],
                    probability=float(probabilities[index]),
                    top_k=ranking,
                    boxes=tuple(cam_to_boxes(cam, threshold)),
                    threshold=threshold,
                    model_name=self.backbone.title,
                    layer_name=self.backbone.target_layer,
                    weights=self.backbone.weights,
                    untrained=self.backbone.untrained,
                    cam_empty=bool(result.empty[0, k]),
                    counter_cam=None if result.counter_maps is None else result.counter_maps[0, k].numpy(),
                    counter_empty=result.counter_empty is not None and bool(result.counter_empty[0, k]),
                )
            )
        return explanations
