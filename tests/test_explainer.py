"""Explaining images: class targets, input sizes, maps at the image's size, boxes, several classes."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from torchvision import models

from gradcam import Explainer, UnknownClassError, resolve_class, words
from gradcam.layout import Layout
from gradcam.preprocess import input_size

from .conftest import SHAPES, make_scene

CATEGORIES = tuple(models.VGG19_Weights.IMAGENET1K_V1.meta["categories"])


def wide_scene(seed: int, shape: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 64 x 104 image: a scene with one object, widened with 40 columns of background noise."""
    rng = np.random.default_rng(seed)
    scene = make_scene(rng, (shape,))
    image = np.concatenate([scene.image, rng.integers(60, 140, (64, 40, 3), dtype=np.uint8)], axis=1)
    return image, scene.objects[shape]


def intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1) * max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    area = lambda box: (box[2] - box[0] + 1) * (box[3] - box[1] + 1)  # noqa: E731
    common = intersection(a, b)
    return common / (area(a) + area(b) - common)


# Class targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("tabby", "tabby"),
        ("TABBY", "tabby"),
        ("  Tiger   CAT ", "tiger cat"),
        ("persian cat", "Persian cat"),
        (281, "tabby"),
        (np.int64(281), "tabby"),
        ("281", "tabby"),
        (" 0 ", "tench"),
        ("999", "toilet tissue"),
    ],
)
def test_resolve_class_by_name_or_index(target, expected):
    assert CATEGORIES[resolve_class(CATEGORIES, target)] == expected


@pytest.mark.parametrize("target", [1000, -1, "1000", 10**12])
def test_resolve_class_index_out_of_range(target):
    with pytest.raises(UnknownClassError, match="out of range: use 0 to 999"):
        resolve_class(CATEGORIES, target)


@pytest.mark.parametrize(
    ("target", "closest"), [("tabbby", "tabby"), ("persian kat", "Persian cat"), ("nosuchclass", "sunglass")]
)
def test_unknown_class_lists_the_closest_names(target, closest):
    with pytest.raises(UnknownClassError, match=f"Unknown class '{target}'. Closest: {closest}") as raised:
        resolve_class(CATEGORIES, target)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("target", ["", "   ", "-1", "²", "3.5"])
def test_strings_that_are_neither_names_nor_indices(target):
    with pytest.raises(UnknownClassError, match="Unknown class"):
        resolve_class(CATEGORIES, target)


@pytest.mark.parametrize("target", [True, 2.0, None])
def test_other_types_are_refused(target):
    with pytest.raises(UnknownClassError, match="name or an index"):
        resolve_class(CATEGORIES, target)


# Input size ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (224, 224, (224, 224)),
        (480, 640, (224, 299)),  # landscape: the shorter side is 224, the ratio is kept
        (640, 480, (299, 224)),  # portrait
        (50, 80, (224, 358)),  # small images are enlarged
        (3000, 4000, (224, 299)),
        (100, 1000, (90, 896)),  # the long side is capped at 896
        (10, 10_000, (32, 896)),  # and no side goes below 32
        (10_000, 10, (896, 32)),
    ],
)
def test_input_size(height, width, expected):
    assert input_size(height, width) == expected


def test_input_size_with_another_short_side():
    assert input_size(64, 80, short_side=64) == (64, 80)
    assert input_size(300, 600, short_side=112) == (112, 224)


# Explaining with the trained tiny model -------------------------------------------------------


def test_explain_maps_the_whole_image_without_cropping(tiny_backbone):
    image, _ = wide_scene(0)
    before = image.copy()
    explanation = Explainer(tiny_backbone).explain(image)
    assert explanation.cam.shape == (64, 104) and explanation.cam.dtype == np.float32
    assert explanation.cam.min() >= 0.0 and explanation.cam.max() == pytest.approx(1.0)
    assert np.array_equal(explanation.image, image)
    assert np.array_equal(image, before) and image.flags.writeable, "the caller's array was changed"


def test_prediction_names_and_probabilities(tiny_backbone):
    image, _ = wide_scene(1, shape=1)
    explanation = Explainer(tiny_backbone).explain(image)
    assert explanation.class_index == 1 and explanation.class_name == "disc"  # the model recognises the disc
    assert [p.name for p in explanation.top_k] == [SHAPES[p.index] for p in explanation.top_k]
    assert explanation.top_k[0].index == explanation.class_index
    assert explanation.probability == explanation.top_k[0].probability > 0.5
    probabilities = [p.probability for p in explanation.top_k]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-9
    assert explanation.model_name == "TinyNet" and explanation.layer_name == "features"


def test_boxes_lie_inside_the_image(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    for seed in range(5):
        image, _ = wide_scene(seed, shape=seed % 2)
        for threshold in (0.0, 0.15, 0.9):
            explanation = explainer.explain(image, threshold=threshold)
            assert explanation.boxes and explanation.threshold == threshold
            for x0, y0, x1, y1 in explanation.boxes:
                assert 0 <= x0 <= x1 < 104 and 0 <= y0 <= y1 < 64


def test_the_box_covers_the_object(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    for seed in range(10):
        image, obj = wide_scene(seed, shape=seed % 2)
        (box,) = explainer.explain(image, target=seed % 2).boxes
        object_area = (obj[2] - obj[0] + 1) * (obj[3] - obj[1] + 1)
        assert intersection(box, obj) >= 0.8 * object_area, f"seed {seed}: box {box}, object {obj}"


def test_each_class_box_finds_its_own_object(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    rng = np.random.default_rng(5)
    for _ in range(15):
        scene = make_scene(rng, (0, 1))  # a red square and a green disc
        square, disc = (explainer.explain(scene.image, name, threshold=0.5) for name in ("square", "disc"))
        for explanation, own, other in ((square, 0, 1), (disc, 1, 0)):
            box = explanation.boxes[0]
            assert iou(box, scene.objects[own]) >= 0.5, f"{explanation.class_name}: box {box}, objects {scene.objects}"
            assert iou(box, scene.objects[own]) > iou(box, scene.objects[other])


def test_named_target(tiny_backbone):
    image, _ = wide_scene(2, shape=0)
    explainer = Explainer(tiny_backbone)
    disc = explainer.explain(image, target="DISC")
    square = explainer.explain(image, target="square")
    assert (disc.class_index, disc.class_name) == (1, "disc")
    assert (square.class_index, square.class_name) == (0, "square")
    assert disc.probability < 0.5 < square.probability
    assert disc.top_k == square.top_k  # the ranking does not depend on the explained class
    assert not np.allclose(disc.cam, square.cam)


def test_unknown_target_and_bad_threshold(tiny_backbone):
    image, _ = wide_scene(3)
    explainer = Explainer(tiny_backbone)
    with pytest.raises(UnknownClassError, match="Unknown class 'triangle'"):
        explainer.explain(image, target="triangle")
    with pytest.raises(UnknownClassError, match="out of range: use 0 to 1"):
        explainer.explain(image, target=2)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        explainer.explain(image, threshold=1.5)


def test_explanation_arrays_are_read_only(tiny_backbone):
    image, _ = wide_scene(4)
    explanation = Explainer(tiny_backbone).explain(image)
    with pytest.raises(ValueError, match="read-only"):
        explanation.cam[0, 0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        explanation.image[0, 0] = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        explanation.class_index = 0  # type: ignore[misc]


def test_path_bytes_pil_and_array_give_the_same_result(tiny_backbone, tmp_path):
    image, _ = wide_scene(6, shape=1)
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    explainer = Explainer(tiny_backbone)
    reference = explainer.explain(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    for source in (path, str(path), buffer.getvalue(), Image.open(path)):
        explanation = explainer.explain(source)
        assert np.array_equal(explanation.image, image)
        assert explanation.class_index == reference.class_index
        assert explanation.probability == pytest.approx(reference.probability, abs=1e-12)
        assert np.allclose(explanation.cam, reference.cam, atol=1e-6)
        assert explanation.boxes == reference.boxes


def test_trained_backbone_is_not_flagged_untrained(tiny_backbone):
    image, _ = wide_scene(7)
    explanation = Explainer(tiny_backbone).explain(image)
    assert explanation.untrained is False and "untrained" not in words.box_label(explanation)


# The real VGG19 architecture (untrained) -------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (40, 72, 3), dtype=np.uint8)


def test_untrained_flag_propagates_from_the_backbone(vgg19_random, vgg_image):
    explanation = Explainer(vgg19_random, short_side=64).explain(vgg_image)
    assert explanation.untrained is True and words.box_label(explanation).endswith("(untrained)")
    assert explanation.weights == vgg19_random.weights
    assert explanation.model_name == "VGG19" and explanation.layer_name == "features_conv"


def test_vgg19_top_k_over_1000_classes(vgg19_random, vgg_image):
    explanation = Explainer(vgg19_random, short_side=64).explain(vgg_image, top_k=7)
    assert explanation.cam.shape == (40, 72)
    assert len(explanation.top_k) == 7 and len({p.index for p in explanation.top_k}) == 7
    assert all(p.name == CATEGORIES[p.index] for p in explanation.top_k)
    probabilities = [p.probability for p in explanation.top_k]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) < 1
    assert explanation.class_name == CATEGORIES[explanation.class_index]


@pytest.mark.slow
def test_several_classes_from_one_pass_equal_separate_calls(vgg19_random, vgg_image):
    explainer = Explainer(vgg19_random, short_side=64)
    best = explainer.explain(vgg_image, compare=3)
    assert [c.index for c in best.classes] == [p.index for p in best.top_k[:3]]
    tabby = CATEGORIES.index("tabby")
    named = explainer.cam.compute(explainer.preprocess(vgg_image), [[tabby, None, 999]], size=vgg_image.shape[:2])
    assert named.classes.tolist() == [[tabby, best.top_k[0].index, 999]]
    maps = [(c.index, c.probability, c.cam) for c in best.classes]
    maps += [(index, None, named.maps[0, k].numpy()) for k, index in enumerate(named.classes[0].tolist())]
    for index, probability, cam in maps:
        single = explainer.explain(vgg_image, index)
        assert probability is None or single.probability == pytest.approx(probability, abs=1e-9)
        assert np.allclose(single.cam, cam, atol=1e-5), single.class_name
    assert not np.allclose(best.classes[0].cam, best.classes[1].cam), "different classes should give different maps"


# One engine call: everything later views need --------------------------------------------------


def _counting(model):
    """Wraps a model's forward to count the images it sees; returns the list of batch sizes."""
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].shape[0]))
    return seen, handle


def test_one_call_carries_the_masking_test_guided_gradient_and_best_classes(tiny_backbone):
    scene = make_scene(np.random.default_rng(5), (0, 1))
    explainer = Explainer(tiny_backbone)
    seen, handle = _counting(tiny_backbone.model)
    try:
        explanation = explainer.explain(scene.image, 0, counterfactual=True, masking=True, guided=True, compare=2)
    finally:
        handle.remove()
    assert explanation.masking is not None and explanation.masking.class_index == 0
    assert explanation.masking.before == pytest.approx(explanation.probability)
    assert explanation.guided is not None and explanation.guided.shape == (*explanation.input_size, 3)
    assert [c.name for c in explanation.classes] == [p.name for p in explanation.top_k[:2]]
    alone = [explainer.explain(scene.image, c.index) for c in explanation.classes]
    for compared, single in zip(explanation.classes, alone):
        assert np.abs(compared.cam - single.cam).max() < 1e-5
    # One pass for the maps, one for the guided gradient, ten images for the masking test.
    assert seen[0] == 1 and sum(seen) <= 12, seen


def test_the_masking_test_reports_progress_up_to_the_end(tiny_backbone):
    scene = make_scene(np.random.default_rng(6), (1,))
    shares: list[float] = []
    Explainer(tiny_backbone).explain(scene.image, masking=True, progress=shares.append)
    assert shares == sorted(shares) and shares[-1] == 1.0 and len(shares) >= 3


def test_another_explainers_explanation_is_refused(tiny_backbone):
    scene = make_scene(np.random.default_rng(7), (0,))
    explanation = Explainer(tiny_backbone).explain(scene.image)
    other = Explainer(dataclasses.replace(tiny_backbone, title="Other net"))
    with pytest.raises(ValueError, match="made by TinyNet .* not by this explainer's Other net"):
        other.masking_test(explanation)
    with pytest.raises(ValueError, match="made by TinyNet"):
        other.guided_gradient(explanation)


def test_a_model_of_one_input_size_gets_the_image_stretched_to_it():
    import torch
    from torchvision.models import VisionTransformer

    from gradcam.backbone import Backbone

    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=2
    ).eval()
    backbone = Backbone(
        name="vit", title="ViT", model=vit, target_layer="encoder.layers.encoder_layer_0.ln_1", categories=SHAPES,
        mean=(0.5,) * 3, std=(0.25,) * 3, weights="random", untrained=True, fixed_size=(32, 32), layout=Layout.TOKENS,
        prefix_tokens=1,
    )
    explanation = Explainer(backbone).explain(np.zeros((50, 90, 3), np.uint8) + 100)
    assert explanation.input_size == (32, 32) and explanation.cam.shape == (50, 90)


@pytest.mark.slow
def test_compile_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    import torch

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    from gradcam.registry import load_backbone

    monkeypatch.setattr(torch, "compile", no_compiler)
    explainer = Explainer(load_backbone("vgg19", "random"), compile=True)
    assert isinstance(explainer.backbone.model.features_conv, torch.nn.Sequential)
    assert "torch.compile is not available here (no C++ compiler found); running eagerly" in caplog.text
    assert explainer.explain(np.zeros((64, 64, 3), np.uint8)).cam.shape == (64, 64)


def test_frames_explained_together_equal_each_frame_explained_alone(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    rng = np.random.default_rng(5)
    frames = [make_scene(rng, (0, 1)).image for _ in range(3)]
    for target in (None, "disc"):
        together = explainer.explain_frames(frames, target, threshold=0.3)
        for frame, explanation in zip(frames, together):
            alone = explainer.explain(frame, target, threshold=0.3)
            np.testing.assert_allclose(explanation.cam, alone.cam, atol=1e-5)
            assert explanation.class_index == alone.class_index
            assert explanation.probability == pytest.approx(alone.probability, abs=1e-6)
            assert [p.index for p in explanation.top_k] == [p.index for p in alone.top_k]
            assert explanation.boxes == alone.boxes and explanation.threshold == 0.3
            assert not explanation.image.flags.writeable


def test_frames_are_checked(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="at least one frame"):
        explainer.explain_frames([])
    with pytest.raises(ValueError, match="of one size"):
        explainer.explain_frames([frame, np.zeros((64, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="RGB uint8"):
        explainer.explain_frames([frame.astype(np.float32)])
    with pytest.raises(UnknownClassError):
        explainer.explain_frames([frame], "triangle")
    caller = frame.copy()
    explainer.explain_frames([caller])
    assert caller.flags.writeable, "the caller's frame was made read-only"
