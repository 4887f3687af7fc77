"""The automatic layer: the last spatial map, or the last token layer that reaches the logits."""

from __future__ import annotations

import pytest
import timm
from torch import nn
from torchvision import models

from gradcam import UnknownLayerError
from gradcam.layers import find_layer, locate_layer
from gradcam.layout import Layout


def _tiny_torchvision_vit() -> nn.Module:
    return models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)


SLOW = pytest.mark.slow  # an ImageNet architecture, built with random weights


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(models.resnet18, "layer4", id="resnet18", marks=SLOW),
        pytest.param(models.convnext_tiny, "features", id="convnext_tiny", marks=SLOW),
        pytest.param(models.densenet121, "features", id="densenet121", marks=SLOW),
        pytest.param(models.mobilenet_v3_small, "features", id="mobilenet_v3_small", marks=SLOW),
        pytest.param(lambda: timm.create_model("convnext_atto"), "stages", id="timm-convnext_atto", marks=SLOW),
        pytest.param(_tiny_torchvision_vit, "encoder.layers.encoder_layer_1.ln_1", id="torchvision-vit"),
        pytest.param(
            lambda: timm.create_model("vit_tiny_patch16_224", img_size=64), "blocks.11.norm1", id="timm-vit", marks=SLOW
        ),
    ],
)
def test_locate_layer(build, expected):
    model = build().eval().requires_grad_(False)
    assert locate_layer(model, (64, 64)) == expected


@pytest.mark.slow
def test_token_layers_report_their_prefix_tokens():
    deit = timm.create_model("deit_tiny_distilled_patch16_224", img_size=64).eval().requires_grad_(False)
    assert find_layer(deit, (64, 64)) == find_layer(deit, (64, 64), "blocks.11.norm1")
    found = find_layer(deit, (64, 64))
    assert (found.name, found.layout, found.prefix_tokens) == ("blocks.11.norm1", Layout.TOKENS, 2)
    vit = _tiny_torchvision_vit().eval().requires_grad_(False)
    assert find_layer(vit, (64, 64)).prefix_tokens == 1


@pytest.mark.slow
def test_a_wrong_name_is_answered_with_the_closest_names():
    model = models.resnet18().eval().requires_grad_(False)
    with pytest.raises(UnknownLayerError, match=r"no layer 'layer5'.*Closest: layer.*"):
        find_layer(model, (64, 64), "layer5")


def test_a_wrong_name_of_a_small_model_lists_its_closest_layers(trained_tiny):
    with pytest.raises(UnknownLayerError, match=r"no layer 'feature'\. Closest: features, features\.0"):
        find_layer(trained_tiny, (32, 32), "feature")
    with pytest.raises(UnknownLayerError, match=r"no layer 'qqq'\. It has: features, features\.0, .*, \.\.\."):
        find_layer(trained_tiny, (32, 32), "qqq")


def test_the_last_map_of_a_small_model_is_its_layer(trained_tiny):
    found = find_layer(trained_tiny, (32, 32))
    assert (found.name, found.layout, found.prefix_tokens) == ("features", Layout.CHANNELS_FIRST, 0)
    with pytest.raises(UnknownLayerError, match="Layer 'fc' cannot be explained"):
        find_layer(trained_tiny, (32, 32), "fc")
