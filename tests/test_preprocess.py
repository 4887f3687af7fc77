"""What the network is fed: grayscale for a one-channel model (found from the model), and the size, mean, std
and resize rule of a fine-tune, each checked against the model in one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gradcam import Backbone, Explainer, GradCAM, load_backbone
from gradcam.errors import SettingError, WeightsError
from gradcam.heads import Head
from gradcam.preprocess import (
    fit_first_conv,
    fit_values,
    input_channels,
    parse_size,
    parse_values,
    with_preprocessing,
)

from .conftest import GRAY_COLOURS, MEAN, SHAPES, STD, TinyNet, make_scene, to_tensor


def _peak(cam: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(x), int(y)


def _inside(point: tuple[int, int], box: tuple[int, int, int, int], margin: int = 2) -> bool:
    x, y = point
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def test_the_input_channels_are_the_first_convolutions():
    assert input_channels(TinyNet()) == 3 and input_channels(TinyNet(channels=1)) == 1
    assert input_channels(nn.Sequential(nn.Flatten(), nn.Linear(12, 2))) == 3  # no convolution: RGB


def test_a_first_convolution_of_other_channels_is_rebuilt_to_fit_the_checkpoint():
    gray = TinyNet(channels=1).state_dict()
    model = TinyNet()
    assert fit_first_conv(model, gray) == 1 and input_channels(model) == 1
    model.load_state_dict(gray)  # strict: everything else fits as it was
    assert fit_first_conv(TinyNet(), TinyNet().state_dict()) is None  # nothing to do


def test_published_values_fit_a_grayscale_model():
    assert fit_values((0.485, 0.456, 0.406), 1) == pytest.approx((0.449,))
    assert fit_values((0.5,), 3) == (0.5, 0.5, 0.5)
    assert fit_values((0.1, 0.2, 0.3), 3) == (0.1, 0.2, 0.3)


def test_sizes_and_values_as_people_type_them():
    assert parse_size("384") == 384 and parse_size("384x320") == (384, 320) and parse_size(" 256 X 192 ") == (256, 192)
    assert parse_values("0.5,0.5,0.5", "mean") == (0.5,) * 3 and parse_values(["0.5", "0.4"], "std") == (0.5, 0.4)
    with pytest.raises(SettingError, match=r"A size is a number of pixels \(384\) or height x width"):
        parse_size("big")
    with pytest.raises(SettingError, match="The mean is one number per channel"):
        parse_values("0.5,half", "mean")


def _tiny(channels: int = 3, **changes: object) -> Backbone:
    values = {
        "name": "tiny", "title": "TinyNet", "model": TinyNet(channels=channels), "target_layer": "features",
        "categories": SHAPES, "mean": MEAN[:channels], "std": STD[:channels], "weights": "random",
        "untrained": True, "channels": channels,
    }
    return Backbone(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"mean": (0.5, 0.5)}, r"The mean has 2 values but TinyNet takes 3 channels \(RGB\): give 3 values\."),
        ({"mean": (123.7, 116.3, 103.5)}, r"\[0, 1\] scale .* got 123\.7, 116\.3, 103\.5: divide by 255"),
        ({"std": (0.0, 0.5, 0.5)}, r"The std is on the \[0, 1\] scale"),
        ({"size": 8}, "The size must be a whole number of pixels from 32 to 896, got 8"),
        ({"size": (384, 320)}, "With resize short, the size is one number"),
        ({"resize": "crop"}, "resize must be one of short, exact, not 'crop'"),
    ],
)
def test_a_contradiction_is_one_sentence(options, says):
    with pytest.raises(SettingError, match=says):
        with_preprocessing(_tiny(), **options)  # type: ignore[arg-type]


def test_a_grayscale_models_mean_has_one_value():
    with pytest.raises(SettingError, match=r"The mean has 3 values but TinyNet takes grayscale \(1 channel\)"):
        with_preprocessing(_tiny(1), mean=(0.5, 0.5, 0.5))


def test_size_and_resize_set_the_network_input():
    short = with_preprocessing(_tiny(), size=96)
    assert (short.short_side, short.fixed_size) == (96, None)
    exact = with_preprocessing(_tiny(), size=(96, 64), resize="exact")
    assert (exact.fixed_size, Explainer(exact).network_size(500, 300)) == ((96, 64), (96, 64))
    assert with_preprocessing(_tiny(), resize="exact", size=80).fixed_size == (80, 80)
    fixed = _tiny(fixed_size=(64, 64))
    with pytest.raises(SettingError, match="TinyNet takes 64 x 64 inputs only; size 96 x 96 contradicts it"):
        with_preprocessing(fixed, size=96, strict_size=True)
    with pytest.raises(SettingError, match="resize short contradicts it"):
        with_preprocessing(fixed, resize="short", strict_size=True)
    assert with_preprocessing(fixed, size=64, strict_size=True).fixed_size == (64, 64)


@pytest.mark.slow
def test_a_grayscale_model_gets_the_photo_in_grayscale_and_points_at_the_object(trained_gray):
    backbone = Backbone(
        name="gray", title="Gray net", model=trained_gray, target_layer="features", categories=SHAPES,
        mean=MEAN[:1], std=STD[:1], weights="trained here", untrained=False,
    )
    explainer = Explainer(backbone, short_side=64)
    assert explainer.channels == 1  # found from the model's first convolution
    rng = np.random.default_rng(7)
    scenes = [make_scene(rng, (i % 2,), colours=GRAY_COLOURS) for i in range(60)]
    x = explainer.to_tensor([s.image for s in scenes])
    assert x.shape == (60, 1, 64, 64) and torch.allclose(x, to_tensor([s.image for s in scenes], 1), atol=1e-5)
    maps = GradCAM(trained_gray, "features")(x, [i % 2 for i in range(60)])
    hits = sum(_inside(_peak(m.numpy()), s.objects[i % 2]) for i, (m, s) in enumerate(zip(maps, scenes)))
    assert hits >= 54, f"the peak fell on the object in only {hits} of 60 images"
    explanation = explainer.explain(scenes[1].image, guided=True)
    assert explanation.class_name == "disc" and explanation.guided is not None and explanation.guided.shape[2] == 3


def _mobilenet_file(tmp_path: Path, channels: int = 3, outputs: int = 2) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=outputs)
    if channels != 3:
        model.features[0][0] = nn.Conv2d(channels, 16, 3, stride=2, padding=1, bias=False)
    path = tmp_path / "fine-tuned.pth"
    torch.save(model.state_dict(), path)
    return path


def _labels(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(names) + "\n")
    return path


@pytest.mark.slow
def test_a_grayscale_fine_tune_of_a_torchvision_model_is_found_from_its_weights(tmp_path):
    weights = _mobilenet_file(tmp_path, channels=1)
    backbone = load_backbone("torchvision:mobilenet_v3_small", weights, _labels(tmp_path, "normal", "pneumonia"))
    assert backbone.channels == 1 and len(backbone.mean) == 1 and len(backbone.std) == 1
    assert backbone.mean == pytest.approx((float(np.mean((0.485, 0.456, 0.406))),))
    explanation = Explainer(backbone).explain(np.full((100, 140, 3), 90, np.uint8))
    assert explanation.cam.shape == (100, 140)
    with pytest.raises(SettingError, match="takes grayscale"):
        load_backbone("torchvision:mobilenet_v3_small", weights, _labels(tmp_path, "a", "b"), mean=(0.5, 0.5, 0.5))


@pytest.mark.slow
def test_a_binary_fine_tune_takes_two_names_or_one(tmp_path):
    weights = _mobilenet_file(tmp_path, outputs=1)
    spec = "torchvision:mobilenet_v3_small"
    two = load_backbone(spec, weights, _labels(tmp_path, "normal", "pneumonia"))
    assert (two.categories, two.head) == (("normal", "pneumonia"), Head.BINARY)
    one = load_backbone(spec, weights, _labels(tmp_path, "defect"))
    assert one.categories == ("not defect", "defect")
    assert load_backbone(spec, weights).categories == ("negative", "positive")
    assert load_backbone(spec, weights, _labels(tmp_path, "defect"), head="sigmoid").head is Head.BINARY
    with pytest.raises(WeightsError, match="has a head of 1 output but the labels file .* names 3 classes .*binary"):
        load_backbone(spec, weights, _labels(tmp_path, "a", "b", "c"))
    with pytest.raises(SettingError, match="A softmax over a single logit is always 100%"):
        load_backbone(spec, weights, _labels(tmp_path, "defect"), head="softmax")
    explanation = Explainer(one).explain(np.full((64, 64, 3), 90, np.uint8), target="not defect", top_k=2)
    assert sum(p.probability for p in explanation.top_k) == pytest.approx(1.0)


@pytest.mark.slow
def test_the_input_of_a_fine_tune_is_set_and_checked_by_load_backbone(tmp_path):
    spec = "torchvision:mobilenet_v3_small"
    wide = load_backbone(spec, "random", size=384, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert (wide.short_side, wide.fixed_size, wide.mean, wide.std) == (384, None, (0.5,) * 3, (0.5,) * 3)
    assert load_backbone(spec, "random", size=(320, 256), resize="exact").fixed_size == (320, 256)
    with pytest.raises(SettingError, match="The mean has 2 values but mobilenet_v3_small .* takes 3 channels"):
        load_backbone(spec, "random", mean=(0.5, 0.5))
    vit = "timm:vit_tiny_patch16_224"  # one input size only
    with pytest.raises(SettingError, match="takes 224 x 224 inputs only; size 384 x 384 contradicts it"):
        load_backbone(vit, "random", size=384)
