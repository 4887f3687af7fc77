"""Every picture is a function of the explanation alone: no view runs the model."""

from __future__ import annotations

import numpy as np
import pytest

from demo.cache import ExplanationCache
from gradcam import PANELS, Explainer, views, words
from gradcam.errors import NotAvailableError
from gradcam.render import draw_boxes, heatmap, overlay

from .conftest import HEIGHT, WIDTH, make_scene
from .helpers import make_explanation


@pytest.fixture(scope="module")
def full(tiny_backbone):
    scene = make_scene(np.random.default_rng(11), (0, 1))
    explainer = Explainer(tiny_backbone)
    explanation = explainer.explain(scene.image, 0, counterfactual=True, masking=True, guided=True, compare=2)
    return scene, explanation


@pytest.fixture(scope="module")
def bare(tiny_backbone):
    return Explainer(tiny_backbone).explain(make_scene(np.random.default_rng(12), (0,)).image)


def test_views_never_run_the_model(tiny_backbone, full):
    scene, explanation = full
    calls: list[int] = []
    handle = tiny_backbone.model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    try:
        pictures = [
            *views.panels(explanation).values(), views.boxed_overlay(explanation), *views.counterfactual(explanation),
            views.guided(explanation), *views.masking(explanation), *(p for p, _ in views.classes(explanation)),
            views.one_picture(explanation),
        ]
    finally:
        handle.remove()
    assert calls == []
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in pictures)
    assert views.guided(explanation).shape == scene.image.shape


def test_each_view_is_what_its_parts_make(full):
    _, explanation = full
    assert np.array_equal(views.boxed_overlay(explanation, 0.4, "viridis"),
                          draw_boxes(overlay(explanation.image, explanation.cam, 0.4, "viridis"), explanation.boxes,
                                     words.box_label(explanation)))
    captions = [caption for _, caption in views.classes(explanation)]
    assert captions == [f"{c.name} {round(c.probability * 100)}%" if c.probability >= 0.01 else captions[i]
                        for i, c in enumerate(explanation.classes)]
    hidden, kept, curve = views.masking(explanation)
    assert hidden is explanation.masking.hidden_image and curve.std() > 10


@pytest.mark.parametrize(
    ("view", "says"),
    [(views.counterfactual, "counterfactual=True"), (views.guided, "guided=True"), (views.masking, "masking=True"),
     (views.classes, "compare=N")],
)
def test_a_view_the_call_did_not_ask_for_says_how_to_get_it(bare, view, says):
    with pytest.raises(NotAvailableError, match=says):
        view(bare)


def test_the_cache_keeps_the_most_recently_used(bare):
    cache = ExplanationCache(2)
    cache.put("a", bare)
    cache.put("b", bare)
    assert cache.get("a") is bare  # "a" is now the most recent
    cache.put("c", bare)
    assert cache.get("b") is None and cache.get("a") is bare and len(cache) == 2
    cache.clear()
    assert len(cache) == 0


# The four panels -------------------------------------------------------------------------------


def test_panels_are_the_four_pictures_in_order(image: np.ndarray, cam: np.ndarray) -> None:
    explanation = make_explanation(image, cam)
    panels = views.panels(explanation)
    assert list(panels) == ["original", "heatmap", "overlay", "boxes"] == list(PANELS)
    for name, picture in panels.items():
        assert picture.shape == (HEIGHT, WIDTH, 3) and picture.dtype == np.uint8, name
    np.testing.assert_array_equal(panels["original"], image)
    np.testing.assert_array_equal(panels["heatmap"], heatmap(cam))
    np.testing.assert_array_equal(panels["overlay"], overlay(image, cam))
    np.testing.assert_array_equal(panels["boxes"], draw_boxes(image, explanation.boxes, "disc 87%"))


def test_panels_follow_alpha_and_colormap(image: np.ndarray, cam: np.ndarray) -> None:
    panels = views.panels(make_explanation(image, cam), alpha=0.0, colormap="viridis")
    np.testing.assert_array_equal(panels["overlay"], image)
    np.testing.assert_array_equal(panels["heatmap"], heatmap(cam, "viridis"))


@pytest.mark.parametrize(
    ("probability", "untrained", "label"),
    [(0.87, False, "disc 87%"), (0.004, False, "disc 0.4%"), (0.5, True, "disc 50% (untrained)")],
)
def test_the_box_label_names_the_class_and_its_probability(
    image: np.ndarray, cam: np.ndarray, probability: float, untrained: bool, label: str
) -> None:
    explanation = make_explanation(image, cam, probability=probability, untrained=untrained)
    assert words.box_label(explanation) == label
    np.testing.assert_array_equal(views.boxed(explanation), draw_boxes(image, explanation.boxes, label))


@pytest.fixture(scope="module")
def trusted(tiny_backbone):
    import dataclasses

    scene = make_scene(np.random.default_rng(13), (1,))
    explainer = Explainer(dataclasses.replace(tiny_backbone, short_side=64))
    return scene, explainer.explain(scene.image, 1, trust=True, methods=("gradcam", "layercam", "eigencam"))


def test_the_trust_and_methods_views_never_run_the_model(tiny_backbone, trusted):
    scene, explanation = trusted
    calls: list[int] = []
    handle = tiny_backbone.model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    try:
        curves, scrambled = views.trust(explanation)
        compared = views.methods(explanation)
    finally:
        handle.remove()
    assert calls == []
    assert curves.dtype == np.uint8 and curves.shape[2] == 3 and curves.std() > 10
    assert scrambled.shape == scene.image.shape
    assert [caption.split(":")[0] for _, caption in compared] == ["Grad-CAM", "LayerCAM", "Eigen-CAM"]
    assert sum("(most faithful)" in caption for _, caption in compared) == 1
    assert all(picture.shape == scene.image.shape for picture, _ in compared)


@pytest.mark.parametrize(("view", "says"), [(views.trust, "trust=True"), (views.methods, "methods=True")])
def test_the_trust_views_say_how_to_get_them(bare, view, says):
    with pytest.raises(NotAvailableError, match=says):
        view(bare)
