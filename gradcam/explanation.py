"""The result object that flows from the engine to the CLI, the files and the app."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gradcam.boxes import Box, cam_to_boxes
from gradcam.config import COLORMAP, OVERLAY_ALPHA
from gradcam.render import blend, draw_boxes, heatmap, overlay

PANELS = ("original", "heatmap", "overlay", "boxes")


def percent(probability: float) -> str:
    """A probability for people: "87%", or "0.4%" below one percent."""
    return f"{probability:.0%}" if probability >= 0.01 or probability == 0 else f"{probability:.1%}"


@dataclass(frozen=True)
class Prediction:
    """One class with the model's probability for it."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM explanation of one image for one class; its arrays are read-only.

    Attributes:
        image: the explained image, RGB uint8 ``(height, width, 3)``.
        cam: the Grad-CAM map at the image's size, float32 ``(height, width)`` in [0, 1].
        class_index: the explained class.
        class_name: its name.
        probability: the model's softmax probability for it.
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

    def __post_init__(self) -> None:
        for cam in (self.cam, self.counter_cam):
            if cam is not None and self.image.shape[:2] != cam.shape:
                raise ValueError(f"The map {cam.shape} does not match the image {self.image.shape[:2]}.")
        for field in ("image", "cam", "counter_cam"):
            array = getattr(self, field)
            if array is None:
                continue
            if array.flags.writeable:  # keep a read-only copy; the caller's array stays theirs
                array = array.copy()
                array.setflags(write=False)
                object.__setattr__(self, field, array)

    @property
    def label(self) -> str:
        """Short label for the box, for example ``"tabby 87%"``."""
        suffix = " (untrained)" if self.untrained else ""
        return f"{self.class_name} {percent(self.probability)}{suffix}"

    def heatmap(self, colormap: str = COLORMAP) -> np.ndarray:
        """The map in colour, RGB uint8."""
        return heatmap(self.cam, colormap)

    def overlay(self, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> np.ndarray:
        """The coloured map blended over the image, RGB uint8."""
        return overlay(self.image, self.cam, alpha, colormap)

    def boxed(self) -> np.ndarray:
        """The image with the boxes and the label drawn on it, RGB uint8."""
        return draw_boxes(self.image, self.boxes, self.label)

    def panels(self, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> dict[str, np.ndarray]:
        """The four pictures, keyed by ``PANELS``: original, heatmap, overlay, boxes."""
        colours = heatmap(self.cam, colormap)
        return {
            "original": self.image,
            "heatmap": colours,
            "overlay": blend(self.image, colours, alpha),
            "boxes": self.boxed(),
        }

    def counter_overlay(self, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> np.ndarray:
        """The counterfactual map blended over the image, RGB uint8.

        Raises:
            ValueError: when the explanation was made without ``counterfactual=True``.
        """
        if self.counter_cam is None:
            raise ValueError("This explanation has no counterfactual map: explain with counterfactual=True.")
        return overlay(self.image, self.counter_cam, alpha, colormap)

    def with_threshold(self, threshold: float, *, all_regions: bool = False) -> Explanation:
        """The same explanation with boxes recomputed at another threshold (the model is not run)."""
        boxes = tuple(cam_to_boxes(self.cam, threshold, all_regions=all_regions))
        return dataclasses.replace(self, boxes=boxes, threshold=threshold)
