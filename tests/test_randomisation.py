"""The model-parameter randomisation test: the cascade, the copy, the rank correlation and the known answers.

Known answers on the tiny CNN the tests train: after the cascade, Grad-CAM's correlation (the mean of three
draws) falls below 0.5 on at least 9 of 10 images, at its default layer (``features``, the whole trunk: every
layer is re-initialised) and at its second convolution (``features.3``). Guided Backpropagation, the
test's built-in negative control, does *not* stay high on this three-layer network (0.2-0.45: its input is mostly
noise, and the first convolution is re-initialised or most of the network above it is); on EfficientNet-Lite0's
real weights and the example photos it does (0.95 and more, ``tests/test_real_photos.py``), as Adebayo et al.
found on deep ImageNet models. Single draws scatter: a random head's signs alone decide whether the object or
the background lights up (one photo: -0.6 to 0.7), which is why three are averaged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision
from scipy.stats import spearmanr

from gradcam import Explainer, GradCAM
from gradcam.randomisation import cascade, randomised_copy, spearman

from .conftest import TinyNet, make_scene


def test_the_cascade_goes_from_the_top_down_to_the_target_layer():
    model = TinyNet().eval()
    x = torch.zeros(1, 3, 32, 32)
    assert cascade(model, "features", x) == ["fc", "features.5", "features.3", "features.0"]
    assert cascade(model, "features.5", x) == ["fc", "features.5"]
    # a layer without weights of its own (a ReLU): down to the convolution it rectifies
    assert cascade(model, "features.4", x) == ["fc", "features.5", "features.3"]
    vgg = torchvision.models.vgg19().eval()
    assert cascade(vgg, "features.35", torch.zeros(1, 3, 64, 64)) == [
        "classifier.6", "classifier.3", "classifier.0", "features.34"
    ]


@pytest.mark.slow
def test_a_normalisation_layer_takes_the_convolution_it_normalises(lite0):
    assert cascade(lite0.model, "bn2", torch.zeros(1, 3, 64, 64)) == ["classifier", "bn2", "conv_head"]


def test_the_callers_model_stays_bit_identical_and_the_copy_is_new(trained_tiny):
    before = {k: v.clone() for k, v in trained_tiny.state_dict().items()}
    flags = [p.requires_grad for p in trained_tiny.parameters()]
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    copy = randomised_copy(trained_tiny, "features", torch.zeros(1, 3, 64, 64), seed=5)
    assert torch.equal(torch.rand(3), expected_next), "the caller's random stream moved"
    after = trained_tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in trained_tiny.parameters()] == flags
    assert not torch.equal(copy.model.fc.weight, trained_tiny.fc.weight)
    again = randomised_copy(trained_tiny, "features", torch.zeros(1, 3, 64, 64), seed=5)
    assert torch.equal(again.model.fc.weight, copy.model.fc.weight), "a seed draws the same weights"
    assert copy.layers == ("fc", "features.5", "features.3", "features.0") and copy.seed == 5


def test_spearman_equals_scipys_ties_included():
    rng = np.random.default_rng(0)
    a = np.round(rng.random((20, 30)), 1)  # many ties
    b = np.round(a + rng.normal(0, 0.3, a.shape), 1)
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert spearman(np.zeros((3, 3)), b[:3, :3]) is None  # an empty map: nothing to compare
    assert spearman(a, np.ones_like(a)) == 0.0


@pytest.mark.parametrize("layer", ["features", "features.3"])
def test_gradcams_map_depends_on_the_learned_weights_of_the_tiny_cnn(tiny_backbone, layer):
    explainer = Explainer(dataclasses.replace(tiny_backbone, target_layer=layer, short_side=64))
    found = []
    for i in range(10):
        scene = make_scene(np.random.default_rng(300 + i), (i % 2,))
        cam = explainer.explain(scene.image, i % 2).cam
        sanity = explainer.trust(scene.image, cam, i % 2, method="gradcam", levels=None, steps=2).sanity
        assert sanity is not None
        found.append((sanity.correlation, sanity.control))
    assert sum(correlation < 0.5 for correlation, _ in found) >= 9, found


def test_a_map_from_elsewhere_has_no_randomisation_test(tiny_backbone):
    explainer = Explainer(dataclasses.replace(tiny_backbone, short_side=64))
    image = make_scene(np.random.default_rng(1), (0,)).image
    assert explainer.trust(image, np.random.default_rng(0).random((64, 64)), levels=None).sanity is None


def test_the_randomised_map_is_computed_with_the_same_method_and_layer(tiny_backbone):
    explainer = Explainer(dataclasses.replace(tiny_backbone, short_side=64))
    image = make_scene(np.random.default_rng(4), (0, 1)).image
    x = explainer.preprocess(image)
    copy = randomised_copy(tiny_backbone.model, "features", x, seed=0)  # the check's first draw
    expected = GradCAM(copy.model, "features", method="layercam").compute(x, [1]).maps[0, 0]
    check = explainer.trust(image, np.ones((64, 64)), 1, method="layercam", levels=None, steps=2)
    assert check.sanity is not None and check.sanity.correlation is None  # a constant map: nothing to compare
    assert check.sanity.seeds == (0, 1, 2)
    assert torch.allclose(torch.from_numpy(check.sanity.cam), expected, atol=1e-6)
