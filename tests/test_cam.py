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
from .helpers import hook_count


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


@pytest.mark.slow
def test_vgg19_matches_the_original_full_backward_design(vgg19_random):
    x = torch.randn(1, 3, 96, 128)
    cam = GradCAM(vgg19_random.model, "features_conv")
    result = cam.compute(x, top=3)
    for k, target in enumerate(result.classes[0].tolist()):
        expected = reference_gradcam(vgg19_random.model, x, target)
        assert torch.allclose(result.maps[0, k], expected, atol=1e-4), f"class {target} differs"


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("builder", "layer"), [(torchvision.models.resnet50, "layer4"), (torchvision.models.densenet121, "features.norm5")]
)
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


def test_hooks_are_removed_after_success_and_after_an_exception(trained_tiny):
    cam = GradCAM(trained_tiny, "features")
    before = hook_count(trained_tiny)
    cam(torch.randn(1, 3, 32, 32))
    assert hook_count(trained_tiny) == before
    with pytest.raises(RuntimeError):
        cam(torch.randn(1, 5, 32, 32))  # wrong channel count fails inside the forward pass
    assert hook_count(trained_tiny) == before


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
        assert hook_count(model) == 0


class _BatchNormDropoutNet(nn.Module):
    """conv -> BatchNorm -> ReLU (the target) -> Dropout -> linear: training mode changes everything."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.features(x).mean(dim=(2, 3))))


def test_a_model_in_training_mode_is_explained_as_in_inference_and_left_unchanged():
    model = _BatchNormDropoutNet()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-1, 1)
        model.features[1].running_var.uniform_(0.5, 2)
    model.train()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(2, 3, 16, 16)
    first = GradCAM(model, "features").compute(x, top=2)
    second = GradCAM(model, "features").compute(x, top=2)
    assert torch.equal(first.maps, second.maps), "Dropout made the maps random"
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers()), "BatchNorm statistics changed"
    assert model.training and all(m.training for m in model.modules())
    inference = GradCAM(model.eval(), "features").compute(x, top=2)
    assert torch.equal(first.maps, inference.maps) and torch.equal(first.classes, inference.classes)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_models_in_other_float_types_give_float32_maps_close_to_float32(trained_tiny, dtype):
    x = torch.randn(2, 3, 32, 32)
    reference = GradCAM(trained_tiny, "features").compute(x, targets=[0, 1])
    model = TinyNet()
    model.load_state_dict(trained_tiny.state_dict())
    model = model.to(dtype).eval()
    result = GradCAM(model, "features").compute(x, targets=[0, 1])  # a float32 input is cast to the model's type
    assert result.maps.dtype == torch.float32 and result.logits.dtype == torch.float32
    tolerance = 1e-6 if dtype == torch.float64 else 0.1
    assert (result.maps - reference.maps).abs().max() < tolerance


def test_targets_may_be_numpy_integers_and_integer_tensors(trained_tiny):
    import numpy as np

    cam = GradCAM(trained_tiny, "features")
    x = torch.randn(2, 3, 32, 32)
    logits = trained_tiny(x)
    assert cam.compute(x, targets=np.int64(1)).classes.tolist() == [[1], [1]]
    assert cam.compute(x, targets=torch.tensor(0)).classes.tolist() == [[0], [0]]
    assert torch.equal(cam.compute(x, targets=logits.argmax(1)).classes[:, 0], logits.argmax(1))
    assert cam.compute(x, targets=np.array([[0, 1], [1, 0]])).classes.tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (True, "A class index is an integer, not bool"),
        ([0, False], "not bool"),
        (10**20, r"must be in \[0, 2\), got 100000000000000000000"),
        (10**4300, r"got a number of about 4300 digits"),
        (1.0, "not float"),
        (torch.tensor([0.0, 1.0]), "must be integers"),
        ("tabby", "not str"),
    ],
    ids=["bool", "bool-in-list", "10**20", "10**4300", "float", "float-tensor", "name"],
)
def test_targets_that_are_not_class_indices_raise_value_error(trained_tiny, targets, message):
    with pytest.raises(ValueError, match=message):
        GradCAM(trained_tiny, "features").compute(torch.randn(2, 3, 32, 32), targets)


def test_inference_mode_gets_a_message_that_says_what_to_do(trained_tiny):
    says = r"outside that block \(inside torch.no_grad\(\) is fine\)"
    with torch.inference_mode(), pytest.raises(RuntimeError, match=says):
        GradCAM(trained_tiny, "features")(torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        assert GradCAM(trained_tiny, "features")(torch.randn(1, 3, 32, 32)).shape == (1, 32, 32)


class _Wrapped(nn.Module):
    """Returns the logits inside a tuple, a dict or an object, as many libraries' models do."""

    def __init__(self, inner: nn.Module, kind: str) -> None:
        super().__init__()
        self.inner, self.kind = inner, kind

    def forward(self, x: torch.Tensor) -> object:
        logits = self.inner(x)
        if self.kind == "tuple":
            return logits, torch.zeros(1)
        if self.kind == "dict":
            return {"logits": logits}
        return type("Output", (), {"logits": logits})()


@pytest.mark.parametrize("kind", ["tuple", "dict", "object"])
def test_models_that_wrap_their_logits_are_explained(trained_tiny, kind):
    x = torch.randn(2, 3, 32, 32)
    expected = GradCAM(trained_tiny, "features").compute(x, top=2)
    result = GradCAM(_Wrapped(trained_tiny, kind), "inner.features").compute(x, top=2)
    assert torch.equal(result.classes, expected.classes) and torch.equal(result.maps, expected.maps)


def test_a_model_returning_something_else_gets_a_message_that_says_what_to_do(trained_tiny):
    class Strange(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = trained_tiny

        def forward(self, x: torch.Tensor) -> str:
            self.inner(x)
            return "no scores here"

    with pytest.raises(TypeError, match=r"returns str; Grad-CAM needs class scores .* wrap the model"):
        GradCAM(Strange(), "inner.features")(torch.randn(1, 3, 32, 32))


def test_an_unknown_layer_lists_the_closest_names(trained_tiny):
    with pytest.raises(AttributeError, match=r"no layer 'feature'\. Closest: features"):
        GradCAM(trained_tiny, "feature")


def _tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=4
    ).eval()
    with torch.no_grad():  # as if trained: layer norms that do not all start at weight 1, bias 0; a head that is not 0
        for module in vit.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
        nn.init.normal_(vit.heads.head.weight, std=0.5)
    return vit


def test_transformer_tokens_are_read_as_a_patch_grid_by_definition():
    vit = _tiny_vit()
    layer = "encoder.layers.encoder_layer_1.ln_1"  # its patch tokens still reach the class token
    x = torch.randn(1, 3, 32, 32)
    result = GradCAM(vit, layer).compute(x, targets=[[0, 1, 2, 3]])
    stored: list[torch.Tensor] = []
    handle = vit.get_submodule(layer).register_forward_hook(lambda m, i, o: stored.append(o))
    try:
        with torch.enable_grad():
            logits = vit(x)
    finally:
        handle.remove()
    compared = 0
    for target in range(4):
        # By definition: gradient of the class score with respect to the tokens, the class token dropped.
        (grad,) = torch.autograd.grad(logits[0, target], stored[0], retain_graph=True)
        tokens, grads = stored[0][0, 1:].detach(), grad[0, 1:]  # (16, 16): 4 x 4 patches, 16 channels
        cam = F.relu((tokens * grads.mean(0)).sum(1)).reshape(1, 1, 4, 4)
        cam = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
        if cam.max() <= 0:
            assert result.empty[0, target]
            continue
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        assert (result.maps[0, target] - cam).abs().max() < 1e-5
        compared += 1
    assert compared >= 1


def test_tokens_that_form_no_grid_get_a_clear_message():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(3, 8)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x.flatten(2).transpose(1, 2)[:, :7])  # (N, 7, 8): not a square
            return self.fc(tokens.mean(1))

    with pytest.raises(ValueError, match="7 tokens, which do not form a grid of patches of the 8 x 8 input"):
        GradCAM(Tokens(), "embed")(torch.randn(1, 3, 8, 8))
