"""Bounding boxes around the highlighted region of a class activation map.

Follows the weakly supervised localisation rule of Selvaraju et al. (ICCV 2017,
Sec. 4.1): threshold the map at a fraction (15%) of its maximum, find the
connected regions, and box the largest one.
"""

from __future__ import annotations

import cv2
import numpy as np

from gradcam.config import BOX_THRESHOLD

Box = tuple[int, int, int, int]


def cam_to_boxes(
    cam: np.ndarray, threshold: float = BOX_THRESHOLD, *, all_regions: bool = False, min_area: int = 0
) -> list[Box]:
    """Boxes around the regions where the map reaches ``threshold`` of its maximum.

    Args:
        cam: float map ``(height, width)``, non-negative.
        threshold: fraction of the map's maximum, in [0, 1].
        all_regions: box every region of at least ``min_area`` pixels (largest
            first) instead of the largest region only.
        min_area: smallest region, in pixels, boxed with ``all_regions``.

    Returns:
        Boxes ``(x0, y0, x1, y1)`` in pixels, corners inclusive (as
        ``torchvision.ops.masks_to_boxes``); empty when the map has no positive
        value.

    Raises:
        ValueError: for a map that is not 2-D or a threshold outside [0, 1].
    """
    if cam.ndim != 2:
        raise ValueError(f"Expected a 2-D map (height, width), got shape {cam.shape}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    peak = float(np.fmax.reduce(cam, axis=None, initial=0.0))  # NaN ignored, without nanmax's all-NaN warning
    if not peak > 0.0:
        return []
    mask = (cam >= threshold * peak).astype(np.uint8)
    if not all_regions:
        return [_largest_region_box(mask)]
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    regions = stats[1:count]  # row 0 is the background; columns x, y, w, h, area
    order = np.argsort(-regions[:, cv2.CC_STAT_AREA], kind="stable")
    boxes = []
    for x, y, w, h, area in regions[order]:
        if area < min_area:
            break
        boxes.append((int(x), int(y), int(x + w - 1), int(y + h - 1)))
    return boxes


def _largest_region_box(mask: np.ndarray) -> Box:
    """The box of the largest 8-connected region of a non-empty 0/1 mask (the first in raster order among equals).

    Labels alone and a count of each label's pixels cost a third of OpenCV's
    per-region statistics, which measure every region (0.31 vs 0.82 ms for a
    300 x 400 map, one thread): what a dataset evaluation pays per image.
    """
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    areas = np.bincount(labels.ravel(), minlength=count)
    region = labels == int(np.argmax(areas[1:])) + 1  # label 0 is the background
    rows, columns = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]), int(rows[-1])


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two inclusive pixel boxes ``(x0, y0, x1, y1)``, in [0, 1]."""
    width = min(first[2], second[2]) - max(first[0], second[0]) + 1
    height = min(first[3], second[3]) - max(first[1], second[1]) + 1
    overlap = max(0, width) * max(0, height)

    def area(box: Box) -> int:
        return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)

    union = area(first) + area(second) - overlap
    return overlap / union if union > 0 else 0.0
