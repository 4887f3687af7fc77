"""The backbone type: a model of one's own filled in by hand is what the explainer takes; it is frozen and a leaf."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import gradcam.backbone
from gradcam import Backbone, Explainer
from gradcam.config import INPUT_SHORT_SIDE
from gradcam.heads import Head

from .conftest import MEAN, SHAPES, STD, make_scene


def test_a_backbone_filled_in_by_hand_is_explained(trained_tiny):
    backbone = Backbone(
        name="mine", title="My net", model=trained_tiny, target_layer="features", categories=SHAPES,
        mean=MEAN, std=STD, weights="trained here", untrained=False,
    )
    defaults = (backbone.short_side, backbone.fixed_size, backbone.layout, backbone.compile, backbone.channels)
    assert defaults == (INPUT_SHORT_SIDE, None, None, False, None)
    assert backbone.head is Head.SOFTMAX
    explanation = Explainer(backbone, short_side=64).explain(make_scene(np.random.default_rng(3), (1,)).image)
    assert explanation.model_name == "My net" and explanation.layer_name == "features"
    assert explanation.weights == "trained here" and explanation.class_name in SHAPES


def test_a_backbone_is_frozen(tiny_backbone):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_backbone.target_layer = "fc"  # type: ignore[misc]


def test_the_module_is_a_leaf_that_only_needs_torch_the_configuration_and_its_field_types():
    tree = ast.parse(Path(gradcam.backbone.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    leaves = {"gradcam.config", "gradcam.heads", "gradcam.layout"}
    assert {name for name in imported if name and name.startswith("gradcam")} == leaves
    assert imported <= {"__future__", "dataclasses", "torch", *leaves}
    for leaf in ("heads", "layout"):  # the field types' modules are leaves too
        tree = ast.parse((Path(gradcam.backbone.__file__).parent / f"{leaf}.py").read_text(encoding="utf-8"))
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert {name for name in modules if name and name.startswith("gradcam")} <= {"gradcam.errors"}
