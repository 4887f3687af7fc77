"""The result object is data: read-only arrays, shapes checked, derived copies that stay consistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradcam import Explainer, Explanation, Prediction, cam_to_boxes
from gradcam.explanation import ClassMap, MaskingTest

from .conftest import HEIGHT, WIDTH, make_scene
from .helpers import make_explanation


def _explanation(**changes: object) -> Explanation:
    image = np.zeros((20, 30, 3), np.uint8)
    cam = np.zeros((20, 30), np.float32)
    cam[5:10, 5:10] = 1.0
    fields: dict[str, object] = dict(
        image=image, cam=cam, class_index=1, class_name="disc", probability=0.8,
        top_k=(Prediction(1, "disc", 0.8), Prediction(0, "square", 0.2)), boxes=((5, 5, 9, 9),), threshold=0.15,
        model_name="TinyNet", layer_name="features", weights="w", untrained=False, cam_empty=False,
    )
    fields.update(changes)
    return Explanation(**fields)  # type: ignore[arg-type]


def test_arrays_are_read_only_copies_and_the_callers_stay_writable():
    cam = np.ones((20, 30), np.float32)
    explanation = _explanation(cam=cam, guided=np.zeros((8, 8, 3), np.float32))
    assert cam.flags.writeable and explanation.cam is not cam
    for array in (explanation.image, explanation.cam, explanation.guided):
        assert not array.flags.writeable
    cam[0, 0] = 5
    assert explanation.cam[0, 0] == 1


def test_a_map_that_does_not_match_the_image_is_refused():
    with pytest.raises(ValueError, match=r"The map \(10, 10\) does not match the image \(20, 30\)"):
        _explanation(cam=np.zeros((10, 10), np.float32))


def test_another_threshold_recomputes_the_boxes_and_drops_a_masking_test_of_the_old_region():
    test = MaskingTest(1, "disc", 0.8, 0.1, 0.7, 0.1, (0.0, 1.0), (0.8, 0.0))
    explanation = _explanation(masking=test)
    same = explanation.with_threshold(0.15)
    assert same.masking is test
    other = explanation.with_threshold(0.9)
    assert other.threshold == 0.9 and other.masking is None and other.boxes == ((5, 5, 9, 9),)


def test_an_engine_call_fills_the_input_size_and_the_best_classes(tiny_backbone):
    scene = make_scene(np.random.default_rng(2), (0, 1))
    explanation = Explainer(tiny_backbone).explain(scene.image, compare=2)
    assert explanation.input_size == (224, 224)
    assert all(isinstance(c, ClassMap) and c.cam.shape == scene.image.shape[:2] for c in explanation.classes)
    assert dataclasses.replace(explanation, classes=()).classes == ()


def test_explanation_arrays_are_read_only(image: np.ndarray, cam: np.ndarray) -> None:
    explanation = make_explanation(image.copy(), cam.copy())
    with pytest.raises(ValueError, match="read-only"):
        explanation.image[0, 0] = 0
    with pytest.raises(ValueError, match="read-only"):
        explanation.cam[0, 0] = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        explanation.boxes = ()  # type: ignore[misc]


def test_explanation_refuses_a_map_of_another_size(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"The map \(90, 60\) does not match the image \(60, 90\)"):
        make_explanation(image, np.zeros((WIDTH, HEIGHT), np.float32), boxes=())


def test_with_threshold_returns_a_new_explanation_with_new_boxes(image: np.ndarray, cam: np.ndarray) -> None:
    explanation = make_explanation(image, cam, threshold=0.9, boxes=tuple(cam_to_boxes(cam, 0.9)))
    assert explanation.boxes == ((50, 20, 69, 39),)  # only the blob
    wider = explanation.with_threshold(0.5)
    assert wider is not explanation
    assert wider.threshold == 0.5
    assert wider.boxes == tuple(cam_to_boxes(cam, 0.5)) != explanation.boxes
    assert explanation.boxes == ((50, 20, 69, 39),) and explanation.threshold == 0.9, "the original is unchanged"
    assert wider.class_name == explanation.class_name and wider.top_k == explanation.top_k
    np.testing.assert_array_equal(wider.cam, explanation.cam)
    assert not wider.image.flags.writeable


def test_with_threshold_all_regions_boxes_every_region(image: np.ndarray) -> None:
    cam = np.zeros((HEIGHT, WIDTH), np.float32)
    cam[5:10, 5:10] = 1.0
    cam[30:50, 40:80] = 1.0
    explanation = make_explanation(image, cam)
    assert len(explanation.boxes) == 1
    assert explanation.with_threshold(0.15, all_regions=True).boxes == ((40, 30, 79, 49), (5, 5, 9, 9))
