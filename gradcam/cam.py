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

Any classifier works: convolutional layers give ``(N, C, h, w)`` maps, Swin's
stages ``(N, h, w, C)``, and the token layers of vision transformers,
``(N, prefix + h * w, C)``, are read as an ``h x w`` grid of patches after their
class (and distillation) tokens are dropped (:mod:`gradcam.layout`; the layer
finder, :mod:`gradcam.layers`, traces which layout a layer has). A model in
training mode is explained as in inference, and models in float64, float16 or
bfloat16 work; the maps are always float32. A binary classifier's single logit
``z`` is read as two classes, ``(-z/2, z/2)`` (:mod:`gradcam.heads`): explaining
class 0 explains the negated logit, as pytorch-grad-cam's binary target does.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradcam.heads import two_classes
from gradcam.layout import Layout, grid_reader
from gradcam.names import closest_hint, short

Targets = int | Tensor | np.ndarray | Sequence[Any] | None

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
    """Min-max normalises each map of ``(..., H, W)`` to [0, 1], in place; returns maps and empty flags.

    ``cams`` must be a tensor of the caller's own (the interpolation's output): it is overwritten.
    """
    low, high = torch.aminmax(cams.flatten(-2), dim=-1)
    low, high = low[..., None, None], high[..., None, None]
    span = high - low
    empty = high[..., 0, 0] <= 0
    scaled = cams.sub_(low).div_(span.clamp_min(torch.finfo(cams.dtype).tiny))
    flat = span <= 0
    # A constant map: 1 where it is positive, else 0. On a GPU, asking first would wait for the device.
    if cams.is_cuda or bool(flat.any()):
        scaled = torch.where(flat, (high > 0).to(cams.dtype), scaled)
    return scaled.to(torch.float32), empty


def _one_hot(classes: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``(N, K)`` class indices to ``(K, N, num_classes)`` one-hot gradient seeds."""
    seeds = torch.zeros(classes.shape[1], classes.shape[0], num_classes, dtype=dtype, device=classes.device)
    seeds.scatter_(2, classes.T.unsqueeze(-1), 1.0)
    return seeds


class GradCAM:
    """Grad-CAM explainer for a classifier and one of its layers.

    The model is used as it is: its ``requires_grad`` flags, parameter ``.grad``
    and buffers are left untouched, and the hook that reads the target layer
    lives only for the duration of one call. A model in training mode is
    explained as in inference (BatchNorm running statistics, no Dropout): its
    modules are switched to eval for the call and switched back after it. Calls
    from several threads at once are independent.

    If the model implements :class:`ExactPath` for ``target_layer``, its own
    exact, faster computation of the gradient sums is used instead of the hook.

    Args:
        model: a classifier mapping ``(N, 3, H, W)`` to ``(N, num_classes)``
            logits; a tuple (first item), a mapping with ``"logits"`` or an
            object with a ``.logits`` attribute is accepted too.
        target_layer: dotted name of the layer whose output is explained, for
            example ``"layer4"`` for a ResNet or ``"features.35"`` for a VGG19.
        prefix_tokens: for a layer that outputs tokens ``(N, T, C)``, how many
            leading tokens (class, distillation, registers) to drop before the
            rest is read as the grid of patches; None tries 0, 1 and 2 (no class
            token, a class token, class and distillation tokens).
        layout: how the layer's output is laid out (:class:`gradcam.layout.Layout`,
            as :func:`gradcam.layers.find_layer` traces it); None reads a 4-D
            output as ``(N, C, h, w)`` and a 3-D one as tokens. A layer that
            returns a tuple is read at its first item.

    Raises:
        AttributeError: if the model has no such layer; the message lists the
            closest names.

    Example:
        >>> cam = GradCAM(torchvision.models.resnet50().eval(), "layer4")
        >>> maps = cam(torch.rand(2, 3, 224, 224))  # (2, 224, 224), top-1 classes
    """

    def __init__(
        self, model: nn.Module, target_layer: str, *, prefix_tokens: int | None = None, layout: Layout | None = None
    ) -> None:
        self.model = model
        self.target_layer = target_layer
        self.prefix_tokens = prefix_tokens
        self.layout = layout
        try:
            self.layer = model.get_submodule(target_layer)
        except AttributeError as exc:
            hint = closest_hint(target_layer, [name for name, _ in model.named_modules() if name])
            raise AttributeError(f"The model has no layer {target_layer!r}.{hint}") from exc

    def __call__(self, x: Tensor, targets: Targets = None) -> Tensor:
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
        extra_top: int = 0,
    ) -> CAMResult:
        """Maps for one or several classes per image, from one forward pass.

        Args:
            x: preprocessed float images ``(N, 3, H, W)``; cast to the model's
                floating-point type if it differs.
            targets: None (each image's ``top`` best classes), one class index
                for all images, a list of N indices, or a list of N lists of K
                indices (several classes per image); None inside a list stands
                for that image's top class. Indices may be ints, numpy integers
                or integer tensors (``logits.argmax(1)`` works as it is).
            top: with ``targets=None``, how many of the best classes to explain.
            size: ``(height, width)`` of the maps; the input size by default.
            counterfactual: also compute the counterfactual maps (Selvaraju et
                al., Sec. 5: the same maps with negated gradients), from the same pass.
            extra_top: also explain each image's ``extra_top`` best classes,
                after the asked ones (for comparisons), from the same pass.

        Returns:
            The logits, the explained classes, the maps and their empty flags.

        Raises:
            ValueError: for an input that is not ``(N, 3, H, W)`` float, or
                targets that are not class indices of the model, or do not match
                the batch.
            RuntimeError: inside ``torch.inference_mode()``, which turns off
                the gradients Grad-CAM needs.
        """
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"Expected a float tensor (N, 3, H, W), got {tuple(x.shape)} {x.dtype}.")
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "Grad-CAM needs gradients, which torch.inference_mode() turns off: "
                "call it outside that block (inside torch.no_grad() is fine)."
            )
        dtype = _floating_dtype(self.model)
        if dtype is not None and x.dtype != dtype:
            x = x.to(dtype)
        with _as_in_inference(self.model):
            activations, logits, gradient_sums = self._forward(x)
            classes = self._resolve_targets(targets, logits, top)
            if extra_top > 0:
                best = logits.topk(min(extra_top, logits.shape[1]), dim=1).indices
                classes = torch.cat([classes, best], dim=1)
            seeds = _one_hot(classes, logits.shape[1], logits.dtype)  # (K, N, num_classes)
            sums = gradient_sums(seeds)  # (K, N, C)
        with torch.no_grad():
            weights = sums.float() / (activations.shape[-2] * activations.shape[-1])
            raw = torch.einsum("knc,nchw->nkhw", weights, activations.float())  # (N, K, h, w)
            size = size or (x.shape[-2], x.shape[-1])
            maps, empty = _normalise(F.interpolate(F.relu(raw), size=size, mode="bilinear", align_corners=False))
            counter_maps = counter_empty = None
            if counterfactual:  # negated gradients: the weighted sum changes sign
                against = F.interpolate(F.relu(-raw), size=size, mode="bilinear", align_corners=False)
                counter_maps, counter_empty = _normalise(against)
                counter_maps = counter_maps.contiguous()
        return CAMResult(logits.float(), classes, maps.contiguous(), empty, counter_maps, counter_empty)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        """Runs the model once; returns activations ``(N, C, h, w)``, logits and their gradient-sum function."""
        if isinstance(self.model, ExactPath) and self.model.cam_layer == self.target_layer:
            # The model offers an exact, faster path for its own target layer.
            activations, logits, sums = self.model.cam_forward(x)
            if logits.shape[1] != 1:
                return activations, logits, sums
            # A binary model's logit z read as two classes (-z/2, z/2): seeds of those map onto z linearly.
            return activations, two_classes(logits), lambda seeds: sums((seeds[..., 1:] - seeds[..., :1]) / 2)
        return self._forward_with_hook(x)

    def _forward_with_hook(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        caller = threading.get_ident()
        captured: list[Tensor] = []

        def capture(module: nn.Module, inputs: object, output: object) -> object:
            if threading.get_ident() != caller:
                return None  # another thread's call on the same model
            tensor = layer_tensor(output)
            if tensor is None:
                raise TypeError(f"Layer {self.target_layer!r} returns {type(output).__name__}, not a tensor.")
            if captured:
                raise RuntimeError(f"Layer {self.target_layer!r} runs more than once per forward pass.")
            leaf = tensor.detach().requires_grad_(True)
            captured.append(leaf)
            # From here on record the graph: only the head is differentiated.
            torch.set_grad_enabled(True)
            # A copy, so that inplace operations downstream (ReLU(inplace=True))
            # cannot modify the leaf the gradient is taken with respect to.
            return with_layer_tensor(output, leaf.clone())

        handle = self.layer.register_forward_hook(capture)
        try:
            with torch.no_grad():  # restores the grad mode the hook switched on
                logits = logits_of(self.model(x))
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"Layer {self.target_layer!r} did not run during the forward pass.")
        (activations,) = captured
        if not logits.requires_grad:
            raise RuntimeError(f"The output does not depend on layer {self.target_layer!r}.")
        to_grid = self._grid_reader(activations, (x.shape[-2], x.shape[-1]))

        def gradient_sums(seeds: Tensor) -> Tensor:
            if seeds.shape[0] == 1:
                (grad,) = torch.autograd.grad(logits, activations, seeds[0])
                grad = grad.unsqueeze(0)
            else:
                (grad,) = torch.autograd.grad(logits, activations, seeds, is_grads_batched=True)
            return to_grid(grad).sum(dim=(-2, -1))  # (K, N, C)

        return to_grid(activations.detach()), logits.detach(), gradient_sums

    def _grid_reader(self, activations: Tensor, input_size: tuple[int, int]) -> Callable[[Tensor], Tensor]:
        """How to read the layer's output as maps ``(..., C, h, w)``, by its layout (see :mod:`gradcam.layout`)."""
        return grid_reader(activations, self.layout, self.prefix_tokens, input_size, self.target_layer)

    @staticmethod
    def _resolve_targets(targets: Targets, logits: Tensor, top: int) -> Tensor:
        batch, num_classes = logits.shape
        if targets is None:
            if not 1 <= top <= num_classes:
                raise ValueError(f"top must be between 1 and {num_classes}, got {top}.")
            return logits.topk(top, dim=1).indices
        targets = _plain(targets)
        if not isinstance(targets, list):
            rows: list[list[int | None]] = [[_class_index(targets)] for _ in range(batch)]
        else:
            rows = [[_class_index(t) for t in row] if isinstance(row, list) else [_class_index(row)] for row in targets]
            if len(rows) != batch or len({len(r) for r in rows}) != 1:
                raise ValueError(f"Expected {batch} targets (or {batch} lists of equal length), got {targets!r}.")
        best = logits.argmax(dim=1).tolist()
        filled = [[best[n] if t is None else t for t in row] for n, row in enumerate(rows)]
        for row in filled:
            for index in row:
                if not 0 <= index < num_classes:
                    raise ValueError(f"Class indices must be in [0, {num_classes}), got {short(index)}.")
        return torch.tensor(filled, dtype=torch.long, device=logits.device)


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Class scores ``(N, num_classes)`` of a plain forward pass, float32, without autograd.

    The model is treated as :class:`GradCAM` treats it: in inference mode whatever
    its flags, its input cast to its floating-point type, its logits unwrapped.
    """
    dtype = _floating_dtype(model)
    with torch.no_grad(), _as_in_inference(model):
        return logits_of(model(x if dtype is None else x.to(dtype))).float()


def layer_tensor(output: object) -> Tensor | None:
    """The tensor a layer outputs: the output itself, or the first item of a tuple or list (None for anything else)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def with_layer_tensor(output: object, tensor: Tensor) -> object:
    """The layer's output with its tensor (see :func:`layer_tensor`) replaced, of the same type."""
    if isinstance(output, Tensor):
        return tensor
    assert isinstance(output, (tuple, list))
    items = [tensor, *output[1:]]
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a named tuple
        return type(output)(*items)
    return type(output)(items)


def _plain(targets: Any) -> Any:
    """Tensors and arrays of targets as Python ints and lists."""
    if isinstance(targets, Tensor):
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"Class indices must be integers, got a {targets.dtype} tensor.")
        return targets.tolist()
    if isinstance(targets, np.ndarray):
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"Class indices must be integers, got a {targets.dtype} array.")
        return targets.tolist()
    if isinstance(targets, (list, tuple)):
        return [_plain(t) for t in targets]
    return targets


def _class_index(target: Any) -> int | None:
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"A class index is an integer, not {type(target).__name__} ({short(target)}).")
    return int(target)


def _floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating-point type of the model's first parameter, if it has one."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None


def logits_of(output: object) -> Tensor:
    """Class scores from what a model returns: a tensor, a tuple, a mapping or an object with ``.logits``.

    A single logit ``z`` (a binary classifier) is read as two classes, ``(-z/2, z/2)``
    (see :mod:`gradcam.heads`): class 1 is the positive one, class 0 its negation.
    """
    if isinstance(output, Tensor):
        logits = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        logits = output[0]
    elif isinstance(output, dict) and isinstance(output.get("logits"), Tensor):
        logits = output["logits"]
    elif isinstance(getattr(output, "logits", None), Tensor):
        logits = output.logits  # type: ignore[attr-defined]
    else:
        raise TypeError(
            f"The model returns {type(output).__name__}; Grad-CAM needs class scores (N, num_classes): "
            "wrap the model so that forward returns them."
        )
    if logits.ndim != 2:
        raise ValueError(f"The model's class scores should be (N, num_classes), got {tuple(logits.shape)}.")
    return two_classes(logits)


_training_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


@contextlib.contextmanager
def _as_in_inference(model: nn.Module) -> Iterator[None]:
    """Runs a model in training mode as in inference, then restores its modules' flags.

    Calls on a model already in eval mode pass straight through. Calls on a model
    in training mode hold a per-model lock while its flags are switched, so that
    concurrent calls neither see nor restore each other's switch.
    """
    with _locks_guard:
        lock = _training_locks.setdefault(model, threading.Lock())
    lock.acquire()
    training = [module for module in model.modules() if module.training]
    if not training:
        lock.release()
        yield
        return
    try:
        for module in training:
            module.training = False
        yield
    finally:
        for module in training:
            module.training = True
        lock.release()
