"""The page's pure helpers (the colour key, the link-preview tags), its layout and its handlers.

The handlers are called as Gradio calls them (``demo.fns``), with the page's inputs, and their answers are
``{component: value}``: what a person would see is checked by the components' ids.
"""

from __future__ import annotations

import re

import pytest
from torchvision.models import VGG19_Weights

from demo.page import build_demo, head
from demo.page.layout import legend_html

IMAGENET = VGG19_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.mark.parametrize(("colormap", "words"), [("jet", "Red and yellow"), ("magma", "Light yellow and white")])
def test_the_colour_key_shows_the_map_and_says_its_colours(colormap, words):
    key = legend_html(colormap)
    assert f"{words}: strongest evidence" in key
    assert len(re.findall(r"rgb\(\d+,\d+,\d+\)", key)) == 11


def test_the_preview_tags_are_escaped_and_carry_the_picture():
    tags = head('A "title"', "words & more", "https://example.org/p.png")
    assert 'property="og:title" content="A &quot;title&quot;"' in tags
    assert 'content="words &amp; more"' in tags and 'property="og:image" content="https://example.org/p.png"' in tags
    assert "og:image" not in head("t", "d", None)


def test_the_page_has_stable_ids_and_share_buttons_only_on_spaces(tmp_path, tiny_backbone):
    from demo.service import DemoService
    from gradcam import Explainer

    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path)
    for on_spaces in (False, True):
        config = build_demo(service, on_spaces=on_spaces).get_config_file()
        ids = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
        expected = {
            "input-image",
            "target",
            "sentence",
            "top5",
            "panel-original",
            "panel-heatmap",
            "panel-overlay",
            "panel-boxes",
            "download",
            "archive",
            "threshold",
            "opacity",
            "colormap",
            "model",
            "target-hint",
            "method",
            "trust-run",
            "trust-sentence",
            "trust-curves",
            "methods-run",
            "methods-gallery",
        }
        assert expected <= set(ids)
        assert ("share" in ids["panel-overlay"]["buttons"]) is on_spaces


def test_building_the_page_writes_nothing_into_the_source_tree(tmp_path, tiny_backbone):
    # Gradio writes a .pyi stub beside the module of every component subclass; the page has none.
    from pathlib import Path

    from demo.service import DemoService
    from gradcam import Explainer

    source = Path(__file__).resolve().parents[1] / "demo"
    before = sorted(source.rglob("*.pyi"))
    build_demo(DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path))
    assert sorted(source.rglob("*.pyi")) == before == []


def test_every_page_event_answers_only_its_own_outputs_even_when_it_cannot_answer(tmp_path, tiny_backbone):
    """No photo yet, a mistaken value, a photo: each handler's answer names only components the event updates."""
    import numpy as np
    from PIL import Image

    from demo.service import DemoService
    from gradcam import Explainer

    photo = tmp_path / "p.png"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(photo)
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    try:
        demo = build_demo(service)
        # The six first inputs of every page event, the newer settings after them.
        page_events = [fn for fn in demo.fns.values() if fn.fn is not None and len(fn.inputs) >= 6]
        assert len(page_events) >= 12
        for fn in page_events:
            outputs = set(fn.outputs)
            for values in (
                (None, "Top prediction", None, 0.15, 0.5, "jet"),  # a slider moved before any photo
                (str(photo), "Top prediction", None, float("nan"), 0.5, "jet"),
                (str(photo), "sqare", None, 0.15, 0.5, "viridis"),
            ):
                try:
                    answer = fn.fn(*values, *[None] * (len(fn.inputs) - len(values)), None)  # their defaults
                except Exception as exc:
                    assert fn.api_name in ("explain", "explain_video"), f"{fn.name} raised {exc!r}"
                    continue
                if isinstance(answer, dict):
                    assert set(answer) <= outputs, f"{fn.name} answers components it does not update"
    finally:
        service.close()
