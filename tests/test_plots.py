"""The figures: the deletion curve and the one-picture report."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradcam import Explainer, views
from gradcam.faithfulness import MaskingTest
from gradcam.plots import deletion_plot, report

from .conftest import make_scene

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ORANGE = np.array([0xD9, 0x48, 0x0F])  # the deletion curve's colour


def drawn(explanation, sentence: str) -> np.ndarray:
    """The one-picture report of an explanation, with its own panels."""
    return report(explanation, sentence, views.panels(explanation))


def _is_picture(picture: np.ndarray, height: int, width: int) -> None:
    assert picture.shape == (height, width, 3) and picture.dtype == np.uint8
    assert picture.std() > 20, "the picture is blank"


@pytest.fixture(scope="module")
def explanation(tiny_backbone):
    rng = np.random.default_rng(21)
    image = np.concatenate([make_scene(rng, (0,)).image, rng.integers(60, 140, (64, 32, 3), dtype=np.uint8)], axis=1)
    return Explainer(tiny_backbone).explain(image, top_k=2)  # 64 x 96


def _test(curve: tuple[float, ...]) -> MaskingTest:
    fractions = tuple(np.linspace(0, 1, len(curve)).tolist())
    return MaskingTest(0, "square", curve[0], 0.2, 0.8, 0.1, fractions, curve)


# deletion_plot -------------------------------------------------------------------------------


def test_deletion_plot_draws_the_curve():
    plot = deletion_plot(_test((0.9, 0.5, 0.2, 0.05, 0.01)))
    _is_picture(plot, 288, 480)
    orange = (np.abs(plot.astype(int) - ORANGE).sum(axis=2) < 30).sum()
    assert orange > 100, "the curve is not drawn"
    _is_picture(deletion_plot(_test((0.9, 0.5, 0.1)), width=640), 384, 640)


def test_a_different_curve_gives_a_different_plot():
    falling = deletion_plot(_test((0.9, 0.5, 0.2, 0.05, 0.01)))
    flat = deletion_plot(_test((0.9, 0.9, 0.9, 0.9, 0.9)))
    assert not np.array_equal(falling, flat)
    assert np.array_equal(falling, deletion_plot(_test((0.9, 0.5, 0.2, 0.05, 0.01)))), "drawing is not repeatable"


def test_a_curve_at_zero_is_drawn():
    _is_picture(deletion_plot(_test((0.0, 0.0, 0.0))), 288, 480)


def test_deletion_plot_title_is_above_the_axes():
    plot = deletion_plot(_test((0.9, 0.5, 0.2)))
    dark = (plot < 100).all(axis=2)
    rows = np.flatnonzero(dark.any(axis=1))
    axes_top = np.flatnonzero(dark.sum(axis=1) > 0.5 * plot.shape[1])[0]  # the top spine
    assert rows[0] < axes_top - 10, "no title above the axes"


# report --------------------------------------------------------------------------------------


def test_report_is_one_wide_picture(explanation):
    picture = drawn(explanation, "The model is 99% sure this is square.")
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    height, width = picture.shape[:2]
    assert width == 1600 and 450 <= height <= 600, picture.shape  # 16 x (2.7 + 2.6) inches at 100 dpi
    assert picture.std() > 20


def test_a_taller_image_makes_a_taller_report(explanation):
    wide = drawn(explanation, "wide")
    image, cam = (np.ascontiguousarray(np.rot90(a)) for a in (explanation.image, explanation.cam))  # 96 x 64
    tall = dataclasses.replace(explanation, image=image, cam=cam, boxes=())
    picture = drawn(tall, "tall")
    assert picture.shape[1] == wide.shape[1] and picture.shape[0] > wide.shape[0] + 200


def test_a_long_sentence_is_wrapped_in_the_report_not_clipped(explanation):
    long = "You asked about espresso maker: the model gives it 0.1% (its top guess is espresso, 87%). " * 2
    picture = drawn(explanation, long)
    Image.fromarray(picture).save(ARTIFACTS / "report-long-sentence.png") if ARTIFACTS.is_dir() else None

    def lines(p: np.ndarray) -> int:  # runs of rows with dark ink above the first panel's top
        inked = (p[: p.shape[0] // 10] < 100).all(axis=2).any(axis=1)
        return int(np.count_nonzero(inked[1:] & ~inked[:-1]) + inked[0])

    assert lines(picture) == 2, "a long sentence did not get a second line"
    top = picture[:120]
    assert (top[:, :20] > 240).all() and (top[:, -20:] > 240).all(), "the title runs into the picture's edges"


def test_report_shows_the_sentence_and_the_untrained_warning(explanation):
    first = drawn(explanation, "The model is 99% sure this is square.")
    assert not np.array_equal(first, drawn(explanation, "Something else entirely, and longer."))
    untrained = drawn(dataclasses.replace(explanation, untrained=True), "The model is 99% sure this is square.")
    assert untrained.shape == first.shape and not np.array_equal(untrained, first)


def test_the_report_s_colour_bar_follows_the_colour_map(explanation):
    panels = views.panels(explanation)  # the same pictures: only the colour bar can differ
    jet, viridis = (report(explanation, "same words", panels, colormap=name) for name in ("jet", "viridis"))
    rows, columns = np.nonzero((jet != viridis).any(axis=2))
    assert rows.size > 0, "the colour bar does not follow the colour map"
    assert rows.min() > jet.shape[0] // 2 and columns.min() >= jet.shape[1] // 2, "something else changed"


def test_figures_drawn_in_threads_match_figures_drawn_alone():
    curves = [tuple(np.linspace(0.9, 0.1 * i, 5)) for i in range(6)]
    alone = [deletion_plot(_test(c)) for c in curves]
    together: list[np.ndarray | None] = [None] * len(curves)

    def draw(i: int) -> None:
        together[i] = deletion_plot(_test(curves[i]))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(len(curves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(picture is not None and np.array_equal(picture, expected) for picture, expected in zip(together, alone))
