"""The backbone: a classifier ready to explain, with where to hook it, its labels and its preprocessing.

:func:`gradcam.load_backbone` builds one from a spec string; a model of one's
own becomes one by filling the fields. Everything downstream (the explainer, the
evaluator, the CLI, the app) takes this type and nothing of how it was built.

This module is a leaf: it imports torch and the configuration only.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gradcam.config import INPUT_SHORT_SIDE


@dataclass(frozen=True)
class Backbone:
    """A classifier ready to explain: the model, where to hook it, labels and preprocessing.

    Attributes:
        name: short name, as given to :func:`load_backbone` ("vgg19", "timm:resnet50").
        title: name for people ("VGG19").
        model: the network, in eval mode, parameters frozen.
        target_layer: dotted name of the layer Grad-CAM reads.
        categories: class names, index-aligned with the logits.
        mean: per-channel normalisation mean (RGB, images scaled to [0, 1]).
        std: per-channel normalisation std.
        weights: where the weights came from, for manifests and logs.
        untrained: True when the weights are random: results mean nothing.
        compile: ask whoever runs the model (:class:`gradcam.Explainer`) to
            compile it with ``torch.compile``.
        spec: the spec string the backbone was built from.
        short_side: shorter side of the network input the weights were trained at.
        fixed_size: ``(height, width)`` when the model accepts only that input
            size (a vision transformer with a fixed position embedding), else None.
        tokens: True when the target layer outputs tokens ``(N, prefix + h * w, C)``
            rather than a map ``(N, C, h, w)``.
        prefix_tokens: class (and distillation, register) tokens before the
            patch tokens, to drop before reshaping to the patch grid.
    """

    name: str
    title: str
    model: nn.Module
    target_layer: str
    categories: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str
    untrained: bool
    compile: bool = False
    spec: str = ""
    short_side: int = INPUT_SHORT_SIDE
    fixed_size: tuple[int, int] | None = None
    tokens: bool = False
    prefix_tokens: int = 0
