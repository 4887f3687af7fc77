"""gradcam.render: pure RGB drawing of maps and boxes; and the Explanation that renders its panels."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from gradcam import cam_to_boxes, draw_boxes, heatmap, overlay
from gradcam.config import OVERLAY_ALPHA

from .conftest import HEIGHT, WIDTH


def flat(value: float, shape: tuple[int, int] = (4, 5)) -> np.ndarray:
    return np.full(shape, value, np.float32)


# --- heatmap ----------------------------------------------------------------------------------


def test_heatmap_is_a_new_rgb_uint8_image_and_leaves_the_map_alone(cam: np.ndarray) -> None:
    before = cam.copy()
    colours = heatmap(cam)
    assert colours.shape == (HEIGHT, WIDTH, 3) and colours.dtype == np.uint8
    assert not np.shares_memory(colours, cam)
    np.testing.assert_array_equal(cam, before)


def test_jet_is_rgb_not_bgr_low_is_dark_blue_high_is_dark_red() -> None:
    low = heatmap(flat(0.0))[0, 0].astype(int)
    high = heatmap(flat(1.0))[0, 0].astype(int)
    middle = heatmap(flat(0.5))[0, 0].astype(int)
    assert low.argmax() == 2 and low[2] < 200 and low[0] == low[1] == 0, f"0 should be dark blue, got {low}"
    assert high.argmax() == 0 and high[0] < 200 and high[1] == high[2] == 0, f"1 should be dark red, got {high}"
    assert middle.argmax() == 1, f"0.5 should be green, got {middle}"


def test_heatmap_output_can_be_changed_without_changing_later_heatmaps() -> None:
    first = heatmap(flat(0.0))
    first[...] = 7  # the colours must not be a view of a shared lookup table
    np.testing.assert_array_equal(heatmap(flat(0.0)), heatmap(flat(0.0, (2, 2)))[0, 0] + np.zeros((4, 5, 3), np.uint8))
    assert (heatmap(flat(0.0)) != 7).any()


@pytest.mark.parametrize(("value", "same_as"), [(-3.0, 0.0), (np.nan, 0.0), (2.5, 1.0), (np.inf, 1.0), (-np.inf, 0.0)])
def test_heatmap_clips_out_of_range_values_and_reads_nan_as_zero(value: float, same_as: float) -> None:
    np.testing.assert_array_equal(heatmap(flat(value)), heatmap(flat(same_as)))


def test_heatmap_colours_are_matplotlibs_jet_in_rgb_order() -> None:
    levels = np.arange(256) / 255  # one value per colour level, so no rounding question arises
    expected = matplotlib.colormaps["jet"](levels, bytes=True)[:, :3]
    np.testing.assert_array_equal(heatmap(levels[None, :].astype(np.float32))[0], expected)


def test_another_colormap_gives_other_colours() -> None:
    viridis = heatmap(flat(0.0), "viridis")[0, 0]
    assert tuple(viridis) != tuple(heatmap(flat(0.0))[0, 0])
    assert viridis[2] > viridis[0] > viridis[1], "viridis starts dark purple"


def test_an_unknown_colormap_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"Unknown colormap 'no_such_map'"):
        heatmap(flat(0.5), "no_such_map")


@pytest.mark.parametrize("shape", [(5,), (4, 5, 1), (4, 5, 3)])
def test_heatmap_refuses_a_map_that_is_not_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"Expected a 2-D map \(height, width\)"):
        heatmap(np.zeros(shape, np.float32))


# --- overlay ----------------------------------------------------------------------------------


def test_overlay_is_a_new_rgb_uint8_image_and_leaves_its_inputs_alone(image: np.ndarray, cam: np.ndarray) -> None:
    image_before, cam_before = image.copy(), cam.copy()
    blended = overlay(image, cam)
    assert blended.shape == (HEIGHT, WIDTH, 3) and blended.dtype == np.uint8
    assert not np.shares_memory(blended, image)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(cam, cam_before)


def test_overlay_alpha_zero_is_the_image_and_alpha_one_is_the_heatmap(image: np.ndarray, cam: np.ndarray) -> None:
    np.testing.assert_array_equal(overlay(image, cam, alpha=0.0), image)
    assert np.abs(overlay(image, cam, alpha=1.0).astype(int) - heatmap(cam)).max() <= 1


@pytest.mark.parametrize("alpha", [0.25, OVERLAY_ALPHA, 0.8])
def test_overlay_blends_linearly(image: np.ndarray, cam: np.ndarray, alpha: float) -> None:
    expected = (1 - alpha) * image + alpha * heatmap(cam).astype(float)
    assert np.abs(overlay(image, cam, alpha=alpha) - expected).max() <= 1


def test_overlay_default_alpha_comes_from_the_configuration(image: np.ndarray, cam: np.ndarray) -> None:
    np.testing.assert_array_equal(overlay(image, cam), overlay(image, cam, alpha=OVERLAY_ALPHA))


def test_overlay_refuses_a_map_of_another_size(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"The map is \(90, 60\) but the image is \(60, 90\); resize the map first"):
        overlay(image, np.zeros((WIDTH, HEIGHT), np.float32))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_overlay_refuses_an_alpha_outside_0_1(image: np.ndarray, cam: np.ndarray, alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        overlay(image, cam, alpha=alpha)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((HEIGHT, WIDTH), np.uint8), np.zeros((HEIGHT, WIDTH, 4), np.uint8), np.zeros((HEIGHT, WIDTH, 3))],
    ids=["gray", "rgba", "float"],
)
def test_overlay_and_draw_boxes_refuse_an_image_that_is_not_rgb_uint8(bad: np.ndarray, cam: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"Expected an RGB uint8 image \(height, width, 3\)"):
        overlay(bad, cam)
    with pytest.raises(ValueError, match=r"Expected an RGB uint8 image \(height, width, 3\)"):
        draw_boxes(bad, [(1, 1, 5, 5)])


# --- draw_boxes -------------------------------------------------------------------------------

BOX = (30, 25, 70, 50)  # x0, y0, x1, y1 in a 120 x 80 image: room above it for the label


@pytest.fixture
def gray() -> np.ndarray:
    return np.full((80, 120, 3), 100, np.uint8)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def test_draw_boxes_returns_a_new_image_and_leaves_the_input_alone(gray: np.ndarray) -> None:
    before = gray.copy()
    drawn = draw_boxes(gray, [BOX], "tabby 87%")
    assert drawn.shape == gray.shape and drawn.dtype == np.uint8
    assert not np.shares_memory(drawn, gray)
    np.testing.assert_array_equal(gray, before)


def test_draw_boxes_accepts_a_read_only_image(gray: np.ndarray) -> None:
    gray.setflags(write=False)
    assert changed(gray, draw_boxes(gray, [BOX], "x")).any()


def test_the_box_border_changes_and_pixels_far_from_it_do_not(gray: np.ndarray) -> None:
    x0, y0, x1, y1 = BOX
    diff = changed(gray, draw_boxes(gray, [BOX]))
    for y, x in [(y0, (x0 + x1) // 2), (y1, (x0 + x1) // 2), ((y0 + y1) // 2, x0), ((y0 + y1) // 2, x1)]:
        assert diff[y, x], f"border pixel (y={y}, x={x}) unchanged"
    assert not diff[y0 + 8 : y1 - 7, x0 + 8 : x1 - 7].any(), "the inside of the box is left alone"
    near = np.zeros_like(diff)
    near[y0 - 5 : y1 + 6, x0 - 5 : x1 + 6] = True
    assert not diff[~near].any(), "nothing is drawn away from the box"


def test_the_label_is_drawn_at_the_boxs_top_left_corner(gray: np.ndarray) -> None:
    x0, y0, x1, y1 = BOX
    plain = draw_boxes(gray, [BOX])
    labelled = draw_boxes(gray, [BOX], "tabby 87%")
    diff = changed(plain, labelled)
    assert diff[max(y0 - 20, 0) : y0 + 3, x0 - 2 : x0 + 25].any(), "no label near the top-left corner"
    label_zone = np.zeros_like(diff)
    label_zone[: y0 + 20, x0 - 4 :] = True
    assert not diff[~label_zone].any(), "the label is drawn only near the corner"
    assert not diff[y1 - 5 :, :].any(), "nothing changes at the bottom of the box"


def test_only_the_first_box_is_labelled(gray: np.ndarray) -> None:
    second = (80, 60, 110, 75)
    plain = draw_boxes(gray, [BOX, second])
    labelled = draw_boxes(gray, [BOX, second], "tabby 87%")
    assert not changed(plain, labelled)[second[1] - 20 :, second[0] - 5 :].any()


def test_an_empty_or_missing_label_draws_no_label(gray: np.ndarray) -> None:
    plain = draw_boxes(gray, [BOX])
    np.testing.assert_array_equal(draw_boxes(gray, [BOX], ""), plain)
    np.testing.assert_array_equal(draw_boxes(gray, [BOX], None), plain)


def test_no_boxes_gives_an_equal_copy(gray: np.ndarray) -> None:
    drawn = draw_boxes(gray, [], "tabby 87%")
    np.testing.assert_array_equal(drawn, gray)
    assert not np.shares_memory(drawn, gray)


@pytest.mark.parametrize("size", [(8, 8), (9, 300), (300, 9), (600, 800)])
@pytest.mark.parametrize("label", [None, "a long label for a very small picture 99%", "café 87% ✓"])
def test_boxes_at_the_edges_of_any_image_do_not_crash(size: tuple[int, int], label: str | None) -> None:
    height, width = size
    image = np.full((height, width, 3), 100, np.uint8)
    boxes = [(0, 0, width - 1, height - 1), (width // 2, height // 2, width - 1, height - 1)]
    drawn = draw_boxes(image, boxes, label)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert changed(image, drawn)[0, :].any() and changed(image, drawn)[:, 0].any(), "the edge box is visible"


def test_boxes_from_cam_to_boxes_draw_where_the_map_is_hot(gray: np.ndarray) -> None:
    cam = np.zeros(gray.shape[:2], np.float32)
    cam[25:51, 30:71] = 1.0
    (box,) = cam_to_boxes(cam)
    assert box == BOX
    assert changed(gray, draw_boxes(gray, [box]))[BOX[1], 50]
