"""Does the highlighted region really matter? A masking test and a deletion curve.

Grad-CAM shows where the evidence for a class lies; this module checks it by
intervention, in the spirit of the deletion metric of Petsiuk et al. (RISE,
BMVC 2018): hide the highlighted region (fill it with a blur of the image) and
run the model again; keep only that region; and remove the most important
pixels step by step, watching the class probability fall. All variants of the
image go through the model in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from gradcam.explainer import Explainer
from gradcam.explanation import Explanation, percent


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

    def sentence(self) -> str:
        """The result in one plain sentence."""
        before, hidden = percent(self.before), percent(self.hidden)
        if self.hidden < 0.5 * self.before:
            verdict = "drops"
        elif self.hidden < 0.9 * self.before:
            verdict = "lowers"
        elif self.hidden > 1.1 * self.before:
            verdict = "raises"
        else:
            verdict = "barely changes"
        change = f"from {before} to {hidden}" if verdict != "barely changes" else f"({before} before, {hidden} after)"
        kept = f" Keeping only that area gives {percent(self.kept)}."
        return f"Hiding the highlighted area {verdict} the confidence in {self.class_name} {change}.{kept}"

    def as_dict(self) -> dict[str, object]:
        """The numbers, for the JSON manifest."""
        return {
            "class": self.class_name,
            "before": self.before,
            "highlighted_hidden": self.hidden,
            "only_highlighted_kept": self.kept,
            "region_fraction": self.region_fraction,
            "deletion_curve": {"fraction_removed": list(self.fractions), "probability": list(self.curve)},
            "deletion_area": self.deletion_area,
        }


def blurred(image: np.ndarray) -> np.ndarray:
    """A strong blur of the image: what hidden pixels are filled with (keeps colours, removes shapes)."""
    sigma = max(image.shape[:2]) / 25
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def highlighted_region(explanation: Explanation) -> np.ndarray:
    """The boolean mask ``(height, width)`` of the map at or above the box threshold; empty for an empty map."""
    peak = float(explanation.cam.max())
    if peak <= 0:
        return np.zeros(explanation.cam.shape, dtype=bool)
    return explanation.cam >= explanation.threshold * peak


def probabilities(explainer: Explainer, images: list[np.ndarray]) -> np.ndarray:
    """Softmax probabilities of equally sized RGB images, one forward pass: ``(N, num_classes)``."""
    batch = torch.cat([explainer.preprocess(image) for image in images])
    with torch.no_grad():
        return torch.softmax(explainer.backbone.model(batch).double(), dim=1).numpy()


def masking_test(explainer: Explainer, explanation: Explanation, *, steps: int = 8, region: np.ndarray | None = None) -> MaskingTest:
    """Hides the highlighted region, keeps only it, and draws a deletion curve.

    Args:
        explainer: the explainer that made ``explanation`` (same model).
        explanation: the explanation to test.
        steps: points of the deletion curve after the start.
        region: a boolean mask ``(height, width)`` to hide instead of the
            highlighted region (the map at or above the box threshold), for
            comparisons such as a random region of the same size.

    Returns:
        The probabilities before and after.

    Raises:
        ValueError: for a region of the wrong shape or fewer than one step.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    image, cam = explanation.image, explanation.cam
    if region is None:
        region = highlighted_region(explanation)
    if region.shape != cam.shape:
        raise ValueError(f"The region {region.shape} does not match the image {cam.shape}.")
    fill = blurred(image)
    inside = region[:, :, None]
    variants = [image, np.where(inside, fill, image), np.where(inside, image, fill)]
    order = np.argsort(-cam, axis=None, kind="stable")  # most important pixel first
    fractions = np.linspace(0.0, 1.0, steps + 1)
    for fraction in fractions[1:]:
        removed = np.zeros(cam.size, dtype=bool)
        removed[order[: round(fraction * cam.size)]] = True
        variants.append(np.where(removed.reshape(cam.shape)[:, :, None], fill, image))
    p = probabilities(explainer, variants)[:, explanation.class_index]
    return MaskingTest(
        class_index=explanation.class_index,
        class_name=explanation.class_name,
        before=float(p[0]),
        hidden=float(p[1]),
        kept=float(p[2]),
        region_fraction=float(region.mean()),
        fractions=tuple(float(f) for f in fractions),
        curve=(float(p[0]), *(float(v) for v in p[3:])),
        hidden_image=variants[1],
        kept_image=variants[2],
    )
