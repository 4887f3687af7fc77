"""gradcam.boxes: boxes around the highlighted regions of a map (Selvaraju et al. 2017, Sec. 4.1)."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from gradcam import cam_to_boxes
from gradcam.boxes import box_iou
from gradcam.config import BOX_THRESHOLD

HEIGHT, WIDTH = 40, 60  # not square, so a swapped x / y shows


def blank() -> np.ndarray:
    return np.zeros((HEIGHT, WIDTH), np.float32)


def rings() -> np.ndarray:
    """Nested squares centred at (y 20, x 30): 1.0 inside 2 x 2, 0.5 inside 6 x 6, 0.1 inside 10 x 10."""
    cam = blank()
    cam[15:25, 25:35] = 0.1  # x 25..34, y 15..24
    cam[17:23, 27:33] = 0.5  # x 27..32, y 17..22
    cam[19:21, 29:31] = 1.0  # x 29..30, y 19..20
    return cam


def test_one_blob_gives_its_exact_inclusive_box() -> None:
    cam = blank()
    cam[5:10, 12:18] = 0.7  # rows (y) 5..9, columns (x) 12..17
    assert cam_to_boxes(cam) == [(12, 5, 17, 9)]


def test_a_single_pixel_is_a_box_of_one_pixel() -> None:
    cam = blank()
    cam[HEIGHT - 1, WIDTH - 1] = 1.0
    assert cam_to_boxes(cam) == [(WIDTH - 1, HEIGHT - 1, WIDTH - 1, HEIGHT - 1)]


def test_boxes_are_plain_ints_ready_for_json() -> None:
    cam = blank()
    cam[5:10, 12:18] = 1.0
    boxes = cam_to_boxes(cam)
    assert all(type(value) is int for box in boxes for value in box)
    assert json.loads(json.dumps(boxes)) == [[12, 5, 17, 9]]


def two_blobs() -> np.ndarray:
    cam = blank()
    cam[2:5, 2:5] = 1.0  # small (9 px) but the brightest: x 2..4, y 2..4
    cam[20:30, 40:50] = 0.6  # large (100 px): x 40..49, y 20..29
    return cam


def test_by_default_only_the_largest_region_is_boxed_not_the_brightest() -> None:
    assert cam_to_boxes(two_blobs()) == [(40, 20, 49, 29)]


def test_all_regions_boxes_every_region_largest_first() -> None:
    assert cam_to_boxes(two_blobs(), all_regions=True) == [(40, 20, 49, 29), (2, 2, 4, 4)]


def test_min_area_drops_small_regions_and_keeps_those_of_exactly_that_area() -> None:
    assert cam_to_boxes(two_blobs(), all_regions=True, min_area=10) == [(40, 20, 49, 29)]
    assert cam_to_boxes(two_blobs(), all_regions=True, min_area=9) == [(40, 20, 49, 29), (2, 2, 4, 4)]
    assert cam_to_boxes(two_blobs(), all_regions=True, min_area=101) == []


def test_min_area_does_not_drop_the_largest_region_without_all_regions() -> None:
    assert cam_to_boxes(two_blobs(), min_area=1000) == [(40, 20, 49, 29)]


def test_of_two_equal_regions_the_first_in_reading_order_is_boxed() -> None:
    cam = blank()
    cam[30:33, 2:5] = 1.0  # lower left
    cam[5:8, 50:53] = 1.0  # upper right: met first, reading the rows from the top
    assert cam_to_boxes(cam) == [(50, 5, 52, 7)]


def test_the_largest_region_is_the_first_of_all_regions_on_smooth_maps() -> None:
    # The largest region alone takes a faster path than every region's statistics: the same box.
    rng = np.random.default_rng(0)
    for _ in range(100):
        noise = rng.random((HEIGHT * 5, WIDTH * 5)).astype(np.float32)
        cam = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(2, 20)))
        cam -= cam.min()
        threshold = float(rng.uniform(0.05, 0.95))
        assert cam_to_boxes(cam, threshold) == cam_to_boxes(cam, threshold, all_regions=True)[:1]


def test_diagonal_neighbours_are_one_region() -> None:
    cam = blank()
    cam[10, 10] = cam[11, 11] = cam[12, 12] = 1.0
    assert cam_to_boxes(cam, all_regions=True) == [(10, 10, 12, 12)]


@pytest.mark.parametrize(
    ("threshold", "box"),
    [
        (0.05, (25, 15, 34, 24)),
        (BOX_THRESHOLD, (27, 17, 32, 22)),
        (0.5, (27, 17, 32, 22)),  # inclusive: values equal to the threshold count
        (0.51, (29, 19, 30, 20)),
        (1.0, (29, 19, 30, 20)),
    ],
)
def test_the_threshold_is_a_fraction_of_the_maximum_and_changes_the_box(threshold: float, box: tuple) -> None:
    assert cam_to_boxes(rings(), threshold) == [box]


def test_the_default_threshold_is_the_papers_15_percent() -> None:
    cam = blank()
    cam[10:20, 10:20] = 0.16
    cam[14:16, 14:16] = 1.0
    cam[0:5, 0:5] = 0.14  # below 15 %: no part of the region
    assert cam_to_boxes(cam) == [(10, 10, 19, 19)]
    assert cam_to_boxes(cam, all_regions=True) == [(10, 10, 19, 19)]


def test_boxes_do_not_depend_on_the_scale_of_the_map() -> None:
    assert cam_to_boxes(rings() * 37.0) == cam_to_boxes(rings()) == cam_to_boxes(rings().astype(np.float64) / 1e3)


def test_threshold_zero_boxes_the_whole_map() -> None:
    assert cam_to_boxes(rings(), 0.0) == [(0, 0, WIDTH - 1, HEIGHT - 1)]


@pytest.mark.parametrize(
    "cam",
    [np.zeros((HEIGHT, WIDTH)), -np.ones((HEIGHT, WIDTH)), np.zeros((0, 0)), np.full((HEIGHT, WIDTH), np.nan)],
    ids=["all_zero", "negative", "empty", "all_nan"],
)
def test_a_map_without_positive_values_has_no_box(cam: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning ("All-NaN slice") in the logs either
        assert cam_to_boxes(cam) == []
        assert cam_to_boxes(cam, all_regions=True) == []


def test_nan_pixels_are_ignored_not_boxed() -> None:
    cam = blank()
    cam[5:10, 12:18] = 1.0
    cam[30:35, 40:55] = np.nan  # a larger region, but of NaN
    cam[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cam_to_boxes(cam, all_regions=True) == [(12, 5, 17, 9)]


def test_the_map_is_not_modified() -> None:
    cam = two_blobs()
    cam[0, 0] = np.nan
    before = cam.copy()
    cam_to_boxes(cam, all_regions=True)
    np.testing.assert_array_equal(cam, before)


@pytest.mark.parametrize("shape", [(WIDTH,), (1, HEIGHT, WIDTH), (HEIGHT, WIDTH, 3)])
def test_a_map_that_is_not_2d_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"Expected a 2-D map \(height, width\), got shape"):
        cam_to_boxes(np.ones(shape, np.float32))


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 15.0, float("nan")])
def test_a_threshold_outside_0_1_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got"):
        cam_to_boxes(rings(), threshold)


# box_iou -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "iou"),
    [
        ((10, 20, 49, 59), (10, 20, 49, 59), 1.0),  # identical
        ((0, 0, 9, 9), (20, 20, 29, 29), 0.0),  # far apart
        ((0, 0, 9, 9), (10, 0, 19, 9), 0.0),  # side by side: x1 = 9 and x0 = 10 do not overlap
        ((0, 0, 9, 9), (5, 0, 14, 9), 50 / 150),  # half of each: 5 x 10 shared of 10 x 10 + 10 x 10 - 50
        ((0, 0, 9, 9), (0, 5, 9, 14), 50 / 150),  # the same, vertically
        ((0, 0, 4, 4), (4, 4, 8, 8), 1 / 49),  # corners inclusive: one shared pixel of 25 + 25 - 1
        ((3, 3, 3, 3), (3, 3, 3, 3), 1.0),  # a one-pixel box has area 1, not 0
        ((0, 0, 9, 9), (2, 2, 6, 6), 25 / 100),  # one inside the other
    ],
)
def test_box_iou(first, second, iou):
    assert box_iou(first, second) == pytest.approx(iou)
    assert box_iou(second, first) == pytest.approx(iou)
