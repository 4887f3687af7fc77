"""The result objects that flow from the engine to the views, the CLI, the files and the app.

One engine call (:meth:`gradcam.Explainer.explain`) returns an
:class:`Explanation` holding everything later pictures and sentences need: the
image, the map, the predictions, and on request the counterfactual map, the
masking test, the guided gradient and the maps of the best classes. Nothing
downstream runs the model again.

These are data: their pictures are drawn by :mod:`gradcam.views`, their
sentences written by :mod:`gradcam.words`, their manifests by :mod:`gradcam.save`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from gradcam.boxes import Box, cam_to_boxes
from gradcam.heads import Head

#: The four pictures of every explanation, in the order they are shown and saved (:func:`gradcam.views.panels`).
PANELS = ("original", "heatmap", "overlay", "boxes")


@dataclass(frozen=True)
class Prediction:
    """One class with the model's probability for it."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class ClassMap:
    """The map of one of the best classes, from the same forward pass as the explanation.

    Attributes:
        index: the class.
        name: its name.
        probability: the model's probability for it.
        cam: its map at the image's size, float32 ``(height, width)`` in [0, 1].
        empty: True when nothing speaks for the class.
    """

    index: int
    name: str
    probability: float
    cam: np.ndarray = field(repr=False)
    empty: bool = False


@dataclass(frozen=True)
class MaskingTest:
    """What happened to the class probability when parts of the image were hidden.

    Attributes:
        class_index: the class tested.
        class_name: its name.
        before: probability with the whole image.
        hidden: probability with the highlighted region hidden.
        kept: probability with only the highlighted region kept (the rest hidden).
        region_fraction: share of the image in the highlighted region.
        fractions: deletion curve, share of the pixels removed (most important first).
        curve: deletion curve, the probability at each share.
        hidden_image: the image the model saw with the region hidden, RGB uint8.
        kept_image: the image the model saw with only the region kept, RGB uint8.
    """

    class_index: int
    class_name: str
    before: float
    hidden: float
    kept: float
    region_fraction: float
    fractions: tuple[float, ...]
    curve: tuple[float, ...]
    hidden_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    kept_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def deletion_area(self) -> float:
        """Area under the deletion curve, relative to the starting probability (lower: the map found what matters)."""
        if self.before <= 0:
            return 0.0
        return float(np.trapezoid(self.curve, self.fractions) / self.before)


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM explanation of one image for one class; its arrays are read-only.

    Attributes:
        image: the explained image, RGB uint8 ``(height, width, 3)``.
        cam: the Grad-CAM map at the image's size, float32 ``(height, width)`` in [0, 1].
        class_index: the explained class.
        class_name: its name.
        probability: the model's probability for it, by its head's rule (:attr:`head`).
        top_k: the best classes, most probable first.
        boxes: ``(x0, y0, x1, y1)`` boxes around the highlighted region, corners inclusive.
        threshold: fraction of the map's maximum used for the boxes.
        model_name: the backbone, for people ("VGG19").
        layer_name: the layer the map was read from.
        weights: where the weights came from.
        untrained: True when the weights are random: the result means nothing.
        cam_empty: True when no region speaks for the class (the map is all zeros).
        counter_cam: the counterfactual map (negated gradients: the regions that
            speak against the class), float32 ``(height, width)`` in [0, 1], when computed.
        counter_empty: True when no region speaks against the class.
        input_size: ``(height, width)`` of the network input the model saw.
        masking: the masking test, when asked for.
        guided: the guided-backpropagation gradient of the class score at the
            network input's size, float32 ``(h, w, 3)``, when asked for.
        classes: the maps of the best classes from the same pass, when asked for.
        head: how the model's logits became probabilities: softmax (they sum to one),
            sigmoid (multi-label: each class on its own) or binary (one logit, two classes).
    """

    image: np.ndarray
    cam: np.ndarray
    class_index: int
    class_name: str
    probability: float
    top_k: tuple[Prediction, ...]
    boxes: tuple[Box, ...]
    threshold: float
    model_name: str
    layer_name: str
    weights: str
    untrained: bool
    cam_empty: bool
    counter_cam: np.ndarray | None = None
    counter_empty: bool = False
    input_size: tuple[int, int] | None = None
    masking: MaskingTest | None = field(default=None, compare=False)
    guided: np.ndarray | None = field(default=None, compare=False, repr=False)
    classes: tuple[ClassMap, ...] = field(default=(), compare=False, repr=False)
    head: Head = Head.SOFTMAX

    def __post_init__(self) -> None:
        for cam in (self.cam, self.counter_cam):
            if cam is not None and self.image.shape[:2] != cam.shape:
                raise ValueError(f"The map {cam.shape} does not match the image {self.image.shape[:2]}.")
        for name in ("image", "cam", "counter_cam", "guided"):
            array = getattr(self, name)
            if array is None:
                continue
            if array.flags.writeable:  # keep a read-only copy; the caller's array stays theirs
                array = array.copy()
                array.setflags(write=False)
                object.__setattr__(self, name, array)

    def with_threshold(self, threshold: float, *, all_regions: bool = False) -> Explanation:
        """The same explanation with boxes recomputed at another threshold (the model is not run).

        A masking test made at the old threshold hid another region, so it is dropped.
        """
        boxes = tuple(cam_to_boxes(self.cam, threshold, all_regions=all_regions))
        masking = self.masking if threshold == self.threshold else None
        return dataclasses.replace(self, boxes=boxes, threshold=threshold, masking=masking)
