"""Guided Backpropagation and Guided Grad-CAM (Selvaraju et al., ICCV 2017, Sec. 3.1).

Guided Backpropagation (Springenberg et al., 2015) passes only positive gradients
back through each ReLU, giving a fine-grained picture of the pixels that raise
the class score. Multiplied by the (coarse, class-discriminative) Grad-CAM map, it
gives Guided Grad-CAM: high resolution and class-discriminative at once.

Unlike Grad-CAM this needs a backward pass through the whole network, so it is
computed only on request (:meth:`gradcam.Explainer.explain` with ``guided=True``).
The caller's model is left untouched: the ReLUs (and ReLU6s) are wrapped by
hooks that live for one call and only act in the calling thread. Guided
Backpropagation has a rule for these rectifiers only: a model with smooth
activations (SiLU, GELU, Hardswish, ...) gets a :class:`NotAvailableError`
instead of a picture that would look guided and not be.
"""

from __future__ import annotations

import threading
from typing import Protocol

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from gradcam.cam import logits_of
from gradcam.errors import NotAvailableError
from gradcam.explanation import Explanation

#: Rectifiers that Guided Backpropagation knows how to guide.
GUIDED = (nn.ReLU, nn.ReLU6)
#: Activations it has no rule for, by class name (torch's and timm's), lower case.
UNGUIDED = {
    "silu", "swish", "swishme", "gelu", "gelutanh", "quickgelu", "hardswish", "hardswishme", "mish", "mishme",
    "elu", "selu", "celu", "leakyrelu", "prelu", "softplus", "tanh", "hardtanh",
}


def unguided_activations(model: nn.Module) -> list[str]:
    """The names of the activation types in ``model`` that Guided Backpropagation cannot guide."""
    return sorted({type(m).__name__ for m in model.modules() if type(m).__name__.lower() in UNGUIDED})


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
        model: a classifier whose non-linearities are ``nn.ReLU`` or ``nn.ReLU6`` modules.
        x: one preprocessed image ``(1, C, H, W)``.
        target: the class index.

    Returns:
        The guided gradient ``(C, H, W)``; no parameter gradient is written.

    Raises:
        NotAvailableError: the model uses activations without a guided rule.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"Expected one image (1, C, H, W), got {tuple(x.shape)}.")
    others = unguided_activations(model)
    if others:
        raise NotAvailableError(
            f"Guided Grad-CAM is not available for this model: it uses {', '.join(others)} activations, "
            "for which guided backpropagation has no rule (it is defined for ReLU-type rectifiers)."
        )
    caller = threading.get_ident()

    def guide(module: nn.Module, inputs: object, output: Tensor) -> Tensor | None:
        return _PositiveGradient.apply(output) if threading.get_ident() == caller else None

    handles = [m.register_forward_hook(guide) for m in model.modules() if isinstance(m, GUIDED)]
    try:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            score = logits_of(model(x))[0, target]  # a binary model's one logit read as two classes
            (grad,) = torch.autograd.grad(score, x)
    finally:
        for handle in handles:
            handle.remove()
    return grad[0]


class GuidedSource(Protocol):
    """Whatever runs the model of an explanation (a :class:`gradcam.Explainer`)."""

    def guided_gradient(self, explanation: Explanation) -> np.ndarray: ...


def guided_picture(guided: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM as an RGB uint8 picture of the map's size.

    Args:
        guided: the guided gradient at the network input's size, ``(h, w, 3)``.
        cam: the Grad-CAM map at the image's size, ``(height, width)``.

    Grey means no effect; colours show the fine detail that speaks for the class
    inside the region Grad-CAM highlights.
    """
    small = cv2.resize(cam, (guided.shape[1], guided.shape[0]), interpolation=cv2.INTER_LINEAR)
    return _to_picture(guided * small[:, :, None], cam.shape[:2])


def guided_gradcam(explainer: GuidedSource, explanation: Explanation) -> np.ndarray:
    """Guided Grad-CAM of an explanation, as an RGB uint8 image of the explained image's size.

    Uses the guided gradient the explanation carries (``explain(..., guided=True)``),
    else asks ``explainer`` for it.
    """
    guided = explanation.guided if explanation.guided is not None else explainer.guided_gradient(explanation)
    return guided_picture(guided, explanation.cam)


def _to_picture(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Gradients to a viewable image: zero at mid-grey, scaled by their spread."""
    spread = float(np.sqrt(np.mean(np.square(values))))  # around zero: zero must stay mid-grey
    scaled = 0.5 + values / (spread * 10) if spread > 0 else np.full_like(values, 0.5)
    picture = (np.clip(scaled, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    height, width = size
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR)
