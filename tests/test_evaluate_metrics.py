"""Metrics against answers computed by hand on small maps and boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcam.evaluate.annotations import GroundTruth
from gradcam.evaluate.metrics import (
    ImageResult,
    clip_box,
    energy_in_boxes,
    gradcam_box,
    pointing_hit,
    score_image,
    totals,
)


def test_clip_box() -> None:
    assert clip_box((-5, -3, 200, 10), 20, 30) == (0, 0, 29, 10)
    assert clip_box((40, 0, 50, 5), 20, 30) is None


def test_pointing_hit_uses_a_euclidean_tolerance() -> None:
    cam = np.zeros((100, 100), np.float32)
    cam[50, 50] = 1.0  # maximum at x=50, y=50
    assert pointing_hit(cam, [(40, 40, 60, 60)])
    assert pointing_hit(cam, [(65, 50, 70, 55)])  # 15 px to the left: on the tolerance
    assert not pointing_hit(cam, [(66, 50, 70, 55)])  # 16 px
    assert pointing_hit(cam, [(59, 59, 70, 70)])  # diagonal 9*sqrt(2) = 12.7 px
    assert not pointing_hit(cam, [(61, 61, 70, 70)])  # 11*sqrt(2) = 15.6 px
    assert not pointing_hit(np.zeros((10, 10)), [(0, 0, 9, 9)])  # an empty map points nowhere


def test_energy_in_boxes() -> None:
    cam = np.zeros((10, 10), np.float32)
    cam[0:2, 0:2] = 1.0  # 4 inside
    cam[9, 9] = 4.0  # 4 outside
    assert energy_in_boxes(cam, [(0, 0, 1, 1)]) == pytest.approx(0.5)
    assert energy_in_boxes(cam, [(0, 0, 1, 1), (0, 0, 0, 0), (9, 9, 9, 9)]) == pytest.approx(1.0)  # union, not sum
    assert energy_in_boxes(np.zeros((4, 4)), [(0, 0, 1, 1)]) == 0.0


def blob(x0: int, y0: int, x1: int, y1: int, size: int = 40) -> np.ndarray:
    cam = np.zeros((size, size), np.float32)
    cam[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return cam


def test_gradcam_box_is_the_largest_segment_at_the_threshold() -> None:
    cam = blob(0, 0, 9, 9) + 0.1 * blob(20, 20, 39, 39)  # the large weak region is under 15%
    assert gradcam_box(cam, 0.15) == (0, 0, 9, 9)
    assert gradcam_box(cam, 0.05) == (20, 20, 39, 39)
    assert gradcam_box(np.zeros((5, 5)), 0.15) is None


def test_score_image_by_hand() -> None:
    categories = ("a", "b", "c", "d", "e", "f")
    probabilities = np.array([0.05, 0.4, 0.3, 0.1, 0.1, 0.05])  # best five: b, c, d, e, a
    truth = [GroundTruth(2, (10, 10, 19, 19))]  # class c
    maps = {c: blob(0, 0, 3, 3) for c in range(6)}
    maps[2] = blob(10, 10, 19, 21)  # IoU 100/120 = 0.83 with the truth
    result = score_image("x.png", truth, categories, probabilities, maps, 0.15)
    assert result.top5 == "1;2;3;4;0" and result.top5_names == "b;c;d;e;a"
    assert (result.top1_correct, result.top5_correct) == (0, 1)
    assert (result.top1_localized, result.top5_localized) == (0, 1)
    assert result.pointing == 1.0
    assert result.energy_in_box == pytest.approx(100 / 120)
    assert result.iou == pytest.approx(100 / 120)
    assert result.gradcam_box == "10 10 19 21" and result.truth_box == "10 10 19 19"
    # Only the annotated class's map is read: the best classes need none.
    assert score_image("x.png", truth, categories, probabilities, {2: maps[2]}, 0.15) == result
    # Right class, box too large: IoU 100/400 < 0.5.
    maps[2] = blob(10, 10, 29, 29)
    wide = score_image("x.png", truth, categories, np.array([0.05, 0.1, 0.6, 0.1, 0.1, 0.05]), maps, 0.15)
    assert (wide.top1_correct, wide.top1_localized, wide.top5_localized) == (1, 0, 0)
    assert wide.iou == pytest.approx(0.25)


def test_totals_by_hand() -> None:
    rows = [
        ImageResult(
            "a", labels="0", top1_correct=1, top5_correct=1, top1_localized=1, top5_localized=1, pointing=1.0,
            energy_in_box=0.8,
        ),
        ImageResult("b", labels="0;1", top5_correct=1, top5_localized=1, pointing=0.5, energy_in_box=0.4),
        ImageResult("c", error="damaged"),
    ]
    figures = totals(rows)
    assert (figures.images, figures.failed) == (2, 1)
    assert figures.top1_accuracy == 0.5 and figures.top5_accuracy == 1.0
    assert figures.top1_localization_error == 0.5 and figures.top5_localization_error == 0.0
    assert figures.pointing_accuracy == pytest.approx(2 / 3)  # 2 of 3 (image, class) pairs
    assert figures.energy_in_box == pytest.approx(0.6)
    assert math.isnan(totals([]).top1_accuracy)


def test_rows_round_trip() -> None:
    row = ImageResult("a", labels="0", top1_probability=0.25, top1_correct=1, iou=0.5, notes="x")
    assert ImageResult.from_row(row.row()) == row
