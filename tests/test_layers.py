"""The automatic layer: the last spatial map, or the last token layer that reaches the logits."""

from __future__ import annotations

import pytest
import timm
from torch import nn
from torchvision import models

from gradcam import UnknownLayerError
from gradcam.layers import find_layer, locate_layer


def _tiny_torchvision_vit() -> nn.Module:
    return models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (models.resnet18, "layer4"),
        (models.convnext_tiny, "features"),
        (models.densenet121, "features"),
        (models.mobilenet_v3_small, "features"),
        (lambda: timm.create_model("convnext_atto"), "stages"),
        (_tiny_torchvision_vit, "encoder.layers.encoder_layer_1.ln_1"),
        (lambda: timm.create_model("vit_tiny_patch16_224", img_size=64), "blocks.11.norm1"),
    ],
    ids=[
        "resnet18", "convnext_tiny", "densenet121", "mobilenet_v3_small", "timm-convnext_atto", "torchvision-vit",
        "timm-vit",
    ],
)
def test_locate_layer(build, expected):
    model = build().eval().requires_grad_(False)
    assert locate_layer(model, (64, 64)) == expected


def test_token_layers_report_their_prefix_tokens():
    deit = timm.create_model("deit_tiny_distilled_patch16_224", img_size=64).eval().requires_grad_(False)
    assert find_layer(deit, (64, 64)) == find_layer(deit, (64, 64), "blocks.11.norm1")
    found = find_layer(deit, (64, 64))
    assert (found.name, found.tokens, found.prefix_tokens) == ("blocks.11.norm1", True, 2)
    vit = _tiny_torchvision_vit().eval().requires_grad_(False)
    assert find_layer(vit, (64, 64)).prefix_tokens == 1


def test_a_wrong_name_is_answered_with_the_closest_names():
    model = models.resnet18().eval().requires_grad_(False)
    with pytest.raises(UnknownLayerError, match=r"no layer 'layer5'.*Closest: layer.*"):
        find_layer(model, (64, 64), "layer5")
