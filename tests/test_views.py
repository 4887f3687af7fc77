"""Every picture is a function of the explanation alone: no view runs the model."""

from __future__ import annotations

import numpy as np
import pytest

from demo.cache import ExplanationCache
from gradcam import Explainer, views
from gradcam.errors import NotAvailableError
from gradcam.render import draw_boxes, overlay

from .conftest import make_scene


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
                          draw_boxes(overlay(explanation.image, explanation.cam, 0.4, "viridis"), explanation.boxes, explanation.label))
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
