"""The page's words: colours named for the chosen colour map, percentages written one way everywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from demo import text
from demo.page.layout import legend_html
from demo.settings import COLORMAPS
from gradcam import Explainer, words
from gradcam.explanation import Prediction

from .conftest import make_scene


@pytest.fixture(scope="module")
def explanation(tiny_backbone):
    return Explainer(tiny_backbone).explain(make_scene(np.random.default_rng(3), (0,)).image, top_k=2)


@pytest.mark.parametrize(
    ("colormap", "strong", "none"),
    [
        ("jet", "red and yellow", "blue"),
        ("viridis", "yellow", "dark purple"),
        ("cividis", "yellow", "dark blue"),
        ("magma", "light yellow and white", "black"),
    ],
)
def test_each_colour_map_has_its_own_words_in_the_colour_key(colormap, strong, none):
    assert words.colours(colormap) == words.Colours(strong, none)
    assert f"{strong.capitalize()}: strongest evidence" in legend_html(colormap)


def test_every_colour_map_the_page_offers_has_words():
    assert all(name in words.COLOUR_WORDS for name in COLORMAPS)


def test_the_sentence_names_the_colours_of_the_chosen_map(explanation):
    assert "red and yellow mark the strongest" in words.summary(explanation, False, "jet").markdown
    viridis = words.summary(explanation, False, "viridis").markdown
    assert "yellow marks the strongest" in viridis and "red" not in viridis


def test_the_top5_writes_percentages_as_the_sentence_does(explanation):
    tiny = dataclasses.replace(
        explanation,
        top_k=(Prediction(0, "square", 0.998), Prediction(1, "disc", 0.001)),
        class_index=1,
        class_name="disc",
        probability=0.001,
    )
    listing = text.top_k_html(tiny)
    assert ">0.1%<" in listing and ">0%<" not in listing
    assert "0.1%" in words.summary(tiny, True).markdown
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
    assert "x…" in text.unknown_class("x" * 5000, [])
    assert len(text.unknown_class("x" * 5000, [])) < 200


def test_a_photo_explained_despite_an_unknown_name_says_which_class_it_shows():
    hint = text.unknown_class("zzzqqq", [], used="tabby")
    assert hint.startswith(
        "No class is called \u201czzzqqq\u201d, so the pictures show the model's top prediction, **tabby**."
    )
    assert "<b>" not in text.unknown_class("<b>x</b>", ["<i>"], used="<u>") and "&lt;b&gt;" in text.unknown_class(
        "<b>", []
    )


def test_the_banner_speaks_to_visitors():
    assert "GRADCAM_WEIGHTS" not in text.UNTRAINED_BANNER and "untrained" in text.UNTRAINED_BANNER


def test_the_models_a_visitor_cannot_pick_are_named_with_the_reason():
    from demo.text import models_note

    assert models_note({"EfficientNet-Lite0": "ready"}) == ""
    note = models_note(
        {
            "VGG19": "its weights (548 MB) are not on this server",
            "ResNet-50": "still loading",
            "EfficientNet-Lite0": "ready",
        }
    )
    assert note == (
        "Still loading: ResNet-50 (reload the page in a minute). "
        "Not available on this server: VGG19 (its weights (548 MB) are not on this server)."
    )
