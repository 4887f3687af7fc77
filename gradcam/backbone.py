"""The backbone: a classifier ready to explain, with where to hook it, its labels and its preprocessing.

:func:`gradcam.load_backbone` builds one from a spec string; a model of one's
own becomes one by filling the fields. Everything downstream (the explainer, the
evaluator, the CLI, the app) takes this type and nothing of how it was built.

This module is a leaf: it imports torch, the configuration and the leaf
modules of its field types (:mod:`gradcam.heads`, :mod:`gradcam.layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradcam.config import INPUT_SHORT_SIDE
from gradcam.heads import Head
from gradcam.layout import Layout


@dataclass(frozen=True)
class Backbone:
    """A classifier ready to explain: the model, where to hook it, labels and preprocessing.

    Attributes:
        name: short name, as given to :func:`load_backbone` ("vgg19", "timm:resnet50").
        title: name for people ("VGG19").
        model: the network, in eval mode, parameters frozen.
        target_layer: dotted name of the layer Grad-CAM reads.
        categories: class names, index-aligned with the logits.
        mean: per-channel normalisation mean (one value per input channel, images scaled to [0, 1]).
        std: per-channel normalisation std.
        weights: where the weights came from, for manifests and logs.
        untrained: True when the weights are random: results mean nothing.
        compile: ask whoever runs the model (:class:`gradcam.Explainer`) to
            compile it with ``torch.compile``.
        spec: the spec string the backbone was built from.
        short_side: shorter side of the network input the weights were trained at.
        fixed_size: ``(height, width)`` every photo is stretched to: the only input
            size the model accepts (a vision transformer with a fixed position
            embedding), or the one asked for with ``resize="exact"``; None: the
            shorter side is ``short_side``, the aspect ratio kept.
        strict_size: True when ``fixed_size`` is the only input size the model accepts.
        layout: how the target layer's output is laid out (``(N, C, h, w)``,
            ``(N, h, w, C)`` or tokens, as :func:`gradcam.layers.find_layer` traced
            it); None: the :class:`gradcam.Explainer` traces it (:class:`gradcam.GradCAM`
            alone reads 4-D outputs as ``(N, C, h, w)`` and 3-D ones as tokens).
        prefix_tokens: class (and distillation, register) tokens before the
            patch tokens, to drop before reshaping to the patch grid.
        head: how the logits become probabilities (:class:`gradcam.heads.Head`):
            softmax, independent sigmoids (multi-label), or one logit read as two
            classes (binary).
        channels: the network input's channels: 3 (RGB) or 1 (the photo in
            grayscale); None: found from the model's first convolution.
    """

    name: str
    title: str
    model: nn.Module
    target_layer: str
    categories: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: str
    untrained: bool
    compile: bool = False
    spec: str = ""
    short_side: int = INPUT_SHORT_SIDE
    fixed_size: tuple[int, int] | None = None
    strict_size: bool = False
    layout: Layout | None = None
    prefix_tokens: int = 0
    head: Head = Head.SOFTMAX
    channels: int | None = None
