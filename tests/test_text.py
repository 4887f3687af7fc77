"""The page's words: colours named for the chosen colour map, percentages written one way everywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradcam import Explainer
from gradcam.explanation import Prediction

from demo import text
from demo.ui import COLORMAPS

from .conftest import make_scene


@pytest.fixture(scope="module")
def explanation(tiny_backbone):
    return Explainer(tiny_backbone).explain(make_scene(np.random.default_rng(3), (0,)).image, top_k=2)


@pytest.mark.parametrize(
    ("colormap", "strong", "none"),
    [("jet", "red and yellow", "blue"), ("viridis", "yellow", "dark purple"), ("cividis", "yellow", "dark blue"),
     ("magma", "light yellow and white", "black")],
)
def test_each_colour_map_has_its_own_words(colormap, strong, none):
    assert text.colours(colormap) == text.Colours(strong, none)
    assert strong.capitalize() in text.legend(colormap)


def test_every_colour_map_the_page_offers_has_words():
    assert all(name in text.COLOUR_WORDS for name in COLORMAPS)


def test_the_sentence_names_the_colours_of_the_chosen_map(explanation):
    assert "red and yellow mark the strongest" in text.describe(explanation, False)
    viridis = text.describe(explanation, False, "viridis")
    assert "yellow marks the strongest" in viridis and "red" not in viridis


@pytest.mark.parametrize(
    ("probability", "written"), [(0.87, "87%"), (0.004, "0.4%"), (0.001, "0.1%"), (0.0001, "<0.1%"), (0.0, "0%")]
)
def test_share_writes_small_probabilities_without_a_false_zero(probability, written):
    assert text.share(probability) == written


def test_the_top5_writes_percentages_as_the_sentence_does(explanation):
    tiny = dataclasses.replace(
        explanation, top_k=(Prediction(0, "square", 0.998), Prediction(1, "disc", 0.001)), class_index=1, class_name="disc",
        probability=0.001,
    )
    listing = text.top_k_html(tiny)
    assert ">0.1%<" in listing and ">0%<" not in listing
    assert "0.1%" in text.describe(tiny, True)
    assert 'class="guess chosen"><span class="name">disc' in listing, "the explained class is not marked"


def test_the_top5_escapes_class_names(explanation):
    odd = dataclasses.replace(explanation, top_k=(Prediction(0, "<b>x</b>", 1.0),))
    assert "<b>x</b>" not in text.top_k_html(odd) and "&lt;b&gt;" in text.top_k_html(odd)


def test_alt_texts_describe_each_picture_with_the_class(explanation):
    alts = text.alt_texts(explanation, "viridis")
    assert set(alts) == {"original", "heatmap", "overlay", "boxes"}
    assert explanation.class_name in alts["heatmap"] and "yellow" in alts["heatmap"]


def test_an_unknown_name_gets_one_hint_with_close_names():
    hint = text.unknown_class("tigr", ["tiger", "tiger cat"])
    assert "tigr" in hint and "tiger, tiger cat" in hint
    assert "Pick one" in hint
    assert "..." in text.unknown_class("x" * 5000, [])
    assert len(text.unknown_class("x" * 5000, [])) < 200


def test_the_banner_speaks_to_visitors():
    assert "GRADCAM_WEIGHTS" not in text.UNTRAINED_BANNER and "untrained" in text.UNTRAINED_BANNER


def test_the_models_a_visitor_cannot_pick_are_named_with_the_reason():
    from demo.text import models_note

    assert models_note({"EfficientNet-Lite0": "ready"}) == ""
    note = models_note({"VGG19": "its weights (548 MB) are not on this server", "ResNet-50": "still loading", "EfficientNet-Lite0": "ready"})
    assert note == (
        "Still loading: ResNet-50 (reload the page in a minute). "
        "Not available on this server: VGG19 (its weights (548 MB) are not on this server)."
    )
