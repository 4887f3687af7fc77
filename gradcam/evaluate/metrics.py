"""Per-image and dataset metrics of classification and Grad-CAM localisation.

Follows the evaluation of Selvaraju et al. (ICCV 2017), Sec. 4.1 and 4.2:

* **Top-1 / top-5 accuracy**: an annotated class is the best / among the five best predictions.
* **Top-1 / top-5 localisation error**: for each of the best one / five predicted
  classes, the map is thresholded at 15% of its maximum and the largest connected
  segment boxed (:func:`gradcam.cam_to_boxes`); the image counts as localised
  when one of these classes is annotated and its box overlaps a box of that class
  with an intersection over union of at least 0.5. The error is the share of
  images not localised. Only an annotated class can count, so only the maps of
  the annotated classes are needed.
* **Pointing game** (Zhang et al., ECCV 2016, as used by the paper): the map of
  each annotated class, explained for that class, has its maximum within 15
  pixels of a box of that class.
* **Energy in box**: the share of the annotated class's map (sum of its values)
  that falls inside the boxes of that class.

All boxes are ``(x0, y0, x1, y1)`` in pixels of the original image, corners inclusive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from gradcam.boxes import Box, box_iou, cam_to_boxes
from gradcam.evaluate.annotations import GroundTruth

#: IoU a Grad-CAM box needs with a ground-truth box to count as a localisation.
IOU_THRESHOLD = 0.5
#: Pointing game tolerance, in pixels.
POINTING_TOLERANCE = 15
#: How many predictions the top-k metrics use.
TOP = 5


def clip_box(box: Box, height: int, width: int) -> Box | None:
    """The part of a box inside a ``height x width`` image, or None when none is."""
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], width - 1), min(box[3], height - 1)
    return (x0, y0, x1, y1) if x0 <= x1 and y0 <= y1 else None


def best_iou(box: Box | None, truths: Sequence[Box]) -> float:
    """The largest IoU of ``box`` with any of ``truths``; 0 without a box."""
    return max((box_iou(box, truth) for truth in truths), default=0.0) if box is not None else 0.0


def gradcam_box(cam: np.ndarray, threshold: float) -> Box | None:
    """The paper's box: around the largest segment of the map at ``threshold`` of its maximum."""
    boxes = cam_to_boxes(cam, threshold)
    return boxes[0] if boxes else None


def pointing_hit(cam: np.ndarray, truths: Sequence[Box], tolerance: float = POINTING_TOLERANCE) -> bool:
    """Whether the map's maximum lies within ``tolerance`` pixels of one of the boxes.

    The maximum is the first pixel of highest value (row-major); a map with no
    positive value points nowhere and misses.
    """
    if not truths or not float(cam.max(initial=0.0)) > 0.0:
        return False
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    for x0, y0, x1, y1 in truths:
        dx, dy = max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1)
        if dx * dx + dy * dy <= tolerance * tolerance:
            return True
    return False


def energy_in_boxes(cam: np.ndarray, truths: Sequence[Box]) -> float:
    """The share of the map's sum inside the union of the boxes, in [0, 1]; 0 for an all-zero map."""
    total = float(cam.sum(dtype=np.float64))
    if not total > 0.0:
        return 0.0
    inside = np.zeros(cam.shape, dtype=bool)
    for x0, y0, x1, y1 in truths:
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
    return float(cam[inside].sum(dtype=np.float64)) / total


@dataclass(frozen=True)
class ImageResult:
    """One image's row of ``results.csv``.

    Attributes:
        image: the image as the annotations name it.
        labels: annotated class indices, ``;``-separated.
        label_names: their names, ``;``-separated.
        top5: the five best predicted class indices, best first, ``;``-separated.
        top5_names: their names.
        top1_probability: probability of the best class (by the model's head: softmax, sigmoid or binary).
        top1_correct: 1 when the best prediction is an annotated class.
        top5_correct: 1 when an annotated class is among the five best.
        top1_localized: 1 when the best class is right and its box has IoU >= 0.5.
        top5_localized: 1 when one of the five best classes is right and localised.
        pointing: share of the annotated classes whose map's maximum is within
            15 pixels of their box.
        energy_in_box: mean over the annotated classes of their maps' share inside their boxes.
        iou: best IoU of an annotated class's Grad-CAM box with its boxes.
        gradcam_box: that Grad-CAM box, ``x0 y0 x1 y1`` ("" when the map is empty).
        truth_box: the ground-truth box it overlaps most, ``x0 y0 x1 y1``.
        notes: annotation boxes clipped or ignored for this image.
        error: why the image could not be evaluated ("" when it was).
    """

    image: str
    labels: str = ""
    label_names: str = ""
    top5: str = ""
    top5_names: str = ""
    top1_probability: float = 0.0
    top1_correct: int = 0
    top5_correct: int = 0
    top1_localized: int = 0
    top5_localized: int = 0
    pointing: float = 0.0
    energy_in_box: float = 0.0
    iou: float = 0.0
    gradcam_box: str = ""
    truth_box: str = ""
    notes: str = ""
    error: str = ""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV header."""
        return tuple(f.name for f in fields(cls))

    def row(self) -> dict[str, str]:
        """The CSV row, every value as text (floats to 6 decimals)."""
        return {f.name: _text(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> ImageResult:
        """Reads a CSV row back."""
        values: dict[str, object] = {}
        for f in fields(cls):
            text = row.get(f.name, "") or ""
            values[f.name] = int(text or 0) if f.type == "int" else float(text or 0) if f.type == "float" else text
        return cls(**values)  # type: ignore[arg-type]


def _text(value: object) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _box_text(box: Box | None) -> str:
    return "" if box is None else " ".join(map(str, box))


def score_image(
    image: str,
    objects: Sequence[GroundTruth],
    categories: Sequence[str],
    probabilities: np.ndarray,
    maps: Mapping[int, np.ndarray],
    threshold: float,
    notes: str = "",
) -> ImageResult:
    """Scores one image from its class probabilities and maps.

    Args:
        image: the image's name.
        objects: its annotated objects, boxes already inside the image.
        categories: the model's class names.
        probabilities: class probabilities, ``(num_classes,)``.
        maps: the map ``(height, width)`` of each annotated class, by class
            index (the best classes need none: a class that is not annotated
            cannot count as localised).
        threshold: box threshold, a fraction of the map's maximum.
        notes: what was done to the annotations, reported with the row.

    Returns:
        The image's row.
    """
    truths: dict[int, list[Box]] = {}
    for obj in objects:
        truths.setdefault(obj.label, []).append(obj.box)
    order = np.argsort(-probabilities, kind="stable")[: min(TOP, len(probabilities))]
    top = [int(c) for c in order]
    boxes = {c: gradcam_box(maps[c], threshold) for c in truths}
    localized = [c in truths and best_iou(boxes[c], truths[c]) >= IOU_THRESHOLD for c in top]
    hits = [pointing_hit(maps[c], truths[c]) for c in truths]
    energies = [energy_in_boxes(maps[c], truths[c]) for c in truths]
    best_class = max(truths, key=lambda c: best_iou(boxes[c], truths[c]))
    best_box = boxes[best_class]
    truth = max(truths[best_class], key=lambda t: box_iou(best_box, t) if best_box is not None else 0.0)
    return ImageResult(
        image=image,
        labels=";".join(map(str, truths)),
        label_names=";".join(categories[c] for c in truths),
        top5=";".join(map(str, top)),
        top5_names=";".join(categories[c] for c in top),
        top1_probability=float(probabilities[top[0]]),
        top1_correct=int(top[0] in truths),
        top5_correct=int(any(c in truths for c in top)),
        top1_localized=int(localized[0]),
        top5_localized=int(any(localized)),
        pointing=sum(hits) / len(hits),
        energy_in_box=float(np.mean(energies)),
        iou=best_iou(best_box, truths[best_class]),
        gradcam_box=_box_text(best_box),
        truth_box=_box_text(truth),
        notes=notes,
    )


@dataclass(frozen=True)
class Totals:
    """Dataset figures from the rows of ``results.csv`` (fractions in [0, 1])."""

    images: int
    failed: int
    top1_accuracy: float
    top5_accuracy: float
    top1_localization_error: float
    top5_localization_error: float
    pointing_accuracy: float
    energy_in_box: float
    mean_iou: float


def totals(results: Sequence[ImageResult]) -> Totals:
    """Averages over the evaluated images; failed images are counted, not averaged.

    ``images`` counts the evaluated images. The pointing accuracy is the share of
    (image, annotated class) pairs hit; the others are means over images. With
    no evaluated image every figure is NaN.
    """
    done = [r for r in results if not r.error]
    pairs = [(len(r.labels.split(";")), r.pointing) for r in done]

    def mean(values: Sequence[float]) -> float:
        return float(np.mean(values)) if len(values) else float("nan")

    count = sum(n for n, _ in pairs)
    return Totals(
        images=len(done),
        failed=len(results) - len(done),
        top1_accuracy=mean([r.top1_correct for r in done]),
        top5_accuracy=mean([r.top5_correct for r in done]),
        top1_localization_error=1.0 - mean([r.top1_localized for r in done]),
        top5_localization_error=1.0 - mean([r.top5_localized for r in done]),
        pointing_accuracy=sum(n * p for n, p in pairs) / count if count else float("nan"),
        energy_in_box=mean([r.energy_in_box for r in done]),
        mean_iou=mean([r.iou for r in done]),
    )
