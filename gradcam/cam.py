"""Grad-CAM (Selvaraju et al., ICCV 2017) and the CAM family for any classifier: the engine.

The gradient of a class score with respect to the feature maps ``A`` of a target
layer, averaged over space, weights those maps; the ReLU of their weighted sum is
the class activation map:

    alpha_k = 1 / (h * w) * sum_ij d y_c / d A_kij
    L_c     = ReLU(sum_k alpha_k A_k)

The other methods of :mod:`gradcam.methods` (Grad-CAM++, XGrad-CAM, HiResCAM,
LayerCAM, Eigen-CAM, Score-CAM) read the same pass: the activations, and the
gradient maps themselves rather than their spatial sums.

Only the part of the network after the target layer (the head) is differentiated:
the trunk runs without autograd, no parameter gradient is ever computed, and
several target classes share one forward pass, their gradients taken in one
batched backward pass through the head. Eigen-CAM takes no gradient at all;
Score-CAM adds one masked forward pass per channel, in batches.

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

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradcam import methods
from gradcam.errors import NotAvailableError
from gradcam.heads import two_classes
from gradcam.inference import as_in_inference, floating_dtype, layer_tensor, logits_of, with_layer_tensor
from gradcam.layout import Layout, grid_reader
from gradcam.methods import Method, get_method
from gradcam.names import closest_hint
from gradcam.targets import Targets, resolve_targets

#: Maps one-hot class selections ``(K, N, num_classes)`` to each channel's gradient
#: summed over space, ``(K, N, C)``: all Grad-CAM needs of the backward pass.
GradientSums = Callable[[Tensor], Tensor]
#: Maps one-hot class selections ``(K, N, num_classes)`` to the gradient maps ``(K, N, C, h, w)``.
GradientMaps = Callable[[Tensor], Tensor]
Progress = Callable[[float], None]


@runtime_checkable
class ExactPath(Protocol):
    """A model that computes Grad-CAM's channel gradient sums for one of its layers itself.

    :class:`GradCAM` uses :meth:`cam_forward` instead of its generic hook when it
    explains the layer named ``cam_layer`` with Grad-CAM, the one method whose
    weights are the channel gradient sums (the others need the gradient maps and
    take the hook). The sums must equal those of the hook (an equivalence test
    guards each implementation); the point is speed, for example
    :class:`gradcam.models.HookedVGG19` never differentiates its trunk.
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
        method: the method's name (see :mod:`gradcam.methods`).
    """

    logits: Tensor
    classes: Tensor
    maps: Tensor
    empty: Tensor
    counter_maps: Tensor | None = None
    counter_empty: Tensor | None = None
    method: str = methods.DEFAULT


@dataclass(frozen=True)
class _Pass:
    """What one forward pass gives the methods: activations ``(N, C, h, w)``, logits and their gradients."""

    activations: Tensor
    logits: Tensor
    sums: GradientSums | None = None
    maps: GradientMaps | None = None


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
    """Grad-CAM (or another method of the CAM family) for a classifier and one of its layers.

    The model is used as it is: its ``requires_grad`` flags, parameter ``.grad``
    and buffers are left untouched, and the hook that reads the target layer
    lives only for the duration of one call. A model in training mode is
    explained as in inference (BatchNorm running statistics, no Dropout): its
    modules are switched to eval for the call and switched back after it. Calls
    from several threads at once are independent.

    If the model implements :class:`ExactPath` for ``target_layer``, Grad-CAM uses
    its own exact, faster computation of the gradient sums instead of the hook.

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
        method: the method, by name or title (see :mod:`gradcam.methods`):
            "gradcam" (the default), "gradcam++", "xgradcam", "hirescam",
            "layercam", "eigencam" or "scorecam".
        batch_size: masked inputs per forward pass of Score-CAM.
        clock: seconds, for Score-CAM's time limit (tests pass a fake one).
        layout: how the layer's output is laid out (:class:`gradcam.layout.Layout`,
            as :func:`gradcam.layers.find_layer` traces it); None reads a 4-D
            output as ``(N, C, h, w)`` and a 3-D one as tokens. A layer that
            returns a tuple is read at its first item.

    Raises:
        AttributeError: if the model has no such layer; the message lists the
            closest names.
        UnknownMethodError: for a method name of no method; the message lists them.

    Example:
        >>> cam = GradCAM(torchvision.models.resnet50().eval(), "layer4", method="layercam")
        >>> maps = cam(torch.rand(2, 3, 224, 224))  # (2, 224, 224), top-1 classes
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: str,
        *,
        prefix_tokens: int | None = None,
        method: str | Method = methods.DEFAULT,
        batch_size: int = methods.SCORE_BATCH,
        clock: Callable[[], float] = time.monotonic,
        layout: Layout | None = None,
    ) -> None:
        self.model = model
        self.target_layer = target_layer
        self.prefix_tokens = prefix_tokens
        self.method = get_method(method)
        self.batch_size = batch_size
        self.clock = clock
        self.layout = layout
        try:
            self.layer = model.get_submodule(target_layer)
        except AttributeError as exc:
            hint = closest_hint(target_layer, [name for name, _ in model.named_modules() if name])
            raise AttributeError(f"The model has no layer {target_layer!r}.{hint}") from exc

    def with_method(self, method: str | Method) -> GradCAM:
        """The same engine (model, layer, settings) with another method; the model is shared, not copied."""
        return GradCAM(
            self.model,
            self.target_layer,
            prefix_tokens=self.prefix_tokens,
            method=method,
            batch_size=self.batch_size,
            clock=self.clock,
            layout=self.layout,
        )

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
        progress: Progress | None = None,
        time_limit: float | None = None,
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
            progress: called with the share of Score-CAM's masked passes done.
            time_limit: seconds Score-CAM's masked passes may take; it stops as
                soon as it would take longer.

        Returns:
            The logits, the explained classes, the maps and their empty flags.

        Raises:
            ValueError: for an input that is not ``(N, 3, H, W)`` float, or
                targets that are not class indices of the model, or do not match
                the batch.
            RuntimeError: inside ``torch.inference_mode()``, which turns off
                the gradients Grad-CAM needs.
            NotAvailableError: ``counterfactual`` with a method that has none.
            TimeLimitError: Score-CAM would take longer than ``time_limit``.
        """
        return self.compute_methods(
            x,
            targets,
            (self.method,),
            top=top,
            size=size,
            counterfactual=counterfactual,
            extra_top=extra_top,
            progress=progress,
            time_limit=time_limit,
        )[self.method.name]

    def compute_methods(
        self,
        x: Tensor,
        targets: Targets = None,
        names: Sequence[str | Method] = methods.CHEAP,
        *,
        top: int = 1,
        size: tuple[int, int] | None = None,
        counterfactual: bool = False,
        extra_top: int = 0,
        progress: Progress | None = None,
        time_limit: float | None = None,
    ) -> dict[str, CAMResult]:
        """The maps of several methods for the same classes, from one forward pass and one batched backward.

        Args and raises as :meth:`compute`, and:
            names: the methods (by default the cheap ones, all but Score-CAM).

        Returns:
            Each method's result, by name, in the order asked.
        """
        chosen = list(dict.fromkeys(get_method(n) for n in names))
        if not chosen:
            raise ValueError("Name at least one method.")
        if counterfactual:
            for method in chosen:
                if not method.counterfactual:
                    raise NotAvailableError(
                        f"{method.title} has no counterfactual map: it does not use the class's gradients."
                    )
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"Expected a float tensor (N, 3, H, W), got {tuple(x.shape)} {x.dtype}.")
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "Grad-CAM needs gradients, which torch.inference_mode() turns off: "
                "call it outside that block (inside torch.no_grad() is fine)."
            )
        dtype = floating_dtype(self.model)
        if dtype is not None and x.dtype != dtype:
            x = x.to(dtype)
        needs = {method.needs for method in chosen}
        with as_in_inference(self.model):
            forward = self._forward(x, needs)
            classes = resolve_targets(targets, forward.logits, top)
            if extra_top > 0:
                best = forward.logits.topk(min(extra_top, forward.logits.shape[1]), dim=1).indices
                classes = torch.cat([classes, best], dim=1)
            seeds = _one_hot(classes, forward.logits.shape[1], forward.logits.dtype)  # (K, N, num_classes)
            raw = self._raw_maps(chosen, forward, seeds, classes, x, counterfactual, progress, time_limit)
        size = size or (x.shape[-2], x.shape[-1])
        results = {}
        logits = forward.logits.float()
        with torch.no_grad():
            for name, (cams, against) in raw.items():
                maps, empty = _normalise(F.interpolate(F.relu(cams), size=size, mode="bilinear", align_corners=False))
                counter_maps = counter_empty = None
                if against is not None:
                    up = F.interpolate(F.relu(against), size=size, mode="bilinear", align_corners=False)
                    counter_maps, counter_empty = _normalise(up)
                    counter_maps = counter_maps.contiguous()
                results[name] = CAMResult(logits, classes, maps.contiguous(), empty, counter_maps, counter_empty, name)
        return results

    def _raw_maps(
        self,
        chosen: list[Method],
        forward: _Pass,
        seeds: Tensor,
        classes: Tensor,
        x: Tensor,
        counterfactual: bool,
        progress: Progress | None,
        time_limit: float | None,
    ) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Each method's maps ``(N, K, h, w)`` before the ReLU, and their counterfactual (negated gradients)."""
        found: dict[str, tuple[Tensor, Tensor | None]] = {}
        gradients = sums = None
        if any(m.needs == "gradients" for m in chosen):
            assert forward.maps is not None
            gradients = forward.maps(seeds)  # (K, N, C, h, w)
        elif any(m.needs == "sums" for m in chosen):
            assert forward.sums is not None
            sums = forward.sums(seeds)  # (K, N, C)
        with torch.no_grad():
            activations = forward.activations.float()
            if gradients is not None:
                gradients = gradients.float()
                sums = gradients.sum(dim=(-2, -1))
            for method in chosen:
                if method.needs == "sums":
                    assert sums is not None
                    cams = methods.gradcam(activations, sums.float())
                    found[method.name] = (cams, -cams if counterfactual else None)  # negated gradients
                elif method.needs == "gradients":
                    assert gradients is not None
                    formula = methods.GRADIENT_FORMULAS[method.name]
                    against = formula(activations, -gradients) if counterfactual else None
                    found[method.name] = (formula(activations, gradients), against)
                elif method.needs == "activations":
                    cams = methods.eigencam(activations)[:, None]  # (N, 1, h, w): the same for every class
                    found[method.name] = (cams.expand(-1, classes.shape[1], -1, -1), None)
                else:

                    def probabilities(inputs: Tensor) -> Tensor:
                        return logits_of(self.model(inputs)).float().softmax(dim=1)

                    weights = methods.score_weights(
                        probabilities, x, forward.activations, classes, self.batch_size, progress, time_limit,
                        self.clock,
                    )
                    found[method.name] = (methods.scorecam(activations, weights), None)
        return found

    def _forward(self, x: Tensor, needs: set[methods.Needs]) -> _Pass:
        """Runs the model once: activations ``(N, C, h, w)``, logits and what the methods need of their gradients."""
        if needs == {"sums"} and isinstance(self.model, ExactPath) and self.model.cam_layer == self.target_layer:
            # Grad-CAM, and the model offers an exact, faster path for its own target layer.
            activations, logits, sums = self.model.cam_forward(x)
            if logits.shape[1] != 1:
                return _Pass(activations, logits, sums=sums)
            # A binary model's logit z read as two classes (-z/2, z/2): seeds of those map onto z linearly.

            def binary(seeds: Tensor) -> Tensor:
                return sums((seeds[..., 1:] - seeds[..., :1]) / 2)

            return _Pass(activations, two_classes(logits), sums=binary)
        return self._forward_with_hook(x, gradients=bool(needs & {"sums", "gradients"}))

    def _forward_with_hook(self, x: Tensor, gradients: bool = True) -> _Pass:
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
            if not gradients:  # a copy that inplace operations downstream cannot modify; no graph
                captured.append(tensor.detach().clone())
                return None
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
        if gradients and not logits.requires_grad:
            raise RuntimeError(f"The output does not depend on layer {self.target_layer!r}.")
        to_grid = self._grid_reader(activations, (x.shape[-2], x.shape[-1]))
        if not gradients:
            return _Pass(to_grid(activations), logits)

        def gradient_maps(seeds: Tensor) -> Tensor:
            if seeds.shape[0] == 1:
                (grad,) = torch.autograd.grad(logits, activations, seeds[0])
                grad = grad.unsqueeze(0)
            else:
                (grad,) = torch.autograd.grad(logits, activations, seeds, is_grads_batched=True)
            return to_grid(grad)  # (K, N, C, h, w)

        def gradient_sums(seeds: Tensor) -> Tensor:
            return gradient_maps(seeds).sum(dim=(-2, -1))  # (K, N, C)

        return _Pass(to_grid(activations.detach()), logits.detach(), gradient_sums, gradient_maps)


    def _grid_reader(self, activations: Tensor, input_size: tuple[int, int]) -> Callable[[Tensor], Tensor]:
        """How to read the layer's output as maps ``(..., C, h, w)``, by its layout (see :mod:`gradcam.layout`)."""
        return grid_reader(activations, self.layout, self.prefix_tokens, input_size, self.target_layer)
