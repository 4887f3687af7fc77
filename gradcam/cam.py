"""Grad-CAM (Selvaraju et al., ICCV 2017) for any CNN classifier.

The gradient of a class score with respect to the feature maps ``A`` of a target
layer, averaged over space, weights those maps; the ReLU of their weighted sum is
the class activation map:

    alpha_k = 1 / (h * w) * sum_ij d y_c / d A_kij
    L_c     = ReLU(sum_k alpha_k A_k)

Only the part of the network after the target layer (the head) is differentiated:
the trunk runs without autograd, no parameter gradient is ever computed, and
several target classes share one forward pass, their gradients taken in one
batched backward pass through the head.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Targets = int | Sequence[int | None] | Sequence[Sequence[int | None]] | None

#: Maps one-hot class selections ``(K, N, num_classes)`` to each channel's gradient
#: summed over space, ``(K, N, C)``: all Grad-CAM needs of the backward pass.
GradientSums = Callable[[Tensor], Tensor]


@runtime_checkable
class ExactPath(Protocol):
    """A model that computes Grad-CAM's channel gradient sums for one of its layers itself.

    :class:`GradCAM` uses :meth:`cam_forward` instead of its generic hook when it
    explains the layer named ``cam_layer``. The sums must equal those of the hook
    (an equivalence test guards each implementation); the point is speed, for
    example :class:`gradcam.models.HookedVGG19` never differentiates its trunk.
    """

    cam_layer: str

    def cam_forward(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        """One forward pass: activations ``(N, C, h, w)``, logits ``(N, classes)``, gradient sums."""
        ...


@dataclass(frozen=True)
class CAMResult:
    """Grad-CAM maps for K classes of each of N images.

    Attributes:
        logits: class scores, ``(N, num_classes)``.
        classes: the explained class of each map, ``(N, K)``.
        maps: float32 maps in [0, 1], ``(N, K, H, W)``.
        empty: True where the map had no positive evidence (all zero after the
            ReLU); such a map is all zeros, never NaN. ``(N, K)``.
        counter_maps: with ``counterfactual=True``, the counterfactual maps
            (negated gradients: the regions that speak against each class),
            ``(N, K, H, W)``; else None.
        counter_empty: their empty flags, ``(N, K)``; else None.
    """

    logits: Tensor
    classes: Tensor
    maps: Tensor
    empty: Tensor
    counter_maps: Tensor | None = None
    counter_empty: Tensor | None = None


def _normalise(cams: Tensor) -> tuple[Tensor, Tensor]:
    """Min-max normalises each map of ``(..., H, W)`` to [0, 1]; returns maps and empty flags."""
    flat = cams.flatten(-2)
    low = flat.amin(-1)[..., None, None]
    high = flat.amax(-1)[..., None, None]
    span = high - low
    empty = high[..., 0, 0] <= 0
    scaled = torch.where(span > 0, (cams - low) / span.clamp_min(torch.finfo(cams.dtype).tiny), (high > 0).to(cams.dtype))
    return scaled.to(torch.float32), empty


def _one_hot(classes: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``(N, K)`` class indices to ``(K, N, num_classes)`` one-hot gradient seeds."""
    seeds = torch.zeros(classes.shape[1], classes.shape[0], num_classes, dtype=dtype, device=classes.device)
    seeds.scatter_(2, classes.T.unsqueeze(-1), 1.0)
    return seeds


class GradCAM:
    """Grad-CAM explainer for a classifier and one of its layers.

    The model is used as it is: its training flag, ``requires_grad`` flags and
    parameter ``.grad`` are left untouched, and the hook that reads the target
    layer lives only for the duration of one call. Calls from several threads at
    once are independent.

    Args:
        model: a classifier mapping ``(N, 3, H, W)`` to ``(N, num_classes)``.
        target_layer: dotted name of the layer whose output is explained, for
            example ``"layer4"`` for a ResNet or ``"features.35"`` for a VGG19.

    Raises:
        AttributeError: if the model has no such layer.

    Example:
        >>> cam = GradCAM(torchvision.models.resnet50().eval(), "layer4")
        >>> maps = cam(torch.rand(2, 3, 224, 224))  # (2, 224, 224), top-1 classes
    """

    def __init__(self, model: nn.Module, target_layer: str) -> None:
        self.model = model
        self.target_layer = target_layer
        self.layer = model.get_submodule(target_layer)

    def __call__(self, x: Tensor, targets: int | Sequence[int] | None = None) -> Tensor:
        """Maps for one class per image.

        Args:
            x: preprocessed float images ``(N, 3, H, W)``.
            targets: None for each image's top-1 class, one class index for all
                images, or a list of N indices.

        Returns:
            float32 maps in [0, 1], ``(N, H, W)``.
        """
        return self.compute(x, targets).maps[:, 0]

    def compute(
        self,
        x: Tensor,
        targets: Targets = None,
        *,
        top: int = 1,
        size: tuple[int, int] | None = None,
        counterfactual: bool = False,
    ) -> CAMResult:
        """Maps for one or several classes per image, from one forward pass.

        Args:
            x: preprocessed float images ``(N, 3, H, W)``.
            targets: None (each image's ``top`` best classes), one class index
                for all images, a list of N indices, or a list of N lists of K
                indices (several classes per image); None inside a list stands
                for that image's top class.
            top: with ``targets=None``, how many of the best classes to explain.
            size: ``(height, width)`` of the maps; the input size by default.
            counterfactual: also compute the counterfactual maps (Selvaraju et
                al., Sec. 5: the same maps with negated gradients), from the same pass.

        Returns:
            The logits, the explained classes, the maps and their empty flags.

        Raises:
            ValueError: for an input that is not ``(N, 3, H, W)`` float, or
                targets that do not match the batch or the number of classes.
        """
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"Expected a float tensor (N, 3, H, W), got {tuple(x.shape)} {x.dtype}.")
        activations, logits, gradient_sums = self._forward(x)
        classes = self._resolve_targets(targets, logits, top)
        seeds = _one_hot(classes, logits.shape[1], logits.dtype)  # (K, N, num_classes)
        with torch.no_grad():
            sums = gradient_sums(seeds)  # (K, N, C)
            weights = sums / (activations.shape[-2] * activations.shape[-1])
            raw = torch.einsum("knc,nchw->nkhw", weights, activations.float())  # (N, K, h, w)
            size = size or tuple(x.shape[-2:])
            maps, empty = _normalise(F.interpolate(F.relu(raw), size=size, mode="bilinear", align_corners=False))
            counter_maps = counter_empty = None
            if counterfactual:  # negated gradients: the weighted sum changes sign
                counter_maps, counter_empty = _normalise(F.interpolate(F.relu(-raw), size=size, mode="bilinear", align_corners=False))
                counter_maps = counter_maps.contiguous()
        return CAMResult(logits, classes, maps.contiguous(), empty, counter_maps, counter_empty)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        """Runs the model once; returns activations, logits and their gradient-sum function."""
        if isinstance(self.model, ExactPath) and self.model.cam_layer == self.target_layer:
            # The model offers an exact, faster path for its own target layer.
            return self.model.cam_forward(x)
        return self._forward_with_hook(x)

    def _forward_with_hook(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        caller = threading.get_ident()
        captured: list[Tensor] = []

        def capture(module: nn.Module, inputs: object, output: object) -> Tensor | None:
            if threading.get_ident() != caller:
                return None  # another thread's call on the same model
            if not isinstance(output, Tensor):
                raise TypeError(f"Layer {self.target_layer!r} returns {type(output).__name__}, not a tensor.")
            if captured:
                raise RuntimeError(f"Layer {self.target_layer!r} runs more than once per forward pass.")
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            # From here on record the graph: only the head is differentiated.
            torch.set_grad_enabled(True)
            # A copy, so that inplace operations downstream (ReLU(inplace=True))
            # cannot modify the leaf the gradient is taken with respect to.
            return leaf.clone()

        handle = self.layer.register_forward_hook(capture)
        try:
            with torch.no_grad():  # restores the grad mode the hook switched on
                logits = self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"Layer {self.target_layer!r} did not run during the forward pass.")
        (activations,) = captured
        if not logits.requires_grad:
            raise RuntimeError(f"The output does not depend on layer {self.target_layer!r}.")

        def gradient_sums(seeds: Tensor) -> Tensor:
            if seeds.shape[0] == 1:
                (grad,) = torch.autograd.grad(logits, activations, seeds[0])
                grad = grad.unsqueeze(0)
            else:
                (grad,) = torch.autograd.grad(logits, activations, seeds, is_grads_batched=True)
            return grad.sum(dim=(-2, -1))  # (K, N, C)

        return activations.detach(), logits.detach(), gradient_sums

    @staticmethod
    def _resolve_targets(targets: Targets, logits: Tensor, top: int) -> Tensor:
        batch, num_classes = logits.shape
        if targets is None:
            if not 1 <= top <= num_classes:
                raise ValueError(f"top must be between 1 and {num_classes}, got {top}.")
            return logits.topk(top, dim=1).indices
        if isinstance(targets, int):
            classes = torch.full((batch, 1), targets, dtype=torch.long, device=logits.device)
        else:
            rows = [list(t) if isinstance(t, Sequence) else [t] for t in targets]
            if len(rows) != batch or len({len(r) for r in rows}) != 1:
                raise ValueError(f"Expected {batch} targets (or {batch} lists of equal length), got {targets!r}.")
            best = logits.argmax(dim=1).tolist()
            rows = [[best[n] if t is None else t for t in row] for n, row in enumerate(rows)]
            classes = torch.tensor(rows, dtype=torch.long, device=logits.device)
        if classes.numel() and not (0 <= int(classes.min()) and int(classes.max()) < num_classes):
            raise ValueError(f"Class indices must be in [0, {num_classes}), got {targets!r}.")
        return classes
