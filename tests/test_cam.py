"""The Grad-CAM engine: maps, targets, batching, hooks, model state, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gradcam import GradCAM, HookedVGG19

from .conftest import TinyNet


def reference_gradcam(model: HookedVGG19, x: torch.Tensor, target: int) -> torch.Tensor:
    """The original design, step by step: full backward, stored gradient, pooled weights."""
    x = x.clone().requires_grad_(True)
    model.requires_grad_(True)
    try:
        logits = model(x)
        logits[0, target].backward()
        gradients = model.get_activations_gradient()  # (1, 512, h, w)
        activations = model.get_activations(x).detach()
    finally:
        model.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (cam - cam.min()) / (cam.max() - cam.min())


def test_vgg19_matches_the_original_full_backward_design(vgg19_random):
    x = torch.randn(1, 3, 96, 128)
    cam = GradCAM(vgg19_random.model, "features_conv")
    result = cam.compute(x, top=3)
    for k, target in enumerate(result.classes[0].tolist()):
        expected = reference_gradcam(vgg19_random.model, x, target)
        assert torch.allclose(result.maps[0, k], expected, atol=1e-4), f"class {target} differs"


def test_vgg19_fast_path_equals_generic_hook_on_torchvision_model(vgg19_random):
    hooked = vgg19_random.model
    plain = torchvision.models.vgg19().eval().to(memory_format=torch.channels_last)  # same layout, same arithmetic
    plain.features[:36].load_state_dict(hooked.features_conv.state_dict())
    plain.classifier.load_state_dict(hooked.classifier.state_dict())
    x = torch.randn(2, 3, 64, 96)
    fast = GradCAM(hooked, "features_conv").compute(x, top=2)
    generic = GradCAM(plain, "features.35").compute(x, top=2)  # relu5_4, an inplace ReLU
    assert torch.equal(fast.classes, generic.classes)
    assert (fast.maps - generic.maps).abs().max() < 1e-5


@pytest.mark.parametrize(("builder", "layer"), [(torchvision.models.resnet50, "layer4"), (torchvision.models.densenet121, "features.norm5")])
def test_other_backbones_batched_classes_equal_single_calls(builder, layer):
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(2, 3, 96, 96)
    cam = GradCAM(model, layer)
    batched = cam.compute(x, top=5)
    assert batched.maps.shape == (2, 5, 96, 96)
    for k in range(5):
        single = cam(x, targets=batched.classes[:, k].tolist())
        assert (single - batched.maps[:, k]).abs().max() < 1e-5


def test_maps_are_normalised_float32_at_input_size(trained_tiny):
    x = torch.randn(3, 3, 40, 56)
    maps = GradCAM(trained_tiny, "features")(x)
    assert maps.shape == (3, 40, 56) and maps.dtype == torch.float32
    assert maps.amin().item() == 0.0 and torch.allclose(maps.flatten(1).amax(1), torch.ones(3))


def test_targets_forms(trained_tiny):
    cam = GradCAM(trained_tiny, "features")
    x = torch.randn(2, 3, 32, 32)
    top = cam.compute(x).classes[:, 0]
    assert torch.equal(cam.compute(x, targets=None).classes[:, 0], top)
    assert cam.compute(x, targets=1).classes.tolist() == [[1], [1]]
    assert cam.compute(x, targets=[0, 1]).classes.tolist() == [[0], [1]]
    assert cam.compute(x, targets=[[0, 1], [1, None]]).classes.tolist() == [[0, 1], [1, int(top[1])]]
    assert cam.compute(x, size=(10, 20)).maps.shape == (2, 1, 10, 20)


@pytest.mark.parametrize(
    ("targets", "message"),
    [(5, r"Class indices must be in \[0, 2\)"), ([0], "Expected 2 targets"), ([[0], [0, 1]], "equal length")],
)
def test_bad_targets_are_refused(trained_tiny, targets, message):
    with pytest.raises(ValueError, match=message):
        GradCAM(trained_tiny, "features").compute(torch.randn(2, 3, 32, 32), targets)


def test_bad_input_is_refused(trained_tiny):
    with pytest.raises(ValueError, match=r"float tensor \(N, 3, H, W\)"):
        GradCAM(trained_tiny, "features")(torch.zeros(3, 32, 32, dtype=torch.uint8))


def test_unknown_layer_is_refused(trained_tiny):
    with pytest.raises(AttributeError):
        GradCAM(trained_tiny, "features.99")


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_hooks_are_removed_after_success_and_after_an_exception(trained_tiny):
    cam = GradCAM(trained_tiny, "features")
    before = _hook_count(trained_tiny)
    cam(torch.randn(1, 3, 32, 32))
    assert _hook_count(trained_tiny) == before
    with pytest.raises(RuntimeError):
        cam(torch.randn(1, 5, 32, 32))  # wrong channel count fails inside the forward pass
    assert _hook_count(trained_tiny) == before


def test_the_callers_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = TinyNet().train()  # training mode, parameters requiring grad, as a caller may have it
    model.fc.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    GradCAM(model, "features")(torch.randn(2, 3, 32, 32))
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters()), "a parameter gradient was written"
    assert torch.is_grad_enabled()


def test_no_parameter_gradient_with_the_vgg_fast_path(vgg19_random):
    model = vgg19_random.model
    model.requires_grad_(True)
    try:
        GradCAM(model, "features_conv").compute(torch.randn(1, 3, 64, 64), top=3)
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.requires_grad_(False)


def test_no_positive_evidence_gives_zeros_and_a_flag_not_nan():
    model = TinyNet().eval()
    last = model.features[5]
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, -1.0)  # the target layer's output is all zero after its ReLU
    result = GradCAM(model, "features").compute(torch.randn(2, 3, 32, 32))
    assert result.empty.all()
    assert not torch.isnan(result.maps).any() and (result.maps == 0).all()


def test_eight_threads_get_exactly_the_sequential_results(trained_tiny, vgg19_random):
    inputs = [torch.randn(1, 3, 48 + 8 * i, 64) for i in range(8)]
    for model, layer in ((trained_tiny, "features"), (vgg19_random.model, "features_conv")):
        cam = GradCAM(model, layer)
        sequential = [cam.compute(x, top=2) for x in inputs]
        start = threading.Barrier(8)

        def run(x: torch.Tensor, start: threading.Barrier = start, cam: GradCAM = cam):
            start.wait()
            return cam.compute(x, top=2)

        with ThreadPoolExecutor(8) as pool:
            concurrent = list(pool.map(run, inputs))
        for alone, together in zip(sequential, concurrent):
            assert torch.equal(alone.classes, together.classes)
            assert torch.equal(alone.maps, together.maps), f"{layer}: a concurrent result differs"
        assert _hook_count(model) == 0
