"""torchvision's classification models: the built-ins VGG19, ResNet-50, DenseNet-121, and ``torchvision:NAME``.

Labels, preprocessing and the weights file come from the model's weights enum;
pretrained weights are downloaded once into torchvision's cache (``TORCH_HOME``).
A local state dict (``weights=PATH``, or a folder holding torchvision's file
names) is loaded strictly after the spec's key mapping.
"""

from __future__ import annotations

import http.client
from pathlib import Path

from torch import nn
from torchvision import models as tv_models
from torchvision.models import WeightsEnum

from gradcam.backbone import Backbone
from gradcam.checkpoints import load_failure, read_labels, read_state_dict, torchvision_file
from gradcam.config import RANDOM_WEIGHTS, WEIGHTS_ENV
from gradcam.errors import WeightsError
from gradcam.sources import (
    NOT_HERE,
    RANDOM_DESCRIBED,
    Source,
    Weights,
    backbone,
    categories_of,
    check_pretrained_head,
    fitted,
    load_checkpoint,
    names_and_outputs,
    numbered,
    requested,
)
from gradcam.specs import BackboneSpec


def _download_hint(title: str, weights: WeightsEnum, cached: Path) -> str:
    return (
        f"copy {cached.name} (from {weights.url}) to {cached}, or set {WEIGHTS_ENV}=/path/to/state_dict.pth "
        f"(or {WEIGHTS_ENV}={RANDOM_WEIGHTS} for an untrained {title}, for tests only)"
    )


def _download_error(exc: Exception, title: str, weights: WeightsEnum, cached: Path) -> WeightsError:
    """The WeightsError for a failed download or a damaged cached file."""
    # A failed download (network, disk, hash check) leaves no file behind, so a
    # file in the cache means reading it failed.
    if cached.is_file():
        reason = load_failure(exc)
        return WeightsError(f"The {title} weights at {cached} are corrupt ({reason}); delete the file and retry.")
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return WeightsError(
            f"Could not download the {title} weights ({exc}). "
            f"To work offline, {_download_hint(title, weights, cached)}."
        )
    return WeightsError(f"The downloaded {title} weights failed the hash check ({load_failure(exc)}); retry.")


def build(spec: BackboneSpec, weights: Weights, labels: Path | None, progress: bool) -> Backbone:
    """The backbone of a torchvision spec (see :mod:`gradcam.sources`).

    Raises:
        WeightsError: when the weights cannot be had or do not fit the labels.
    """
    untrained, path = requested(weights)
    enum = spec.weights
    published = tuple(enum.meta["categories"]) if enum is not None else None
    given = read_labels(labels) if labels is not None else None
    names, outputs = names_and_outputs(given)
    if enum is not None:
        transforms = enum.transforms()
        mean, std, short_side = tuple(transforms.mean), tuple(transforms.std), int(transforms.crop_size[0])
    else:
        mean, std, short_side = spec.mean, spec.std, spec.short_side
    if path is None and not untrained:
        if enum is None:
            raise WeightsError(
                f"torchvision publishes no weights for {spec.arch}; give weights=PATH or weights={RANDOM_WEIGHTS!r}."
            )
        classes = len(given) if given is not None else len(published or ())
        check_pretrained_head(labels, classes, spec.title, len(published or ()))
        cached = torchvision_file(enum)
        try:
            if spec.library_loads:  # the builder's own loading (key fixes, flags)
                model = tv_models.get_model(spec.arch, weights=enum, progress=progress)
            else:
                # The file first: without it (no network, a damaged cache) nothing is built.
                state_dict = enum.get_state_dict(progress=progress, check_hash=True, weights_only=True)
                model = tv_models.get_model(spec.arch)
                load_checkpoint(spec, model, state_dict, str(cached), classes, labels)
        except WeightsError:
            raise
        except Exception as exc:  # a damaged file raises almost anything (see read_state_dict)
            raise _download_error(exc, spec.title, enum, cached) from exc
        described = f"torchvision {enum}"
    else:
        file, state_dict = None, None
        if path is not None:  # the file is read, or refused, before anything is built
            file = path / torchvision_file(enum).name if enum is not None and path.is_dir() else path
            if not file.is_file():
                hint = f"; {_download_hint(spec.title, enum, file)}" if enum is not None else ""
                raise WeightsError(f"Weights file {file} does not exist{hint}.")
            state_dict = read_state_dict(file)
        default = len(published) if published is not None else 1000

        def create(classes: int | None) -> nn.Module:
            return tv_models.get_model(spec.arch, num_classes=classes if classes is not None else default)

        model, outputs = fitted(spec, create, outputs, state_dict, str(file), labels)
        described = str(file) if file is not None else RANDOM_DESCRIBED
    model = spec.wrap(model)
    # torchvision's ViT takes one input size only.
    size = getattr(model, "image_size", None) if isinstance(model, tv_models.VisionTransformer) else None
    fixed = (size, size) if isinstance(size, int) else None
    named = categories_of(names, outputs, published or numbered(outputs or 1000))
    return backbone(
        spec, model, named, described, untrained,
        mean=mean, std=std, short_side=fixed[0] if fixed else short_side, fixed_size=fixed,
    )


def offline(spec: BackboneSpec) -> tuple[bool, str]:
    """Whether the spec's file is in torchvision's cache (see :mod:`gradcam.sources`)."""
    if spec.weights is None:
        return False, "torchvision publishes no pretrained weights for it"
    if torchvision_file(spec.weights).is_file():
        return True, ""
    size = spec.weights.meta.get("_file_size")
    size_words = f" ({size:.0f} MB)" if isinstance(size, (int, float)) else ""
    return False, f"its weights{size_words} {NOT_HERE}"


SOURCE = Source(build, offline)
