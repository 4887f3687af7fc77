"""Layouts: which axes of a layer's output are spatial, traced from the model, and read by the engine as maps.

The by-definition references (:func:`tests.helpers.by_definition`) state each layout by hand: a channels-last
output ``(N, h, w, C)`` is permuted to ``(N, C, h, w)`` before the paper's formula is applied.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradcam import GradCAM, load_backbone
from gradcam.layers import find_layer
from gradcam.layout import Layout, grid_reader, layout_of, token_grid

from .helpers import by_definition, correlation

NHWC_TO_NCHW = (0, 3, 1, 2)


def test_two_input_sizes_tell_the_channels_from_the_positions():
    small, big = (224, 224), (352, 288)
    assert layout_of([((1, 64, 7, 7), small), ((1, 64, 11, 9), big)]) == (Layout.CHANNELS_FIRST, 0)
    assert layout_of([((1, 7, 7, 768), small), ((1, 11, 9, 768), big)]) == (Layout.CHANNELS_LAST, 0)
    # A class token and 7 x 7 patches of 32 pixels, then 11 x 9: the token axis follows the area.
    assert layout_of([((1, 50, 192), small), ((1, 100, 192), big)]) == (Layout.TOKENS, 1)
    assert layout_of([((1, 50, 192), small), ((1, 100, 192), big)], declared_prefix=1) == (Layout.TOKENS, 1)
    # Attention weights grow with the square of the tokens, not with the sides: no map.
    assert layout_of([((1, 3, 50, 50), small), ((1, 3, 100, 100), big)]) is None
    assert layout_of([((1, 768), small), ((1, 768), big)]) is None  # a vector
    assert layout_of([((1, 7, 7, 768), small), ((1, 7, 7, 768), big)]) is None  # nothing follows the input


def test_one_input_size_reads_the_grid_of_the_input():
    size = (224, 224)
    assert layout_of([((1, 7, 7, 768), size)]) == (Layout.CHANNELS_LAST, 0)
    assert layout_of([((1, 768, 7, 7), size)]) == (Layout.CHANNELS_FIRST, 0)
    assert layout_of([((1, 197, 768), size)]) == (Layout.TOKENS, 1)
    assert layout_of([((1, 198, 768), size)], declared_prefix=2) == (Layout.TOKENS, 2)
    assert layout_of([((2, 49, 768), size)]) is None  # Swin's windows: not one image


def test_a_patch_grid_follows_the_input_shape():
    assert token_grid(49, 224, 224) == (7, 7)
    assert token_grid(14 * 28, 224, 448) == (14, 28)
    assert token_grid(9 * 8, 288, 256) == (9, 8)
    assert token_grid(7, 8, 8) is None


def test_the_reader_turns_each_layout_into_maps():
    nchw = torch.randn(2, 5, 3, 4)
    assert grid_reader(nchw, None, None, (30, 40), "x")(nchw) is nchw
    nhwc = nchw.permute(0, 2, 3, 1)
    assert torch.equal(grid_reader(nhwc, Layout.CHANNELS_LAST, None, (30, 40), "x")(nhwc), nchw)
    tokens = torch.cat([torch.zeros(2, 1, 5), nhwc.reshape(2, 12, 5)], dim=1)  # a class token, 3 x 4 patches
    assert torch.equal(grid_reader(tokens, Layout.TOKENS, 1, (30, 40), "x")(tokens), nchw)
    with pytest.raises(ValueError, match=r"outputs \(2, 5, 3, 4\); Grad-CAM needs feature maps"):
        grid_reader(nchw, Layout.TOKENS, None, (30, 40), "x")


class ChannelsLast(nn.Module):
    """A CNN whose last stage runs channels-last, as Swin's and MambaOut's stages do: ``stage`` is (N, h, w, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 4, stride=4)
        self.stage = nn.Sequential(nn.LayerNorm(12), nn.Linear(12, 12), nn.GELU())
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.stage(self.stem(x).permute(0, 2, 3, 1))  # (N, h, w, 12)
        return self.fc(hidden.mean(dim=(1, 2)))


def test_a_channels_last_stage_is_found_and_explained_by_definition():
    torch.manual_seed(0)
    model = ChannelsLast().eval()
    found = find_layer(model, (32, 48))
    assert (found.name, found.layout) == ("stage", Layout.CHANNELS_LAST)
    x = torch.randn(1, 3, 32, 48)
    ours = GradCAM(model, "stage", layout=found.layout).compute(x, [1]).maps[0, 0].numpy()
    expected = by_definition(model, "stage", x, 1, lambda t: t.permute(*NHWC_TO_NCHW))
    assert correlation(ours, expected) >= 0.9999
    # Read as (N, C, h, w), the same tensor is a map of 8 "channels" over 12 x 12 "positions": the bug.
    assumed = GradCAM(model, "stage").compute(x, [1]).maps[0, 0].numpy()
    assert correlation(assumed, expected) < 0.9


def _explained_by_definition(spec: str, size: tuple[int, int]) -> tuple[str, Layout, float]:
    backbone = load_backbone(spec, "random")
    x = torch.randn(1, 3, *size)
    cam = GradCAM(backbone.model, backbone.target_layer, layout=backbone.layout)
    result = cam.compute(x, top=3)
    correlations = []
    for k, target in enumerate(result.classes[0].tolist()):
        expected = by_definition(backbone.model, backbone.target_layer, x, target, lambda t: t.permute(*NHWC_TO_NCHW))
        if not result.empty[0, k] and np.ptp(expected) > 0:
            correlations.append(correlation(result.maps[0, k].numpy(), expected))
    assert correlations, "every map was empty"
    return backbone.target_layer, backbone.layout, min(correlations)  # type: ignore[return-value]


@pytest.mark.slow
def test_timm_swin_is_read_in_its_last_stage_channels_last_by_definition():
    layer, layout, r = _explained_by_definition("timm:swin_tiny_patch4_window7_224", (224, 224))
    # The norm after the last stage: (1, 7, 7, 768) at 224 x 224, as pytorch-grad-cam's Swin tutorial reads it.
    assert (layer, layout) == ("norm", Layout.CHANNELS_LAST)
    assert r >= 0.9999
    named = load_backbone("timm:swin_tiny_patch4_window7_224", "random", layer="layers.3")
    assert named.layout is Layout.CHANNELS_LAST


@pytest.mark.slow
def test_timm_mambaout_runs_channels_last_and_is_explained_by_definition():
    layer, layout, r = _explained_by_definition("timm:mambaout_femto", (160, 224))  # any size: two dry passes
    assert (layer, layout) == ("stages", Layout.CHANNELS_LAST)
    assert r >= 0.9999


def test_a_backbone_filled_in_by_hand_gets_its_layout_traced_by_the_explainer():
    from gradcam import Backbone, Explainer

    torch.manual_seed(0)
    model = ChannelsLast().eval()
    backbone = Backbone(
        name="mine", title="Mine", model=model, target_layer="stage", categories=("a", "b", "c"),
        mean=(0.5,) * 3, std=(0.25,) * 3, weights="random", untrained=True,
    )
    explainer = Explainer(backbone, short_side=32)
    assert explainer.cam.layout is Layout.CHANNELS_LAST
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    explanation = explainer.explain(image, target=1)
    expected = by_definition(model, "stage", explainer.preprocess(image), 1, lambda t: t.permute(*NHWC_TO_NCHW))
    assert correlation(explanation.cam, expected) >= 0.9999
