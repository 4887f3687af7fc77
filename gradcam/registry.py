"""Spec strings to backbones: :func:`load_backbone`, and whether a spec's weights are here.

A spec string (:mod:`gradcam.specs`) names a model; its source
(:mod:`gradcam.sources`) builds it and loads its weights; this module finishes
the result the same way for every source: eval mode, parameters frozen, on the
device, in the memory format asked for, and the target layer: the spec's known
one, the one named, or, when none is, the last spatial map (or, for vision
transformers, the last token layer whose patch tokens still reach the logits)
found by :func:`gradcam.layers.find_layer` with one dry forward and backward pass.

A user's fine-tuned model is an architecture spec plus ``weights=PATH`` (a state
dict) and ``labels=PATH`` (one class name per line); the number of classes comes
from the labels file and must match the head of the weights.

Library functions take values, not environment variables: the CLI and the app
read ``GRADCAM_WEIGHTS`` and pass it in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from gradcam.backbone import Backbone
from gradcam.errors import SettingError
from gradcam.heads import HEAD_CHOICES, MULTI_LABEL, Head, resolve_head
from gradcam.layers import TargetLayer, find_layer
from gradcam.layout import Layout
from gradcam.preprocess import RESIZE_CHOICES, fit_values, input_channels, with_preprocessing
from gradcam.sources import Source, embedded, hf, timm, torchvision
from gradcam.specs import parse_spec

#: The sources, by the name a spec gives (:attr:`gradcam.specs.BackboneSpec.source`).
SOURCES: dict[str, Source] = {
    "torchvision": torchvision.SOURCE, "timm": timm.SOURCE, "embedded": embedded.SOURCE, "hf": hf.SOURCE,
}


def available_offline(spec: str) -> tuple[bool, str]:
    """Whether a spec's pretrained weights can be had without a network, and if not, why, in plain words.

    Returns:
        ``(True, "")`` when the weights are embedded or in the local cache;
        ``(False, reason)`` otherwise, the reason written for a visitor
        ("its weights (548 MB) are not on this server ...").

    Raises:
        UnknownModelError: for a spec that names no model.
    """
    parsed = parse_spec(spec)
    return SOURCES[parsed.source].offline(parsed)


def load_backbone(
    spec: str = "vgg19",
    weights: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    *,
    head: str = "auto",
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resize: str | None = None,
    channels_last: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
    compile: bool = False,
) -> Backbone:
    """Builds a backbone from a spec string and loads its weights.

    Args:
        spec: a built-in (``"vgg19"``, ``"resnet50"``, ``"densenet121"``,
            ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``),
            ``"torchvision:NAME"``, ``"timm:NAME"`` or ``"hf:PATH_OR_ID"``.
        weights: None for the pretrained weights (embedded for the
            EfficientNet-Lite models; torchvision's cache in ``TORCH_HOME``, timm's
            Hugging Face hub cache, downloaded once, or the ``hf:`` folder or cache
            entry otherwise); a path to a local state dict (a torchvision model also
            takes a folder holding torchvision's file names); or ``"random"`` for an
            untrained model. Environment variables are not read here: callers pass their value.
        labels: a text file of class names, one a line, for a fine-tuned model;
            the head is built with that many outputs and the weights must match. A
            binary model (one logit) takes two names, the negative first, or one
            (the positive class; the other is "not X").
        layer: dotted name of the layer to explain; None picks the built-in's
            known layer, or finds one with :func:`gradcam.layers.find_layer`.
        head: how logits become probabilities: "auto" (binary for one logit,
            sigmoid for a model that declares itself multi-label, else softmax),
            "softmax" or "sigmoid" (multi-label: independent probabilities).
        size: the network input's shorter side, or with ``resize="exact"`` its side
            or ``(height, width)``; None: the one the weights were trained at.
        mean: per-channel normalisation mean on the [0, 1] scale (one value per
            input channel); None: the source's.
        std: per-channel normalisation std, likewise.
        resize: "short" (shorter side ``size``, aspect ratio kept, the default) or
            "exact" (stretched to the size); None: the model's own rule.
        channels_last: store convolution weights channels-last (faster on CPUs).
        progress: show download progress bars in the terminal.
        device: where the model runs: "cpu", "cuda", or "auto" (CUDA when present).
        compile: ask the :class:`gradcam.Explainer` that runs the backbone to
            compile it with ``torch.compile``.

    Returns:
        The backbone, in eval mode with its parameters frozen, on ``device``, its
        input channels found from its first convolution (3, or 1 for a grayscale model).

    Raises:
        UnknownModelError: for a spec that names no model (a KeyError).
        UnknownLayerError: for a layer the model does not have or that cannot be
            explained; the message lists the closest names (a ValueError).
        WeightsError: when the weights or labels cannot be found, downloaded or
            loaded, or do not fit each other; the message says what to do.
        SettingError: a head, size, mean, std or resize rule that contradicts the
            model or itself (a ValueError); checked before any dry pass.
    """
    if head not in HEAD_CHOICES:
        raise SettingError(f"head must be one of {', '.join(HEAD_CHOICES)}, not {head!r}.")
    if resize is not None and resize not in RESIZE_CHOICES:
        raise SettingError(f"resize must be one of {', '.join(RESIZE_CHOICES)}, not {resize!r}.")
    parsed = parse_spec(spec)
    labels_path = Path(labels).expanduser() if labels is not None else None
    built = SOURCES[parsed.source].build(parsed, weights, labels_path, progress)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = built.model.eval().to(device)
    model.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    channels = input_channels(model)
    if channels not in (1, 3):
        raise SettingError(
            f"The first layer of {built.title} takes {channels} channels; photos give 3 (RGB) or 1 (grayscale)."
        )
    outputs = 1 if built.head is Head.BINARY else len(built.categories)
    declared = MULTI_LABEL if built.head is Head.SIGMOID else None
    strict = built.strict_size and built.fixed_size is not None  # the model takes that size only
    backbone = dataclasses.replace(
        built,
        model=model,
        head=resolve_head(head, outputs, declared),
        channels=channels,
        mean=fit_values(built.mean, channels),
        std=fit_values(built.std, channels),
        compile=compile,
    )
    backbone = with_preprocessing(backbone, size=size, mean=mean, std=std, resize=resize, strict_size=strict)
    if layer is None and built.target_layer:  # the layer the source knows for this model: a map (N, C, h, w)
        chosen = TargetLayer(built.target_layer, Layout.CHANNELS_FIRST)
    else:
        dry = backbone.fixed_size or (backbone.short_side, backbone.short_side)
        chosen = find_layer(model, dry, layer, channels=channels, fixed_size=strict)
    return dataclasses.replace(
        backbone, target_layer=chosen.name, layout=chosen.layout, prefix_tokens=chosen.prefix_tokens
    )
