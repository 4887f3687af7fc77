"""What the network is fed: its input channels, found from the model, and the size and normalisation asked for.

- :func:`input_channels`: the channels of the model's first convolution: 3 for
  RGB photos, 1 for a grayscale model (X-ray, CT slices, documents, thermal),
  which then gets the photo in grayscale (ITU-R BT.601 luma, as Pillow's "L");
- :func:`fit_first_conv`: a checkpoint whose first convolution takes another
  number of channels than the architecture's default (a grayscale fine-tune of a
  torchvision or timm model) gets a first convolution that fits it;
- :func:`with_preprocessing`: the backbone with a size, mean, std and resize
  rule given by the user (a model fine-tuned at 384 px, or with mean 0.5 and
  std 0.5, that its weights enum or timm config does not describe), each value
  checked against the model; a contradiction is one clear sentence
  (:class:`gradcam.errors.SettingError`).

Resizing: ``"short"`` (the default) scales the photo so that its shorter side
is ``size``, keeping the aspect ratio, never cropping, so the map lines up with
every pixel; ``"exact"`` stretches it to ``size x size`` (or ``height x width``),
as the models that take one input size only always are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from torch import Tensor, nn

from gradcam.backbone import Backbone
from gradcam.config import INPUT_MAX_LONG_SIDE, INPUT_MIN_SIDE
from gradcam.errors import SettingError

#: How a photo is resized to the network input.
RESIZE_CHOICES = ("short", "exact")
#: ITU-R BT.601 luma weights of R, G, B: a photo in grayscale, as Pillow's "L" and OpenCV compute it.
LUMA = (0.299, 0.587, 0.114)


def input_channels(model: nn.Module) -> int:
    """The input channels of the model's first convolution (in module order); 3 when it has none."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return 3


def fit_first_conv(model: nn.Module, state_dict: dict[str, Tensor]) -> int | None:
    """Rebuilds the model's first convolution for a checkpoint whose one takes other input channels.

    Only the input channels may differ (a grayscale fine-tune keeps the kernel size
    and the number of filters); anything else is left to strict loading to refuse.

    Returns:
        The checkpoint's input channels when the convolution was rebuilt, else None.
    """
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        weight = state_dict.get(f"{name}.weight" if name else "weight")
        if weight is None or weight.ndim != 4:
            return None
        channels = int(weight.shape[1]) * module.groups
        if channels == module.in_channels or tuple(weight.shape[2:]) != tuple(module.weight.shape[2:]):
            return None
        if weight.shape[0] != module.out_channels or module.groups != 1:
            return None
        rebuilt = nn.Conv2d(
            channels, module.out_channels, module.kernel_size, module.stride, module.padding,  # type: ignore[arg-type]
            module.dilation, module.groups, module.bias is not None, module.padding_mode,  # type: ignore[arg-type]
        )
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        if not child:
            return None
        setattr(holder, child, rebuilt)
        return channels
    return None


def fit_values(values: Sequence[float], channels: int) -> tuple[float, ...]:
    """A published per-channel mean or std for a model of ``channels``: RGB values averaged for a grayscale model."""
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if channels == 1:
        return (sum(values) / len(values),)
    if len(values) == 1:
        return values * channels
    return values


def _check_values(values: Sequence[float], what: str, channels: int, title: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    kind = "grayscale (1 channel)" if channels == 1 else f"{channels} channels (RGB)" if channels == 3 else ""
    if len(values) != channels:
        raise SettingError(
            f"The {what} has {len(values)} values but {title} takes {kind or f'{channels} channels'}: "
            f"give {channels} value{'s' if channels > 1 else ''}."
        )
    if not all(math.isfinite(v) for v in values):
        raise SettingError(f"The {what} must be finite numbers, got {values}.")
    low = 0.0 if what == "mean" else 1e-6
    if not all(low <= v <= 1.0 for v in values):
        raise SettingError(
            f"The {what} is on the [0, 1] scale of pixel values (ImageNet's mean is 0.485, 0.456, 0.406 and "
            f"its std 0.229, 0.224, 0.225), got {', '.join(f'{v:g}' for v in values)}"
            f"{': divide by 255' if any(v > 1 for v in values) else ''}."
        )
    return values


def _check_side(side: int, what: str) -> int:
    if isinstance(side, bool) or not isinstance(side, int) or not INPUT_MIN_SIDE <= side <= INPUT_MAX_LONG_SIDE:
        raise SettingError(f"The {what} must be a whole number of pixels from {INPUT_MIN_SIDE} to "
                           f"{INPUT_MAX_LONG_SIDE}, got {side!r}.")
    return side


def with_preprocessing(
    backbone: Backbone,
    *,
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resize: str | None = None,
    strict_size: bool = False,
) -> Backbone:
    """The backbone with the preprocessing asked for, each value checked against the model.

    Args:
        backbone: as its source built it (its channels known).
        size: the shorter side (``resize="short"``), or the side or ``(height, width)``
            of the stretched input (``resize="exact"``); None keeps the backbone's.
        mean: per-channel normalisation mean on the [0, 1] scale, one value per input channel.
        std: per-channel normalisation std, likewise.
        resize: "short" (aspect ratio kept) or "exact" (stretched); None keeps the backbone's.
        strict_size: the model takes ``backbone.fixed_size`` inputs only (a vision
            transformer with a fixed position embedding).

    Raises:
        SettingError: a value of the wrong length or scale, a size out of range, or a
            size or resize rule that the model cannot take.
    """
    channels = backbone.channels or 3
    title = backbone.title
    changes: dict[str, object] = {}
    if mean is not None:
        changes["mean"] = _check_values(mean, "mean", channels, title)
    if std is not None:
        changes["std"] = _check_values(std, "std", channels, title)
    if resize is not None and resize not in RESIZE_CHOICES:
        raise SettingError(f"resize must be one of {', '.join(RESIZE_CHOICES)}, not {resize!r}.")
    fixed = backbone.fixed_size
    if strict_size and fixed is not None:
        asked = (size, size) if isinstance(size, int) else size
        if resize == "short":
            raise SettingError(f"{title} takes {fixed[0]} x {fixed[1]} inputs only, so photos are stretched to it: "
                               "resize short contradicts it.")
        if asked is not None and tuple(asked) != fixed:
            raise SettingError(f"{title} takes {fixed[0]} x {fixed[1]} inputs only; size "
                               f"{asked[0]} x {asked[1]} contradicts it.")
        return dataclasses.replace(backbone, **changes) if changes else backbone  # type: ignore[arg-type]
    rule = resize or ("exact" if fixed is not None else "short")
    if rule == "short":
        if size is not None and not isinstance(size, int):
            raise SettingError("With resize short, the size is one number: the shorter side of the input.")
        changes["short_side"] = _check_side(size, "size") if size is not None else backbone.short_side
        changes["fixed_size"] = None
    else:
        if size is None:
            exact = fixed or (backbone.short_side, backbone.short_side)
        elif isinstance(size, int):
            exact = (_check_side(size, "size"), size)
        else:
            exact = (_check_side(size[0], "height"), _check_side(size[1], "width"))
        changes["fixed_size"] = exact
        changes["short_side"] = min(exact)
    return dataclasses.replace(backbone, **changes)  # type: ignore[arg-type]


def parse_size(text: str) -> int | tuple[int, int]:
    """A size as people type it: ``"384"`` (a side) or ``"384x320"`` (height x width).

    Raises:
        SettingError: for anything else, in one sentence.
    """
    parts = text.strip().lower().replace(" ", "").split("x")
    if len(parts) in (1, 2) and all(part.isdecimal() for part in parts):
        values = [int(part) for part in parts]
        return values[0] if len(values) == 1 else (values[0], values[1])
    raise SettingError(f"A size is a number of pixels (384) or height x width (384x320), not {text!r}.")


def parse_values(text: str | Sequence[str], what: str) -> tuple[float, ...]:
    """Per-channel values as people type them: ``"0.5,0.5,0.5"``, ``"0.5 0.5 0.5"`` or ``["0.5", "0.5", "0.5"]``.

    Raises:
        SettingError: for a value that is not a number, in one sentence.
    """
    joined = text if isinstance(text, str) else " ".join(text)
    items = [item for item in joined.replace(",", " ").replace("/", " ").split() if item]
    try:
        values = tuple(float(item) for item in items)
    except ValueError:
        raise SettingError(f"The {what} is one number per channel (0.5,0.5,0.5), not {joined!r}.") from None
    if not values:
        raise SettingError(f"The {what} is one number per channel (0.5,0.5,0.5); none was given.")
    return values
