"""Heads: softmax, independent sigmoids (multi-label) and a single logit read as two classes (binary).

The binary model is the tiny CNN of the tests retrained with one logit ("disc"); its negative class ("square")
is explained by the negated logit, as pytorch-grad-cam's ``BinaryClassifierOutputTarget`` does.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gradcam import Backbone, Explainer, GradCAM, words
from gradcam.errors import SettingError
from gradcam.heads import Head, binary_names, probabilities, resolve_head, two_classes
from gradcam.save import manifest

from .conftest import MEAN, SHAPES, STD, make_scene, to_tensor
from .helpers import correlation


def _peak(cam: torch.Tensor | np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(np.asarray(cam))), np.asarray(cam).shape)
    return int(x), int(y)


def _inside(point: tuple[int, int], box: tuple[int, int, int, int], margin: int = 2) -> bool:
    x, y = point
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def test_auto_is_binary_for_one_logit_and_softmax_or_what_the_model_declares_otherwise():
    assert resolve_head("auto", 1) is Head.BINARY and resolve_head("sigmoid", 1) is Head.BINARY
    assert resolve_head("auto", 10) is Head.SOFTMAX and resolve_head("sigmoid", 10) is Head.SIGMOID
    assert resolve_head("auto", 10, "multi_label_classification") is Head.SIGMOID
    assert resolve_head("softmax", 10, "multi_label_classification") is Head.SOFTMAX  # asked for: kept
    with pytest.raises(SettingError, match="A softmax over a single logit is always 100%"):
        resolve_head("softmax", 1)
    with pytest.raises(SettingError, match="head must be one of auto, softmax, sigmoid, not 'tanh'"):
        resolve_head("tanh", 10)


def test_one_logit_read_as_two_classes_gives_the_sigmoid_exactly():
    z = torch.tensor([[-3.0], [0.0], [0.4], [7.5]], dtype=torch.float64)
    two = two_classes(z)
    assert torch.equal(two, torch.cat([-z / 2, z / 2], dim=1))
    p = probabilities(z, Head.BINARY)
    assert torch.allclose(p[:, 1], torch.sigmoid(z[:, 0]), atol=1e-15, rtol=0)
    assert torch.allclose(p.sum(1), torch.ones(4, dtype=torch.float64))
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    assert torch.allclose(probabilities(logits, Head.SIGMOID), torch.sigmoid(logits.double()))  # each on its own
    assert torch.allclose(probabilities(logits, Head.SOFTMAX), logits.double().softmax(1))


def test_the_names_of_a_binary_model():
    assert binary_names(["pneumonia"]) == ("not pneumonia", "pneumonia")
    assert binary_names(["normal", "pneumonia"]) == ("normal", "pneumonia")
    assert binary_names(None) == ("negative", "positive")
    with pytest.raises(SettingError, match="has two classes, but 3 names were given"):
        binary_names(["a", "b", "c"])


def _binary_backbone(model: torch.nn.Module) -> Backbone:
    return Backbone(
        name="binary", title="Binary net", model=model, target_layer="features", categories=SHAPES,
        mean=MEAN, std=STD, weights="trained here", untrained=False, head=Head.BINARY,
    )


@pytest.mark.slow
def test_the_retrained_binary_model_points_at_both_classes(trained_binary):
    rng = np.random.default_rng(7)
    scenes = [make_scene(rng, (i % 2,)) for i in range(60)]
    maps = GradCAM(trained_binary, "features")(to_tensor([s.image for s in scenes]), [i % 2 for i in range(60)])
    hits = sum(_inside(_peak(m), s.objects[i % 2]) for i, (m, s) in enumerate(zip(maps, scenes)))
    assert hits >= 54, f"the peak fell on the object in only {hits} of 60 images"


@pytest.mark.slow
def test_explaining_the_negative_class_highlights_the_other_object(trained_binary):
    rng = np.random.default_rng(11)
    scenes = [make_scene(rng, (0, 1)) for _ in range(30)]
    # Class 0, "square", is the negated logit; class 1, "disc", the logit.
    result = GradCAM(trained_binary, "features").compute(to_tensor([s.image for s in scenes]), [[0, 1]] * 30)
    right = sum(
        _inside(_peak(maps[0]), scene.objects[0]) and _inside(_peak(maps[1]), scene.objects[1])
        for scene, maps in zip(scenes, result.maps)
    )
    assert right >= 24, f"the peaks followed the class in only {right} of 30 two-object images"


@pytest.mark.slow
def test_the_binary_probability_is_the_sigmoid_of_the_logit(trained_binary):
    explainer = Explainer(_binary_backbone(trained_binary), short_side=64)
    image = make_scene(np.random.default_rng(3), (1,)).image
    explanation = explainer.explain(image, target="disc", top_k=2)
    with torch.no_grad():
        z = trained_binary(explainer.preprocess(image))[0, 0].double()
    assert explanation.probability == pytest.approx(float(torch.sigmoid(z)), abs=1e-12)
    assert [p.name for p in explanation.top_k] == ["disc", "square"]
    assert explanation.top_k[1].probability == pytest.approx(float(torch.sigmoid(-z)), abs=1e-12)
    assert explanation.head is Head.BINARY and manifest(explanation)["head"] == "binary"
    sure = words.percent(float(torch.sigmoid(z)))
    assert words.summary(explanation, asked=False).plain.startswith(f"The model is {sure} sure this is disc.")


@pytest.mark.slow
@pytest.mark.parametrize("category", [0, 1])
def test_the_binary_maps_are_pytorch_grad_cams_binary_target(trained_binary, category):
    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    x = to_tensor([make_scene(np.random.default_rng(5), (0, 1)).image])
    ours = GradCAM(trained_binary, "features").compute(x, [category]).maps[0, 0].numpy()
    with ReferenceGradCAM(model=trained_binary, target_layers=[trained_binary.features]) as reference:
        target = BinaryClassifierOutputTarget(category)
        theirs = reference(input_tensor=x.clone().requires_grad_(True), targets=[target])
    assert correlation(ours, theirs[0]) >= 0.9999


def test_a_multi_label_models_probabilities_are_its_sigmoids_and_its_words_say_likely(trained_tiny):
    backbone = Backbone(
        name="tags", title="Tags", model=trained_tiny, target_layer="features", categories=SHAPES,
        mean=MEAN, std=STD, weights="trained here", untrained=False, head=Head.SIGMOID,
    )
    explainer = Explainer(backbone, short_side=64)
    image = make_scene(np.random.default_rng(4), (0, 1)).image
    explanation = explainer.explain(image, top_k=2)
    with torch.no_grad():
        logits = trained_tiny(explainer.preprocess(image))[0].double()
    expected = sorted(((float(torch.sigmoid(v)), i) for i, v in enumerate(logits)), reverse=True)
    assert [p.index for p in explanation.top_k] == [i for _, i in expected]
    assert [p.probability for p in explanation.top_k] == pytest.approx([p for p, _ in expected], abs=1e-12)
    first, second = explanation.top_k
    said = words.summary(explanation, asked=False).plain
    assert said.startswith(
        f"This image is {words.percent(first.probability)} likely to contain {first.name} and "
        f"{words.percent(second.probability)} {second.name}. Each label is judged on its own"
    )
    assert manifest(explanation)["sentence"] == said and manifest(explanation)["head"] == "sigmoid"
    line = words.cli_line(explanation, "x.png", "out/x")
    assert line.startswith(f"x.png: {words.percent(first.probability)} likely to contain {first.name}; labels: ")
    other = explainer.explain(image, target=second.index)
    assert words.summary(other).plain.startswith(
        f"You asked about {second.name}: the model finds the image {words.percent(second.probability)} likely to "
        f"contain it (its most likely label is {first.name}"
    )


def test_a_two_class_model_rewritten_as_one_logit_keeps_its_probabilities(trained_tiny):
    """Its logit difference z1 - z0, read as (-(z1 - z0)/2, (z1 - z0)/2), has the two-class model's softmax."""
    model = copy.deepcopy(trained_tiny)
    weight, bias = model.fc.weight.detach(), model.fc.bias.detach()
    model.fc = torch.nn.Linear(weight.shape[1], 1)
    with torch.no_grad():
        model.fc.weight.copy_(weight[1:] - weight[:1])
        model.fc.bias.copy_(bias[1:] - bias[:1])
    x = to_tensor([make_scene(np.random.default_rng(9), (0, 1)).image])
    two = GradCAM(trained_tiny, "features").compute(x, [[0, 1]])
    one = GradCAM(model, "features").compute(x, [[0, 1]])
    assert one.logits.shape == (1, 2) and torch.equal(one.classes, two.classes)
    assert torch.allclose(probabilities(one.logits, Head.BINARY), probabilities(two.logits, Head.SOFTMAX), atol=1e-6)
