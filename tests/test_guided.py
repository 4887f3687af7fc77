"""Guided Backpropagation and Guided Grad-CAM: the values, the picture, and the caller's model left alone."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from torch import nn

from gradcam import Explainer
from gradcam.guided import guided_backprop, guided_gradcam

from .conftest import make_scene, to_tensor
from .helpers import hook_count


def _plain_gradient(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(x)[0, target], x)
    return grad[0]


@pytest.fixture(scope="module")
def explainer(tiny_backbone) -> Explainer:
    return Explainer(tiny_backbone)


@pytest.mark.parametrize("inplace", [False, True])
def test_only_positive_gradients_pass_each_relu(inplace):
    # score = w2 . relu(W1 x + b1): the plain gradient is W1^T (w2 * [h > 0]); the guided
    # one also drops the negative gradients arriving at the ReLU: W1^T (max(w2, 0) * [h > 0]).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        first, second = nn.Linear(48, 16), nn.Linear(16, 3)
        x = torch.randn(1, 3, 4, 4)
    model = nn.Sequential(nn.Flatten(), first, nn.ReLU(inplace=inplace), second).eval()
    target = 2
    with torch.no_grad():
        active = (first(x.flatten(1))[0] > 0).float()
        w2 = second.weight[target]
        expected = (first.weight.T @ (w2.clamp(min=0) * active)).reshape(3, 4, 4)
        plain = (first.weight.T @ (w2 * active)).reshape(3, 4, 4)
    guided = guided_backprop(model, x, target)
    assert guided.shape == (3, 4, 4)
    torch.testing.assert_close(guided, expected)
    assert not torch.allclose(guided, plain), "the guide changed nothing: the example has no negative gradient"
    torch.testing.assert_close(_plain_gradient(model, x, target), plain)  # the hooks are gone


def test_returns_the_input_gradient_and_leaves_the_model_alone(trained_tiny, explainer):
    scene = make_scene(np.random.default_rng(2), (0,))
    x = explainer.preprocess(scene.image)  # (1, 3, 224, 224)
    flags = [p.requires_grad for p in trained_tiny.parameters()]
    assert all(flags), "the test needs parameters that would receive a gradient"
    hooks = hook_count(trained_tiny)
    guided = guided_backprop(trained_tiny, x, 0)
    assert guided.shape == (3, 224, 224) and torch.isfinite(guided).all() and guided.abs().sum() > 0
    assert all(p.grad is None for p in trained_tiny.parameters()), "a parameter gradient was written"
    assert [p.requires_grad for p in trained_tiny.parameters()] == flags
    assert not trained_tiny.training and hook_count(trained_tiny) == hooks
    assert not x.requires_grad


class _Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_no_hook_is_left_behind_after_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ReLU(inplace=True), _Boom())
    with pytest.raises(RuntimeError, match="boom"):
        guided_backprop(model, torch.randn(1, 3, 8, 8), 0)
    assert hook_count(model) == 0


def test_works_on_vgg19_with_its_inplace_relus(vgg19_random):
    model = vgg19_random.model
    hooks = hook_count(model)
    x = torch.randn(1, 3, 32, 32)
    guided = guided_backprop(model, x, 281)
    assert guided.shape == (3, 32, 32) and torch.isfinite(guided).all() and guided.abs().sum() > 0
    assert hook_count(model) == hooks
    assert all(p.grad is None for p in model.parameters())


def test_a_batch_of_two_is_refused(trained_tiny):
    with pytest.raises(ValueError, match=r"Expected one image \(1, C, H, W\), got \(2, 3, 16, 16\)"):
        guided_backprop(trained_tiny, torch.randn(2, 3, 16, 16), 0)


@pytest.fixture(scope="module")
def disc(explainer):
    """A 64 x 96 scene (not square, so that height and width cannot be swapped unseen) with a disc."""
    rng = np.random.default_rng(3)
    image = np.concatenate([make_scene(rng, (1,)).image, rng.integers(60, 140, (64, 32, 3), dtype=np.uint8)], axis=1)
    return explainer.explain(image, "disc")


def test_guided_gradcam_is_a_picture_of_the_image_size(explainer, disc):
    picture = guided_gradcam(explainer, disc)
    assert picture.shape == (64, 96, 3) and picture.dtype == np.uint8
    assert picture.std() > 5, "the picture is blank"


def test_guided_gradcam_is_mid_grey_where_the_map_is_zero(explainer, disc):
    cam = disc.cam.copy()
    cam[:, 48:] = 0.0
    picture = guided_gradcam(explainer, dataclasses.replace(disc, cam=cam))
    assert picture[:, :40].std() > 5  # detail where the map is on
    away = picture[:, 56:].astype(int)  # a few pixels away from the edge of the map, which the resizing blurs
    assert np.abs(away - 128).max() <= 1, f"not grey where nothing counts: {np.unique(away)}"
    blank = guided_gradcam(explainer, dataclasses.replace(disc, cam=np.zeros_like(disc.cam)))
    assert (blank == 128).all()


def test_guided_gradcam_shows_detail_on_the_object(explainer):
    rng = np.random.default_rng(5)
    ratios = []
    for i in range(16):
        scene = make_scene(rng, (i % 2,))
        picture = guided_gradcam(explainer, explainer.explain(scene.image, i % 2))
        energy = np.abs(picture.astype(float) - 128).sum(axis=2)
        x0, y0, x1, y1 = scene.objects[i % 2]
        inside = np.zeros(energy.shape, dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        ratios.append(energy[inside].mean() / max(energy[~inside].mean(), 1e-9))
    # Measured: inside the box 3 to 5 times the energy outside for discs, over 50 times for squares.
    assert sum(r > 2 for r in ratios) >= 14, f"energy ratios inside/outside the box: {np.round(ratios, 1)}"


def test_threads_get_what_they_would_get_alone(trained_tiny):
    # Guided hooks are filtered by thread: a plain gradient taken at the same time in
    # another thread must not be guided (and guided calls must not guide each other).
    rng = np.random.default_rng(6)
    inputs = [to_tensor([make_scene(rng, (i % 2,)).image]) for i in range(8)]  # (1, 3, 64, 64) each
    jobs = [(guided_backprop if i < 4 else _plain_gradient, x, i % 2) for i, x in enumerate(inputs)]
    alone = [job(trained_tiny, x, target) for job, x, target in jobs]
    hooks = hook_count(trained_tiny)
    start = threading.Barrier(len(jobs))
    together: list[list[torch.Tensor]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        job, x, target = jobs[i]
        try:
            start.wait()
            for _ in range(5):
                together[i].append(job(trained_tiny, x, target))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i, results in enumerate(together):
        for result in results:
            torch.testing.assert_close(result, alone[i], msg=f"thread {i} ({jobs[i][0].__name__})")
    assert hook_count(trained_tiny) == hooks
    plain = _plain_gradient(trained_tiny, inputs[0], 0)
    assert not torch.allclose(alone[0], plain), "guided and plain agree: the test shows nothing"


def test_relu6_is_guided_like_relu():
    from gradcam.guided import guided_backprop

    torch.manual_seed(0)
    six = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU6(), nn.Flatten(), nn.LazyLinear(2)).eval()
    six(torch.randn(1, 3, 8, 8))
    relu = nn.Sequential(six[0], nn.ReLU(), six[2], six[3]).eval()
    x = torch.randn(1, 3, 8, 8) * 0.5  # activations stay below 6: both rectifiers agree
    assert torch.allclose(guided_backprop(six, x, 1), guided_backprop(relu, x, 1))
    assert not torch.equal(guided_backprop(six, x, 1), _plain_gradient(six, x, 1))


@pytest.mark.parametrize("activation", [nn.SiLU, nn.GELU, nn.Hardswish])
def test_activations_without_a_guided_rule_say_so_instead_of_a_wrong_picture(activation):
    from gradcam import GradCAMError
    from gradcam.guided import guided_backprop

    model = nn.Sequential(nn.Conv2d(3, 4, 3), activation(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    with pytest.raises(GradCAMError, match=f"not available for this model: it uses {activation.__name__} activations"):
        guided_backprop(model, torch.randn(1, 3, 8, 8), 0)
