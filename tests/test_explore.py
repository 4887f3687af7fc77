"""The Explore area's answers, from its real handlers as Gradio calls them (``demo.fns``), without a server.

Each answer is ``{component: value}``; components are found by their ids, as a person finds them on the page.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from demo.page import build_demo
from demo.service import DemoService
from gradcam import Explainer

from .conftest import SignedNet
from .helpers import ForwardCounter


def _page(backbone, tmp_path):
    service = DemoService({backbone.title: Explainer(backbone)}, workdir=tmp_path / "work")
    return service, build_demo(service)


def _ask(demo, name: str, upload: str | None, target: str = "Top prediction", **settings) -> dict[str, object]:
    """The answer of the handler named ``name`` to the page's inputs, by element id."""
    fn = next(f.fn for f in demo.fns.values() if f.fn is not None and f.name == name)  # the page's events share one
    values = {"threshold": 0.15, "alpha": 0.5, "colormap": "jet", "layer": None, **settings}
    answer = fn(upload, target, None, values["threshold"], values["alpha"], values["colormap"], values["layer"], None)
    return {component.elem_id: value for component, value in answer.items()}


@pytest.fixture
def page(tiny_backbone, tmp_path):
    service, demo = _page(tiny_backbone, tmp_path)
    yield service, demo
    service.close()


def test_the_masking_test_hides_the_region_and_draws_its_curve(page, upload, scene):
    service, demo = page
    with ForwardCounter(service.models.get(None).backbone.model) as runs:
        answer = _ask(demo, "run_masking", upload, "square")
    assert "Hiding the highlighted area" in answer["masking-sentence"] and "square" in answer["masking-sentence"]
    hidden, kept, plot = answer["masking-hidden"], answer["masking-kept"], answer["masking-curve"]
    assert hidden.shape == kept.shape == scene.image.shape and hidden.dtype == kept.dtype == np.uint8
    x0, y0, x1, y1 = scene.objects[0]
    square = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    assert not np.array_equal(hidden[square], scene.image[square]), "the square was not hidden"
    assert np.array_equal(kept[square][2:-2, 2:-2], scene.image[square][2:-2, 2:-2]), "the square was not kept"
    assert plot.dtype == np.uint8 and plot.ndim == 3 and plot.std() > 20
    assert runs.count == 1 + 3  # the explanation, then the masking test's ten images in three batches


def test_the_counterfactual_points_at_what_speaks_against_the_class(page, upload, scene):
    service, demo = page
    answer = _ask(demo, "run_counter", upload, "square", colormap="viridis")
    assert (
        "**against** square" in answer["counter-sentence"]
        and "yellow marks the strongest" in answer["counter-sentence"]
    )
    assert answer["counter-heatmap"].shape == answer["counter-overlay"].shape == scene.image.shape
    explanation = service.cache.get((service.parse(upload).photo.sha256, "TinyNet", 0, None))
    y, x = np.unravel_index(int(explanation.counter_cam.argmax()), explanation.counter_cam.shape)
    x0, y0, x1, y1 = scene.objects[1]  # the disc
    assert x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2


def test_the_counterfactual_says_when_nothing_speaks_against_the_class(tiny_backbone, upload, tmp_path):
    signed = dataclasses.replace(tiny_backbone, name="all-for", title="Signed", model=SignedNet().eval())
    service, demo = _page(signed, tmp_path)
    try:
        answer = _ask(demo, "run_counter", upload, "square")
    finally:
        service.close()
    assert answer["counter-sentence"].startswith(
        "Nothing in this image speaks against square: the model found no contrary evidence."
    )
    colours = answer["counter-heatmap"]
    assert (colours == colours[0, 0]).all(), "an empty map is drawn in one colour"


def test_guided_gradcam_shows_detail_at_the_photos_size(page, upload, scene):
    _, demo = page
    picture = _ask(demo, "run_guided", upload)["guided-image"]
    assert picture.shape == scene.image.shape and picture.dtype == np.uint8 and picture.std() > 5


def test_the_class_comparison_shows_the_best_classes_with_their_share(page, upload, scene):
    _, demo = page
    pictures = _ask(demo, "run_classes", upload, "disc")["classes-gallery"]  # always the best classes
    captions = [caption for _, caption in pictures]
    assert {c.split(":")[0] for c in captions} == {"square", "disc"}
    assert all(re.fullmatch(r"(square|disc): (<0\.1|\d+(\.\d)?)%", c) for c in captions), captions
    percents = [float(c.split(": ")[1].strip("<%")) for c in captions]
    assert percents == sorted(percents, reverse=True) and sum(percents) == pytest.approx(100, abs=1.5)
    assert all(p.shape == scene.image.shape and p.dtype == np.uint8 for p, _ in pictures)


def test_the_report_is_one_picture_and_its_file(page, upload):
    _, demo = page
    answer = _ask(demo, "run_report", upload)
    assert answer["report-file"] == answer["report-image"] and answer["report-file"].endswith("gradcam-report.png")


@pytest.mark.parametrize(
    "name", ["run_masking", "run_counter", "run_guided", "run_classes", "run_models", "run_report"]
)
def test_a_question_without_a_photo_is_answered_in_its_sentence_and_its_pictures_stay_empty(page, name):
    _, demo = page
    answer = _ask(demo, name, None)
    sentences = [value for key, value in answer.items() if key.endswith("-sentence")]
    assert sentences == [
        "**No answer this time.** Please add an image first: drag one in, paste it, or pick an example below."
    ]
    assert all(value is None for key, value in answer.items() if not key.endswith("-sentence"))


def test_a_mistyped_class_is_answered_for_the_top_prediction(page, upload):
    _, demo = page
    answer = _ask(demo, "run_counter", upload, "sqare")
    assert "against" in answer["counter-sentence"]


def test_the_layer_picker_follows_the_model_and_a_stale_layer_becomes_the_automatic_one(page, upload):
    service, demo = page
    picked = _ask(demo, "explained", upload, layer="features.3")
    assert picked["layer"]["value"] == "features.3"
    assert picked["layer"]["choices"][0] == ("features (automatic)", "")  # "" is every model's automatic layer
    assert "features.3" in [value for _, value in picked["layer"]["choices"]]
    stale = _ask(demo, "explained", upload, layer="layer4")  # the last model's layer, still in the picker
    assert stale["layer"]["value"] == "" and "Can't explain" not in str(stale["sentence"])
    assert _ask(demo, "explained", upload, layer="features")["layer"]["value"] == ""  # its automatic one, by name
