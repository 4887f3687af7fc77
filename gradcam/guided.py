"""Guided Backpropagation and Guided Grad-CAM (Selvaraju et al., ICCV 2017, Sec. 3.1).

Guided Backpropagation (Springenberg et al., 2015) passes only positive gradients
back through each ReLU, giving a fine-grained picture of the pixels that raise
the class score. Multiplied by the (coarse, class-discriminative) Grad-CAM map, it
gives Guided Grad-CAM: high resolution and class-discriminative at once.

Unlike Grad-CAM this needs a backward pass through the whole network, so it is
computed only on request. The caller's model is left untouched: the ReLUs are
wrapped by hooks that live for one call and only act in the calling thread.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from gradcam.explainer import Explainer
from gradcam.explanation import Explanation


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def guided_backprop(model: nn.Module, x: Tensor, target: int) -> Tensor:
    """The guided gradient of one class score with respect to the input.

    Args:
        model: a classifier whose non-linearities are ``nn.ReLU`` modules.
        x: one preprocessed image ``(1, 3, H, W)``.
        target: the class index.

    Returns:
        The guided gradient ``(3, H, W)``; no parameter gradient is written.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"Expected one image (1, 3, H, W), got {tuple(x.shape)}.")
    caller = threading.get_ident()

    def guide(module: nn.Module, inputs: object, output: Tensor) -> Tensor | None:
        return _PositiveGradient.apply(output) if threading.get_ident() == caller else None

    handles = [m.register_forward_hook(guide) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            score = model(x)[0, target]
            (grad,) = torch.autograd.grad(score, x)
    finally:
        for handle in handles:
            handle.remove()
    return grad[0]


def guided_gradcam(explainer: Explainer, explanation: Explanation) -> np.ndarray:
    """Guided Grad-CAM of an explanation, as an RGB uint8 image of the explained image's size.

    Grey means no effect; colours show the fine detail that speaks for the class
    inside the region Grad-CAM highlights.
    """
    x = explainer.preprocess(explanation.image)
    guided = guided_backprop(explainer.backbone.model, x, explanation.class_index).float()  # (3, h, w)
    cam = cv2.resize(explanation.cam, (guided.shape[2], guided.shape[1]), interpolation=cv2.INTER_LINEAR)
    combined = guided.numpy().transpose(1, 2, 0) * cam[:, :, None]  # (h, w, 3)
    return _to_picture(combined, explanation.image.shape[:2])


def _to_picture(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Gradients to a viewable image: zero at mid-grey, scaled by their spread."""
    spread = float(np.sqrt(np.mean(np.square(values))))  # around zero: zero must stay mid-grey
    scaled = 0.5 + values / (spread * 10) if spread > 0 else np.full_like(values, 0.5)
    picture = (np.clip(scaled, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    height, width = size
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR)
