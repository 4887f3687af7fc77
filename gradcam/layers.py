"""Which layer Grad-CAM reads when none is named, found with one dry forward and backward pass.

:func:`locate_layer` (and :func:`find_layer`, which also checks a named layer)
records every module's output in one forward pass of a random image: the layer
is the last spatial map ``(N, C, h, w)`` that ran once, or, for vision
transformers, the last layer of the token stream ``(N, prefix + h * w, C)``
whose patch tokens still reach the logits. A wrong name is answered with the
closest names the model has.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradcam.cam import logits_of
from gradcam.errors import UnknownLayerError
from gradcam.names import closest_hint


@dataclass(frozen=True)
class TargetLayer:
    """The layer Grad-CAM reads: its name, whether it outputs tokens, and how many class-like tokens lead them."""

    name: str
    tokens: bool
    prefix_tokens: int


def _close_names(model: nn.Module, layer: str) -> str:
    names = [name for name, _ in model.named_modules() if name]
    return closest_hint(layer, names) or f" It has: {', '.join(names[:10])}, ..."


def _prefix_tokens(model: nn.Module, count: int, height: int, width: int) -> int:
    """Class-like tokens before the patch tokens of a token layer with ``count`` tokens."""
    declared = getattr(model, "num_prefix_tokens", None)  # timm
    if isinstance(declared, int):
        return declared
    if isinstance(getattr(model, "class_token", None), Tensor):  # torchvision's VisionTransformer
        return 1
    for prefix in range(0, 9):  # otherwise: the fewest extra tokens that leave a grid of the image's shape
        patches = count - prefix
        for stride in range(1, min(height, width) + 1):
            if math.ceil(height / stride) * math.ceil(width / stride) == patches:
                return prefix
    return 0


def _trace(
    model: nn.Module, size: tuple[int, int], only: str | None = None
) -> tuple[list[tuple[str, Tensor]], dict[str, int], Tensor]:
    """One dry forward pass with grad: module outputs in completion order, call counts, and a scalar score."""
    outputs: list[tuple[str, Tensor]] = []
    calls: dict[str, int] = {}
    last_input: list[Tensor] = []  # the input of the last leaf module run: the classifier's features

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if not any(True for _ in module.children()) and inputs and isinstance(inputs[0], Tensor):
                last_input[:] = [inputs[0]]
            passthrough = any(output is tensor for tensor in inputs)  # nn.Identity and friends
            if isinstance(output, Tensor) and not passthrough:
                outputs.append((name, output))

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if name and (only is None or name == only)
    ]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *size, generator=generator).to(device=device, dtype=dtype).requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = logits_of(model(x))
            # A random mix of classes, so that no gradient cancels by symmetry, and of
            # the classifier's input features, so that a head initialised to zero
            # (torchvision's ViT) still lets the gradient through.
            score = (logits * torch.randn(logits.shape, generator=generator).to(logits)).sum()
            if last_input and only is None:
                features = last_input[0]
                score = score + (features * torch.randn(features.shape, generator=generator).to(features)).sum()
    finally:
        for handle in handles:
            handle.remove()
    return outputs, calls, score


def _reaches(score: Tensor, tensors: list[Tensor], prefixes: list[int]) -> list[bool]:
    """Whether each tensor (its patch tokens, after ``prefix``) gets a non-zero gradient from the score."""
    wanted = [t for t in tensors if t.requires_grad]
    grads = iter(torch.autograd.grad(score, wanted, allow_unused=True)) if wanted else iter(())
    reached = []
    for tensor, prefix in zip(tensors, prefixes):
        grad = next(grads) if tensor.requires_grad else None
        reached.append(grad is not None and bool(grad[:, prefix:].abs().sum() > 0))
    return reached


def find_layer(model: nn.Module, size: tuple[int, int], layer: str | None = None) -> TargetLayer:
    """The target layer: the one named (checked), or the last spatial map / reaching token layer."""
    if layer is not None and (not layer or layer not in dict(model.named_modules())):
        raise UnknownLayerError(f"The model has no layer {layer!r}.{_close_names(model, layer or '')}")
    height, width = size
    outputs, calls, score = _trace(model, size, only=layer)
    spatial: list[tuple[str, Tensor, int]] = []
    tokens: list[tuple[str, Tensor, int]] = []
    for name, output in outputs:
        if calls[name] != 1 or output.shape[0] != 1 or not output.is_floating_point():
            continue
        if output.ndim == 4 and output.shape[2] > 1 and output.shape[3] > 1:
            spatial.append((name, output, 0))
        elif output.ndim == 3 and output.shape[1] > 1:
            tokens.append((name, output, _prefix_tokens(model, output.shape[1], height, width)))
    if tokens:
        # The token stream's width is the most common one; others (attention's
        # qkv, the MLP's hidden layer, a pooling head's keys) are inside a block.
        widths = [output.shape[2] for _, output, _ in tokens]
        stream = max(set(widths), key=widths.count)
        tokens = [entry for entry in tokens if entry[1].shape[2] == stream]
    # With tokens, a 4-D output after them is attention weights, not a map.
    candidates = tokens or spatial
    reached = _reaches(score, [t for _, t, _ in candidates], [p for _, _, p in candidates])
    found = [entry for entry, ok in zip(candidates, reached) if ok]
    if layer is not None:
        if not found:
            runs = calls.get(layer, 0)
            what = (
                f"runs {runs} times per forward pass"
                if runs != 1
                else "has no (N, C, h, w) map or (N, tokens, C) output that reaches the logits"
            )
            raise UnknownLayerError(
                f"Layer {layer!r} cannot be explained: it {what}; choose another layer or leave it out."
            )
        name, _, prefix = found[-1]
        return TargetLayer(name, bool(tokens), prefix)
    if not found:
        raise UnknownLayerError(
            "No layer of the model outputs a spatial map (N, C, h, w) or patch tokens that reach the logits; "
            "name one with layer=."
        )
    name, _, prefix = found[-1]
    return TargetLayer(name, bool(tokens), prefix)


def locate_layer(model: nn.Module, input_size: tuple[int, int]) -> str:
    """The layer Grad-CAM should read when none is named.

    One dry forward pass (at ``input_size``, height and width) records every
    module's output; the layer is the last module, in execution order, whose
    output is a map ``(N, C, h, w)`` with ``h, w > 1`` and that ran exactly once.
    For transformers whose layers output tokens ``(N, prefix + h * w, C)`` it is
    the last layer of the token stream whose patch tokens still reach the
    logits (checked by one backward pass): for a ViT that reads its class token,
    the first norm of the last block (timm ``blocks.11.norm1``, torchvision
    ``encoder.layers.encoder_layer_11.ln_1``). Modules that return their input
    unchanged (``nn.Identity``) are never chosen; when a container and its last
    child output the same tensor, the container is named (``layer4``).

    Args:
        model: the network, in eval mode.
        input_size: ``(height, width)`` of the dry run's input.

    Returns:
        The dotted module name.

    Raises:
        UnknownLayerError: when no layer qualifies.
    """
    return find_layer(model, input_size).name
