"""How a layer's output is laid out, and how Grad-CAM reads it as feature maps ``(..., C, h, w)``.

Grad-CAM (Selvaraju et al., ICCV 2017) averages the gradient over the spatial
positions of a layer's feature maps; which axes are spatial depends on the
network:

- :attr:`Layout.CHANNELS_FIRST`, ``(N, C, h, w)``: convolutional networks;
- :attr:`Layout.CHANNELS_LAST`, ``(N, h, w, C)``: Swin's stages, and the
  channels-last blocks of timm's ConvNeXt, MambaOut and others;
- :attr:`Layout.TOKENS`, ``(N, prefix + h * w, C)``: vision transformers, the
  patch tokens of an ``h x w`` grid after ``prefix`` class-like tokens.

:func:`layout_of` tells them apart from the shapes a layer gives for inputs of
two sizes (the axes that follow the input's height and width are spatial, the
constant one holds the channels, a token axis follows the area), or, for a model
that takes one input size only, from the shape at that size;
:func:`gradcam.layers.find_layer` records the layout with the layer.
:func:`grid_reader` is the one reader of the engine (:class:`gradcam.GradCAM`).

This module is a leaf: it imports torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import Enum

from torch import Tensor

#: The most class-like tokens (class, distillation, registers) looked for before the patch tokens.
MAX_PREFIX_TOKENS = 8


class Layout(str, Enum):
    """Where a layer's output keeps its channels and its spatial positions."""

    CHANNELS_FIRST = "NCHW"
    CHANNELS_LAST = "NHWC"
    TOKENS = "tokens"

    @property
    def shape(self) -> str:
        """The layout as people write it: ``"(N, C, h, w)"``."""
        return {"NCHW": "(N, C, h, w)", "NHWC": "(N, h, w, C)", "tokens": "(N, prefix + h*w, C)"}[self.value]


#: A shape seen at an input size: ``(output shape, (input height, input width))``.
Seen = tuple[tuple[int, ...], tuple[int, int]]


def token_grid(patches: int, height: int, width: int) -> tuple[int, int] | None:
    """The ``(h, w)`` patch grid of ``patches`` tokens for an input of ``height x width``, if they form one.

    A patch stride ``s`` gives ``ceil(height / s) x ceil(width / s)`` patches (padded
    inputs) or ``floor`` of both (cropped ones); the smallest stride that gives
    ``patches`` wins. A square number of patches is read as a square grid when no
    stride fits (a model that resized its input).
    """
    if patches < 1:
        return None
    for stride in range(1, max(1, min(height, width)) + 1):
        for rounded in (math.ceil, math.floor):
            h, w = int(rounded(height / stride)), int(rounded(width / stride))
            if h * w == patches and h > 0 and w > 0:
                return h, w
        if math.ceil(height / stride) * math.ceil(width / stride) < patches:
            break
    side = math.isqrt(patches)
    return (side, side) if side * side == patches else None


def _follows(first: int, second: int, side: tuple[int, int]) -> bool:
    """Whether an axis of size ``first`` at input side ``side[0]`` and ``second`` at ``side[1]`` scales with it."""
    if first < 1 or second == first:
        return False
    predicted = first * side[1] / side[0]
    return abs(second - predicted) <= 1.0 + 0.05 * predicted


def _on_grid(h: int, w: int, size: tuple[int, int]) -> bool:
    """Whether ``h x w`` can be the grid of an input of ``size``: at most its size, its aspect within one cell."""
    height, width = size
    return 2 <= h <= height and 2 <= w <= width and abs(h * width - w * height) <= max(height, width)


def _prefix(seen: Sequence[Seen], declared: int | None) -> int | None:
    """The class-like tokens before a grid of patches in every shape seen; None when no count leaves one."""
    counts = [declared] if declared is not None else range(MAX_PREFIX_TOKENS + 1)
    for prefix in counts:
        grids = [token_grid(shape[1] - prefix, *size) for shape, size in seen]
        if all(grid is not None and grid[0] * grid[1] > 1 for grid in grids):
            if len(seen) == 1 or all(g is not None and g != grids[0] for g in grids[1:]):
                return prefix
    return None


def layout_of(seen: Sequence[Seen], declared_prefix: int | None = None) -> tuple[Layout, int] | None:
    """The layout of a layer's output from its shapes at one or two input sizes, and its prefix tokens.

    With two sizes (of different heights, widths and aspect ratios), an axis is
    spatial when it scales with the input's height or width and holds the
    channels when it stays the same; a token axis grows with the area. With one
    size (a model that takes one input size only), a pair of axes is spatial when
    it can be the grid of the input; a 4-D output whose last two axes and first
    two could both be (a square input, as many channels as positions) is read as
    ``(N, C, h, w)``.

    Args:
        seen: ``(output shape, (input height, input width))`` for each dry pass, batch size 1.
        declared_prefix: the class-like tokens the model declares (timm's ``num_prefix_tokens``), if any.

    Returns:
        ``(layout, prefix tokens)``, or None when the output is no map and no tokens
        (a vector, attention weights, a grid that does not follow the input).
    """
    shapes = [shape for shape, _ in seen]
    if not shapes or len({len(s) for s in shapes}) != 1 or any(s[0] != 1 for s in shapes):
        return None
    rank = len(shapes[0])
    if rank == 4:
        if len(seen) >= 2:
            (first, size1), (second, size2) = seen[0], seen[1]
            heights, widths = (size1[0], size2[0]), (size1[1], size2[1])

            def spatial(h: int, w: int) -> bool:
                return _follows(first[h], second[h], heights) and _follows(first[w], second[w], widths)

            if first[1] == second[1] and spatial(2, 3):
                return Layout.CHANNELS_FIRST, 0
            if first[3] == second[3] and spatial(1, 2):
                return Layout.CHANNELS_LAST, 0
            return None
        (shape, size) = seen[0]
        if _on_grid(shape[2], shape[3], size):
            return Layout.CHANNELS_FIRST, 0
        if _on_grid(shape[1], shape[2], size):
            return Layout.CHANNELS_LAST, 0
        return None
    if rank == 3:
        if len(seen) >= 2 and (shapes[0][2] != shapes[1][2] or shapes[0][1] == shapes[1][1]):
            return None  # the channels change, or the tokens do not follow the input
        prefix = _prefix(seen, declared_prefix)
        return None if prefix is None else (Layout.TOKENS, prefix)
    return None


def infer_layout(activations: Tensor) -> Layout:
    """The layout of an output no one described: ``(N, C, h, w)`` for 4-D, tokens for 3-D (the engine's default)."""
    return Layout.CHANNELS_FIRST if activations.ndim == 4 else Layout.TOKENS


def grid_reader(
    activations: Tensor,
    layout: Layout | None,
    prefix_tokens: int | None,
    input_size: tuple[int, int],
    layer: str,
) -> Callable[[Tensor], Tensor]:
    """How to read a layer's output (and its gradient) as feature maps ``(..., C, h, w)``.

    Args:
        activations: the layer's output for one batch.
        layout: how it is laid out; None infers ``(N, C, h, w)`` for 4-D outputs and
            tokens for 3-D ones.
        prefix_tokens: for tokens, how many class-like tokens lead the patch tokens;
            None tries 0, 1 and 2.
        input_size: ``(height, width)`` of the network input, which the patch grid follows.
        layer: the layer's name, for messages.

    Returns:
        A function of tensors shaped like ``activations`` (with any leading axes):
        ``(..., C, h, w)``, a view where it can be.

    Raises:
        ValueError: for an output that does not have the layout, or tokens that form no grid.
    """
    layout = layout if layout is not None else infer_layout(activations)
    wanted = 3 if layout is Layout.TOKENS else 4
    if activations.ndim != wanted or activations.ndim not in (3, 4):
        raise ValueError(
            f"Layer {layer!r} outputs {tuple(activations.shape)}; Grad-CAM needs feature maps "
            f"{Layout.CHANNELS_FIRST.shape} or {Layout.CHANNELS_LAST.shape}, or transformer tokens "
            f"{Layout.TOKENS.shape}. Choose another layer."
        )
    if layout is Layout.CHANNELS_FIRST:
        return lambda t: t
    if layout is Layout.CHANNELS_LAST:
        return lambda t: t.movedim(-1, -3)  # (..., h, w, C) -> (..., C, h, w)
    tokens = activations.shape[1]
    height, width = input_size
    counts = [prefix_tokens] if prefix_tokens is not None else range(3)
    found = next(
        ((p, grid) for p in counts if (grid := token_grid(tokens - p, height, width)) and grid[0] * grid[1] > 1),
        None,
    )
    if found is None:
        raise ValueError(
            f"Layer {layer!r} outputs {tokens} tokens, which do not form a grid of patches of the "
            f"{height} x {width} input after the class tokens; pass prefix_tokens, or choose another layer."
        )
    prefix, (h, w) = found

    def to_grid(t: Tensor) -> Tensor:  # (..., N, prefix + h*w, C) -> (..., N, C, h, w)
        patches = t[..., prefix:, :]
        return patches.reshape(*patches.shape[:-2], h, w, patches.shape[-1]).movedim(-1, -3)

    return to_grid
