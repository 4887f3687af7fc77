"""Names in messages and files: the closest names, values cut short, file-safe names."""

from __future__ import annotations

import pytest
from torchvision.models import VGG19_Weights

from gradcam import names

IMAGENET = VGG19_Weights.IMAGENET1K_V1.meta["categories"]


def test_names_containing_the_text_come_first_those_starting_with_it_before_the_others():
    found = names.closest("cat", IMAGENET, n=8)
    assert {"tiger cat", "Persian cat", "Egyptian cat"} <= set(found)
    assert all("cat" in name.lower() for name in found)
    assert found.index("Persian cat") < found.index("polecat"), "a word starting with the text comes first"


def test_spelling_mistakes_are_forgiven_and_case_and_spaces_do_not_matter():
    assert names.closest("tigr", IMAGENET)[0] == "tiger"
    assert "espresso" in names.closest("expresso", IMAGENET)
    assert names.closest("  PERSIAN   kat ", IMAGENET)[0] == "Persian cat"


def test_nothing_or_noise_has_no_closest_names():
    assert names.closest("", IMAGENET) == [] and names.closest("   ", IMAGENET) == []
    assert names.closest("qqqqzz", IMAGENET) == []
    assert names.closest_hint("qqqqzz", IMAGENET) == ""


def test_dotted_names_have_words_too():
    layers = ["features", "features.0", "layer4", "layer4.1.bn2", "bn"]
    assert names.closest("bn", layers) == ["bn", "layer4.1.bn2"]
    assert names.closest("layer5", layers)[0] == "layer4"


def test_the_hint_lists_at_most_five_names_as_written():
    hint = names.closest_hint("cat", IMAGENET)
    assert hint.startswith(" Closest: ") and hint.endswith(".")
    assert len(hint.removeprefix(" Closest: ").split(", ")) == names.HINT_NAMES


@pytest.mark.parametrize(
    ("value", "shown"),
    [(7, "7"), ("tabby", "'tabby'"), ("x" * 100, "'" + "x" * 37 + "…'"), (10**5000, "a number of about 5000 digits")],
    ids=["int", "str", "long-str", "huge-int"],
)
def test_values_in_messages_are_cut_short(value, shown):
    assert names.short(value) == shown
    assert len(names.short(value)) <= 40


def test_the_first_line_of_an_exception():
    assert names.first_line(OSError("disk full\nmore detail")) == "disk full"
    assert names.first_line(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize(
    ("name", "safe"),
    [("tiger cat", "tiger-cat"), ("jack-o'-lantern", "jack-o--lantern"), ("Ödön's photo (1).jpg", "d-n-s-photo-1-jpg"),
     ("..", "class"), ("", "class")],
)
def test_file_safe_names(name, safe):
    assert names.file_safe(name, "class") == safe


def test_file_safe_names_can_be_cut():
    assert names.file_safe("a" * 100, "image", limit=40) == "a" * 40
