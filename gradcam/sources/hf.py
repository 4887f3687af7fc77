"""Hugging Face ``transformers`` image classifiers, ``hf:PATH_OR_ID``: never a download when explaining.

The model and its image processor come from a local ``save_pretrained`` folder,
or from the Hugging Face cache for a hub id (``hf:google/vit-base-patch16-224``),
always with ``local_files_only=True``: a model that is not there is one clear
sentence, never a download. The class names come from the config's
``id2label``, the preprocessing from the image processor (its mean, std and
size: ``{"height", "width"}`` stretches the photo, ``{"shortest_edge"}`` keeps its
aspect ratio), the head from the config (``problem_type`` multi-label: sigmoid;
one label: binary). The layer is found by :func:`gradcam.layers.find_layer`
(ViT, ConvNeXt, ResNet and Swin of transformers; their layers may return tuples).

``transformers`` is an optional requirement (``pip install -r requirements-hf.txt``),
imported only here and only when an ``hf:`` spec is built.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradcam.backbone import Backbone
from gradcam.checkpoints import load_weights, read_labels, read_state_dict
from gradcam.config import INPUT_SHORT_SIDE
from gradcam.errors import WeightsError
from gradcam.heads import MULTI_LABEL, Head
from gradcam.names import first_line
from gradcam.sources import RANDOM_DESCRIBED, Source, Weights, backbone, categories_of, requested, seeded
from gradcam.specs import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec

log = logging.getLogger("gradcam")

#: How to get the optional dependency, said when it is missing.
INSTALL = "pip install -r requirements-hf.txt (transformers)"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise WeightsError(f"hf: models need the transformers package: {INSTALL}.") from exc
    return transformers


def _where(name: str) -> str:
    """The folder or hub id an ``hf:`` spec names, a folder's ``~`` expanded."""
    path = Path(name).expanduser()
    return str(path) if path.exists() or name.startswith((".", "/", "~")) else name


def _not_here(name: str, exc: Exception) -> WeightsError:
    path = Path(name).expanduser()
    if path.is_dir():
        return WeightsError(f"{path} is not a Hugging Face model folder ({first_line(exc)}); save one with "
                            "model.save_pretrained(folder) and processor.save_pretrained(folder).")
    if name.startswith((".", "/", "~")) or path.suffix:
        return WeightsError(f"The Hugging Face model folder {path} does not exist.")
    from huggingface_hub import constants

    return WeightsError(
        f"The Hugging Face model {name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and models "
        f"are never downloaded here: download it on a machine with internet (huggingface-cli download {name}) "
        "and copy the cache, or give hf:FOLDER of a save_pretrained folder."
    )


@contextlib.contextmanager
def _quiet(transformers: Any, progress: bool) -> Iterator[None]:
    """transformers' progress bars off while loading, unless asked for (its only switch is process-wide)."""
    shown = transformers.utils.logging.is_progress_bar_enabled()
    if shown and not progress:
        transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown and not progress:
            transformers.utils.logging.enable_progress_bar()


def _config(transformers: Any, name: str) -> Any:
    """The model's config, checked to be an image classifier.

    Raises:
        WeightsError: not there, or not an image classifier.
    """
    try:
        config = transformers.AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _not_here(name, exc) from exc
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES as KNOWN

    architectures = list(getattr(config, "architectures", None) or [])
    classifier = config.model_type in KNOWN and (
        not architectures or any(a.endswith("ForImageClassification") for a in architectures)
    )
    if not classifier:
        what = ", ".join(architectures) or config.model_type
        raise WeightsError(
            f"hf:{name} is not an image classifier (it holds {what}); give a model saved from an "
            "AutoModelForImageClassification, such as ViTForImageClassification."
        )
    return config


def _processor(transformers: Any, name: str) -> Any | None:
    try:
        return transformers.AutoImageProcessor.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as exc:
        log.warning("hf:%s has no image processor (%s); using ImageNet's preprocessing", name, first_line(exc))
        return None


def _preprocessing(processor: Any | None, config: Any) -> tuple[tuple[float, ...], tuple[float, ...], int, Any]:
    """``(mean, std, short side, (height, width) or None)`` from the image processor, on the [0, 1] scale."""
    if processor is None:
        side = int(getattr(config, "image_size", INPUT_SHORT_SIDE) or INPUT_SHORT_SIDE)
        return IMAGENET_MEAN, IMAGENET_STD, side, None
    normalise = getattr(processor, "do_normalize", True)
    mean = tuple(float(v) for v in (processor.image_mean if normalise else (0.0,)))
    std = tuple(float(v) for v in (processor.image_std if normalise else (1.0,)))
    size = processor.size if isinstance(processor.size, dict) else dict(vars(processor.size))
    height, width = size.get("height"), size.get("width")
    if height and width:
        return mean, std, int(min(height, width)), (int(height), int(width))
    shortest = size.get("shortest_edge") or INPUT_SHORT_SIDE
    return mean, std, int(shortest), None


def _takes_one_size(model: nn.Module, size: tuple[int, int], channels: int) -> bool:
    """Whether the model refuses another input size (a ViT's fixed position embedding); one small dry pass."""
    parameter = next(model.parameters())
    other = torch.zeros(1, channels, size[0] + 32, size[1] + 32, dtype=parameter.dtype, device=parameter.device)
    try:
        with torch.no_grad():
            model(other)
    except Exception:  # any refusal of that size
        return True
    return False


def build(spec: BackboneSpec, weights: Weights, labels: Path | None, progress: bool) -> Backbone:
    """The backbone of an ``hf:PATH_OR_ID`` spec (see :mod:`gradcam.sources`); nothing is downloaded.

    Raises:
        WeightsError: transformers missing, the model not there or not an image
            classifier, or weights and labels that do not fit it.
    """
    transformers = _transformers()
    name = _where(spec.arch)
    untrained, path = requested(weights)
    given = read_labels(labels) if labels is not None else None
    with _quiet(transformers, progress):
        config = _config(transformers, name)
        outputs = int(config.num_labels)
        if given is not None and len(given) != outputs and not (outputs == 1 and len(given) <= 2):
            raise WeightsError(
                f"The labels file {labels} names {len(given)} classes but hf:{spec.arch} has a head of {outputs} "
                f"output{'s' if outputs != 1 else ''}."
            )
        state_dict = read_state_dict(path) if path is not None else None  # read, or refused, before anything is built
        if untrained or state_dict is not None:
            model = seeded(lambda: transformers.AutoModelForImageClassification.from_config(config))
            described = RANDOM_DESCRIBED
            if state_dict is not None:
                load_weights(model, state_dict, str(path), spec.title, outputs, labels)
                described = str(path)
        else:
            try:
                model = transformers.AutoModelForImageClassification.from_pretrained(name, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise _not_here(name, exc) from exc
            described = f"Hugging Face {spec.arch}"
        processor = _processor(transformers, name)
    mean, std, short_side, exact = _preprocessing(processor, config)
    channels = int(getattr(config, "num_channels", 3) or 3)
    strict = exact is not None and _takes_one_size(model.eval(), exact, channels)
    declared = getattr(config, "id2label", None) or {}
    named = tuple(str(declared.get(i, declared.get(str(i), f"class {i}"))) for i in range(outputs))
    categories = categories_of(given if given is not None else named, outputs, named)
    head = Head.SIGMOID if getattr(config, "problem_type", None) == MULTI_LABEL and outputs > 1 else None
    return backbone(
        spec, model, categories, described, untrained, mean=mean, std=std, short_side=short_side, fixed_size=exact,
        strict_size=strict, head=head,
    )


def offline(spec: BackboneSpec) -> tuple[bool, str]:
    """Whether the folder exists, or the hub id's config is in the Hugging Face cache (see :mod:`gradcam.sources`)."""
    name = _where(spec.arch)
    path = Path(name)
    if path.is_dir():
        return (True, "") if (path / "config.json").is_file() else (False, "its folder holds no Hugging Face model")
    if name.startswith((".", "/", "~")):
        return False, "its folder is not on this server"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False, "the transformers package is not installed here"
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return True, ""
    return False, "it is not in this server's Hugging Face cache, and models are never downloaded while explaining"


SOURCE = Source(build, offline)
