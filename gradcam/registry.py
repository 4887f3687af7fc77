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
from pathlib import Path

import torch

from gradcam.backbone import Backbone
from gradcam.layers import TargetLayer, find_layer
from gradcam.sources import Source, embedded, timm, torchvision
from gradcam.specs import parse_spec

#: The sources, by the name a spec gives (:attr:`gradcam.specs.BackboneSpec.source`).
SOURCES: dict[str, Source] = {"torchvision": torchvision.SOURCE, "timm": timm.SOURCE, "embedded": embedded.SOURCE}


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
    channels_last: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
    compile: bool = False,
) -> Backbone:
    """Builds a backbone from a spec string and loads its weights.

    Args:
        spec: a built-in (``"vgg19"``, ``"resnet50"``, ``"densenet121"``,
            ``"efficientnet_lite0"``), ``"torchvision:NAME"`` or ``"timm:NAME"``.
        weights: None for the pretrained weights (embedded for
            efficientnet_lite0; torchvision's cache in ``TORCH_HOME`` or timm's
            Hugging Face hub cache otherwise, downloaded once); a path to a local
            state dict (a torchvision model also takes a folder holding
            torchvision's file names); or ``"random"`` for an untrained model.
            Environment variables are not read here: callers pass their value.
        labels: a text file of class names, one a line, for a fine-tuned model;
            the head is built with that many outputs and the weights must match.
        layer: dotted name of the layer to explain; None picks the built-in's
            known layer, or finds one with :func:`gradcam.locate_layer`.
        channels_last: store convolution weights channels-last (faster on CPUs).
        progress: show download progress bars in the terminal.
        device: where the model runs: "cpu", "cuda", or "auto" (CUDA when present).
        compile: ask the :class:`gradcam.Explainer` that runs the backbone to
            compile it with ``torch.compile``.

    Returns:
        The backbone, in eval mode with its parameters frozen, on ``device``.

    Raises:
        UnknownModelError: for a spec that names no model (a KeyError).
        UnknownLayerError: for a layer the model does not have or that cannot be
            explained; the message lists the closest names (a ValueError).
        WeightsError: when the weights or labels cannot be found, downloaded or
            loaded, or do not fit each other; the message says what to do.
    """
    parsed = parse_spec(spec)
    labels_path = Path(labels).expanduser() if labels is not None else None
    built = SOURCES[parsed.source].build(parsed, weights, labels_path, progress)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = built.model.eval().to(device)
    model.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if layer is None and built.target_layer:  # the layer the source knows for this model
        chosen = TargetLayer(built.target_layer, tokens=False, prefix_tokens=0)
    else:
        chosen = find_layer(model, built.fixed_size or (built.short_side, built.short_side), layer)
    return dataclasses.replace(
        built,
        model=model,
        target_layer=chosen.name,
        tokens=chosen.tokens,
        prefix_tokens=chosen.prefix_tokens,
        compile=compile,
    )
