"""Which layer Grad-CAM reads when none is named, and how its output is laid out, found by dry passes.

:func:`find_layer` (and :func:`locate_layer`, its name only) records every
module's output in one forward pass of a random image, and the shapes of a
second pass at another input size (height and width grown by different
factors): the axes that follow the input's height and width are spatial, the
constant one holds the channels, a token axis follows the area
(:func:`gradcam.layout.layout_of`). A model that takes one input size only is
traced from the shapes at that size. The layer is the last spatial map
(``(N, C, h, w)`` or, as Swin's stages, ``(N, h, w, C)``) or layer of the token
stream (``(N, prefix + h * w, C)``) that ran once and whose positions still
reach the logits (one backward pass checks it). A layer that returns a tuple
is read at its first item. A wrong name is answered with the closest names the
model has.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradcam.cam import layer_tensor, logits_of
from gradcam.errors import UnknownLayerError
from gradcam.layout import Layout, Seen, layout_of
from gradcam.names import closest_hint


@dataclass(frozen=True)
class TargetLayer:
    """The layer Grad-CAM reads: its name, how its output is laid out, and the class-like tokens before the patches.

    Attributes:
        name: the dotted module name.
        layout: where its output keeps channels and positions.
        prefix_tokens: for tokens, the class (distillation, register) tokens before the patch tokens; else 0.
    """

    name: str
    layout: Layout
    prefix_tokens: int = 0


def _close_names(model: nn.Module, layer: str) -> str:
    names = [name for name, _ in model.named_modules() if name]
    return closest_hint(layer, names) or f" It has: {', '.join(names[:10])}, ..."


def _declared_prefix(model: nn.Module) -> int | None:
    """The class-like tokens a model declares: timm's ``num_prefix_tokens``, torchvision's class token."""
    declared = getattr(model, "num_prefix_tokens", None)  # timm
    if isinstance(declared, int):
        return declared
    if isinstance(getattr(model, "class_token", None), Tensor):  # torchvision's VisionTransformer
        return 1
    return None


def other_size(size: tuple[int, int]) -> tuple[int, int]:
    """The second dry pass's input: height and width grown by different factors, multiples of 32."""
    height, width = size
    return 32 * math.ceil(height * 1.5 / 32), 32 * math.ceil(width * 1.25 / 32)


def _input(model: nn.Module, size: tuple[int, int], channels: int, generator: torch.Generator) -> Tensor:
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    return torch.randn(1, channels, *size, generator=generator).to(device=device, dtype=dtype)


def _hooked(
    model: nn.Module, only: str | None, record: Callable[[str, nn.Module, tuple[Any, ...], Any], None]
) -> list[torch.utils.hooks.RemovableHandle]:
    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        return lambda module, inputs, output: record(name, module, inputs, output)

    return [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if name and (only is None or name == only)
    ]


def _trace(
    model: nn.Module, size: tuple[int, int], channels: int, only: str | None = None
) -> tuple[list[tuple[str, Tensor]], dict[str, int], Tensor]:
    """One dry forward pass with grad: module outputs in completion order, call counts, and a scalar score."""
    outputs: list[tuple[str, Tensor]] = []
    calls: dict[str, int] = {}
    last_input: list[Tensor] = []  # the input of the last leaf module run: the classifier's features

    def record(name: str, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        calls[name] = calls.get(name, 0) + 1
        if not any(True for _ in module.children()) and inputs and isinstance(inputs[0], Tensor):
            last_input[:] = [inputs[0]]
        tensor = layer_tensor(output)
        passthrough = any(tensor is given for given in inputs)  # nn.Identity and friends
        if tensor is not None and not passthrough:
            outputs.append((name, tensor))

    generator = torch.Generator().manual_seed(0)
    x = _input(model, size, channels, generator).requires_grad_(True)
    handles = _hooked(model, only, record)
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


def _shapes(model: nn.Module, size: tuple[int, int], channels: int, only: str | None) -> dict[str, tuple[int, ...]]:
    """The output shape of every module that ran once in a dry forward pass without grad (the second pass)."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: Counter[str] = Counter()

    def record(name: str, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        calls[name] += 1
        tensor = layer_tensor(output)
        if tensor is not None:
            shapes[name] = tuple(tensor.shape)

    handles = _hooked(model, only, record)
    try:
        with torch.no_grad():
            model(_input(model, size, channels, torch.Generator().manual_seed(1)))
    finally:
        for handle in handles:
            handle.remove()
    return {name: shape for name, shape in shapes.items() if calls[name] == 1}


def _reaches(score: Tensor, tensors: list[Tensor], prefixes: list[int]) -> list[bool]:
    """Whether each tensor (its positions, after ``prefix`` tokens) gets a non-zero gradient from the score."""
    wanted = [t for t in tensors if t.requires_grad]
    grads = iter(torch.autograd.grad(score, wanted, allow_unused=True)) if wanted else iter(())
    reached = []
    for tensor, prefix in zip(tensors, prefixes):
        grad = next(grads) if tensor.requires_grad else None
        reached.append(grad is not None and bool(grad[:, prefix:].abs().sum() > 0))
    return reached


Candidate = tuple[str, Tensor, Layout, int]


def _candidates(
    outputs: list[tuple[str, Tensor]],
    calls: dict[str, int],
    size: tuple[int, int],
    second: tuple[tuple[int, int], dict[str, tuple[int, ...]]] | None,
    declared_prefix: int | None,
) -> list[Candidate]:
    """The outputs that are maps or tokens, in completion order, without attention weights and inner token widths."""
    found: list[Candidate] = []
    for name, output in outputs:
        if calls[name] != 1 or not output.is_floating_point():
            continue
        seen: list[Seen] = [(tuple(output.shape), size)]
        if second is not None:
            other = second[1].get(name)
            if other is None:
                continue  # it ran more than once, or not at all, at the other size
            seen.append((other, second[0]))
        traced = layout_of(seen, declared_prefix)
        if traced is not None:
            found.append((name, output, *traced))
    tokens = [entry for entry in found if entry[2] is Layout.TOKENS]
    if second is None and tokens:
        # At one input size, attention weights (N, heads, T, T) look like a map: their sides are token counts.
        counts = {entry[1].shape[1] for entry in tokens}
        found = [e for e in found if not (e[2] is Layout.CHANNELS_FIRST and e[1].shape[2] == e[1].shape[3] in counts)]
    # The token stream's width is the most common one among the layers of as many tokens (one stage of a
    # hierarchical transformer); others (attention's qkv, the MLP's hidden layer) are inside a block.
    widths: dict[int, Counter[int]] = {}
    for _, output, layout, _ in found:
        if layout is Layout.TOKENS:
            widths.setdefault(output.shape[1], Counter())[output.shape[2]] += 1
    return [
        entry
        for entry in found
        if entry[2] is not Layout.TOKENS
        or entry[1].shape[2] == widths[entry[1].shape[1]].most_common(1)[0][0]
    ]


def _is_norm(module: nn.Module) -> bool:
    """A normalisation layer (LayerNorm, RMSNorm and their kin in timm and transformers)."""
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()


def _automatic(model: nn.Module, found: list[Candidate]) -> Candidate:
    """The layer chosen among the readable layers that reach the logits: the last one.

    For tokens, the last normalisation layer of the last tokens' stage when there is one: a
    transformer's norm before its last attention (timm ``blocks.11.norm1``, transformers'
    ``layernorm_before``), not the attention's own projections after it, whose patch tokens
    reach the class token only through the values.
    """
    last = found[-1]
    if last[2] is not Layout.TOKENS:
        return last
    stage = last[1].shape[1]
    norms = [
        entry
        for entry in found
        if entry[2] is Layout.TOKENS and entry[1].shape[1] == stage and _is_norm(model.get_submodule(entry[0]))
    ]
    return norms[-1] if norms else last


def find_layer(
    model: nn.Module,
    size: tuple[int, int],
    layer: str | None = None,
    *,
    channels: int = 3,
    fixed_size: bool = False,
) -> TargetLayer:
    """The target layer and its layout: the one named (checked), or the last map or token layer that reaches the logits.

    Args:
        model: the network, in eval mode.
        size: ``(height, width)`` of the first dry pass's input (the model's own when it takes one size only).
        layer: the dotted name of the layer wanted; None finds one.
        channels: the channels of the network input.
        fixed_size: the model takes inputs of ``size`` only: no second pass, the layout is read at ``size``.

    Raises:
        UnknownLayerError: for a name the model does not have, a layer that cannot be
            explained, or a model without any map or token layer.
    """
    if layer is not None and (not layer or layer not in dict(model.named_modules())):
        raise UnknownLayerError(f"The model has no layer {layer!r}.{_close_names(model, layer or '')}")
    outputs, calls, score = _trace(model, size, channels, only=layer)
    second = None
    if not fixed_size:
        bigger = other_size(size)
        try:
            second = (bigger, _shapes(model, bigger, channels, layer))
        except Exception:  # a model that refuses that size: its layouts are read at one size
            second = None
    candidates = _candidates(outputs, calls, size, second, _declared_prefix(model))
    reached = _reaches(score, [c[1] for c in candidates], [c[3] for c in candidates])
    found = [entry for entry, ok in zip(candidates, reached) if ok]
    if layer is not None and not found:
        runs = calls.get(layer, 0)
        what = (
            f"runs {runs} times per forward pass"
            if runs != 1
            else f"has no map {Layout.CHANNELS_FIRST.shape} or {Layout.CHANNELS_LAST.shape}, and no tokens "
            f"{Layout.TOKENS.shape}, that reach the logits"
        )
        raise UnknownLayerError(
            f"Layer {layer!r} cannot be explained: it {what}; choose another layer or leave it out."
        )
    if not found:
        raise UnknownLayerError(
            "No layer of the model outputs a spatial map (N, C, h, w) or (N, h, w, C), or patch tokens, that reach "
            "the logits; name one with layer=."
        )
    name, _, layout, prefix = found[-1] if layer is not None else _automatic(model, found)
    return TargetLayer(name, layout, prefix)


def candidate_layers(
    model: nn.Module, size: tuple[int, int], *, channels: int = 3, fixed_size: bool = False, limit: int = 12
) -> list[TargetLayer]:
    """Layers Grad-CAM can read, for people who compare layers: the automatic one first, then the others.

    Each output tensor is named once, by the outermost module that returns it
    (``layer4``, not ``layer4.1``). The others are the shallowest names first
    (the stages of a CNN, the blocks of a transformer), then deeper ones, up to
    ``limit`` in all, listed from the last to run to the first.

    Args:
        model: the network, in eval mode.
        size: see :func:`find_layer`.
        channels: the channels of the network input.
        fixed_size: see :func:`find_layer`.
        limit: the most layers returned.
    """
    outputs, calls, score = _trace(model, size, channels)
    second = None
    if not fixed_size:
        bigger = other_size(size)
        try:
            second = (bigger, _shapes(model, bigger, channels, None))
        except Exception:  # see find_layer
            second = None
    candidates = _candidates(outputs, calls, size, second, _declared_prefix(model))
    reached = _reaches(score, [c[1] for c in candidates], [c[3] for c in candidates])
    found = [c for c, ok in zip(candidates, reached) if ok]
    if not found:
        return []
    automatic = _automatic(model, found)
    named = [TargetLayer(automatic[0], automatic[2], automatic[3])]
    seen: set[int] = {id(automatic[1])}
    for name, tensor, layout, prefix in reversed(found):
        if id(tensor) not in seen:  # else the automatic one, or a child of the container named already
            seen.add(id(tensor))
            named.append(TargetLayer(name, layout, prefix))
    order = {layer.name: position for position, layer in enumerate(named)}
    others = sorted(named[1:], key=lambda layer: (layer.name.count("."), order[layer.name]))[: max(0, limit - 1)]
    return [named[0], *sorted(others, key=lambda layer: order[layer.name])]


def locate_layer(model: nn.Module, input_size: tuple[int, int]) -> str:
    """The layer Grad-CAM should read when none is named.

    Dry passes (at ``input_size``, height and width, and at a larger size)
    record every module's output; the layer is the last module, in execution
    order, whose output is a map ``(N, C, h, w)`` or ``(N, h, w, C)`` with
    ``h, w > 1`` that ran exactly once and reaches the logits. For transformers
    whose layers output tokens ``(N, prefix + h * w, C)`` it is the last layer
    of the token stream whose patch tokens still reach the logits (checked by
    one backward pass): for a ViT that reads its class token, the first norm of
    the last block (timm ``blocks.11.norm1``, torchvision
    ``encoder.layers.encoder_layer_11.ln_1``); for timm's Swin, the norm after
    its last stage (``norm``, ``(N, 7, 7, 768)`` at 224 x 224). Modules that
    return their input unchanged (``nn.Identity``) are never chosen; when a
    container and its last child output the same tensor, the container is named
    (``layer4``).

    Args:
        model: the network, in eval mode.
        input_size: ``(height, width)`` of the dry run's input.

    Returns:
        The dotted module name.

    Raises:
        UnknownLayerError: when no layer qualifies.
    """
    return find_layer(model, input_size).name
