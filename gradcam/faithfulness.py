"""Does the highlighted region really matter? A masking test and a deletion curve.

Grad-CAM shows where the evidence for a class lies; this module checks it by
intervention, in the spirit of the deletion metric of Petsiuk et al. (RISE,
BMVC 2018): hide the highlighted region (fill it with a blur of the image) and
run the model again; keep only that region; and remove the most important
pixels step by step, watching the class probability fall.

The variants are made at the image's own size (so the pictures show what was
hidden) and resized to the network input like any image: the whole test costs
``2 + steps`` forward passes at the input size (10 by default), in a few
batches; the probability with the whole image is the explanation's own.
:meth:`gradcam.Explainer.explain` runs it with ``masking=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import cv2
import numpy as np

from gradcam.explanation import Explanation, MaskingTest

__all__ = ["MaskingTest", "blurred", "highlighted_region", "masking_test", "ranks", "run_masking_test"]

#: Images per forward pass of the masking test: progress is reported after each batch.
BATCH = 4

Probabilities = Callable[[list[np.ndarray]], np.ndarray]
Progress = Callable[[float], None]


class Tester(Protocol):
    """Whatever runs the model of an explanation (a :class:`gradcam.Explainer`)."""

    def masking_test(
        self, explanation: Explanation, *, steps: int = 8, region: np.ndarray | None = None
    ) -> MaskingTest: ...


def blurred(image: np.ndarray) -> np.ndarray:
    """A strong blur of the image: what hidden pixels are filled with (keeps colours, removes shapes)."""
    sigma = max(image.shape[:2]) / 25
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def ranks(cam: np.ndarray, *, descending: bool = True) -> np.ndarray:
    """Each pixel's rank in the map, flat ``(height * width,)``: 0 for the most important (``descending``)
    or the least important pixel; tied pixels in row-major order. The order every removal here follows."""
    order = np.argsort(-cam if descending else cam, axis=None, kind="stable")
    ranked = np.empty(order.size, dtype=np.int64)
    ranked[order] = np.arange(order.size)
    return ranked


def highlighted_region(cam: np.ndarray | Explanation, threshold: float | None = None) -> np.ndarray:
    """The boolean mask ``(height, width)`` of the map at or above ``threshold`` times its maximum.

    Args:
        cam: a map, or an explanation (its map and its box threshold).
        threshold: fraction of the maximum; the explanation's threshold by default.

    Returns:
        The mask; all False for an empty map.
    """
    if isinstance(cam, Explanation):
        threshold = cam.threshold if threshold is None else threshold
        cam = cam.cam
    if threshold is None:
        raise ValueError("Give a threshold with a bare map.")
    peak = float(cam.max())
    if peak <= 0:
        return np.zeros(cam.shape, dtype=bool)
    return cam >= threshold * peak


def run_masking_test(
    probabilities: Probabilities,
    image: np.ndarray,
    cam: np.ndarray,
    *,
    class_index: int,
    class_name: str,
    before: float,
    threshold: float,
    steps: int = 8,
    region: np.ndarray | None = None,
    progress: Progress | None = None,
) -> MaskingTest:
    """The masking test of an image and its map.

    Args:
        probabilities: softmax probabilities ``(N, num_classes)`` of equally sized RGB images.
        image: the explained image, RGB uint8 ``(height, width, 3)``.
        cam: its map, float32 ``(height, width)``.
        class_index: the class tested.
        class_name: its name.
        before: the probability with the whole image (from the explanation's own pass).
        threshold: the region is the map at or above this fraction of its maximum.
        steps: points of the deletion curve after the start.
        region: a boolean mask ``(height, width)`` to hide instead of the highlighted region.
        progress: called with the share of the work done after each batch.

    Returns:
        The probabilities before and after, and the two images the model saw.

    Raises:
        ValueError: for a region of the wrong shape or fewer than one step.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    if region is None:
        region = highlighted_region(cam, threshold)
    if region.shape != cam.shape:
        raise ValueError(f"The region {region.shape} does not match the image {cam.shape}.")
    fill = blurred(image)
    inside = region[:, :, None]
    variants = [np.where(inside, fill, image), np.where(inside, image, fill)]
    rank = ranks(cam).reshape(cam.shape)  # most important pixel first
    fractions = np.linspace(0.0, 1.0, steps + 1)
    for fraction in fractions[1:]:
        variants.append(np.where((rank < round(fraction * cam.size))[:, :, None], fill, image))
    found = []
    for start in range(0, len(variants), BATCH):
        found.append(probabilities(variants[start : start + BATCH])[:, class_index])
        if progress is not None:
            progress(min(1.0, (start + BATCH) / len(variants)))
    p = np.concatenate(found)
    return MaskingTest(
        class_index=class_index,
        class_name=class_name,
        before=before,
        hidden=float(p[0]),
        kept=float(p[1]),
        region_fraction=float(region.mean()),
        fractions=tuple(float(f) for f in fractions),
        curve=(before, *(float(v) for v in p[2:])),
        hidden_image=variants[0],
        kept_image=variants[1],
    )


def masking_test(
    explainer: Tester, explanation: Explanation, *, steps: int = 8, region: np.ndarray | None = None
) -> MaskingTest:
    """The masking test of an explanation, for comparisons such as a random region of the same size.

    :meth:`gradcam.Explainer.explain` with ``masking=True`` gives the same test in
    the same call; this function is for tests of *other* regions of an existing
    explanation.

    Args:
        explainer: the :class:`gradcam.Explainer` whose model made ``explanation``.
        explanation: the explanation to test.
        steps: points of the deletion curve after the start.
        region: a boolean mask ``(height, width)`` at the image's size to hide
            instead of the highlighted region.

    Raises:
        ValueError: when the explainer's model did not make the explanation, or
            for a region of the wrong shape.
    """
    return explainer.masking_test(explanation, steps=steps, region=region)


def split_progress(progress: Progress | None, weights: Sequence[float]) -> list[Progress | None]:
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
