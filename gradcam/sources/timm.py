"""timm's models, ``timm:NAME``: preprocessing from the pretrained config, weights from the Hugging Face hub cache.

Labels come from timm's ImageNet info for ImageNet heads (the first WordNet
lemma, as torchvision names them), else are numbered. Downloads go through
``huggingface_hub``, with its own cache and progress bars. Vision transformers
with a fixed position embedding take one input size only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gradcam.backbone import Backbone
from gradcam.checkpoints import hub_file, read_labels, read_state_dict
from gradcam.errors import WeightsError
from gradcam.names import first_line
from gradcam.sources import (
    NOT_HERE,
    RANDOM_DESCRIBED,
    Source,
    Weights,
    backbone,
    categories_of,
    check_pretrained_head,
    fitted,
    names_and_outputs,
    numbered,
    requested,
)
from gradcam.specs import BackboneSpec


def _categories(model: nn.Module) -> tuple[str, ...]:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    classes = int(getattr(model, "num_classes", 0))
    subset = infer_imagenet_subset(model)
    if subset is None:
        return numbered(classes)
    info = ImageNetInfo(subset)
    if info.num_classes() != classes:
        return numbered(classes)
    # WordNet lemmas, "tabby, tabby cat": the first one is the name, as torchvision's.
    return tuple(info.index_to_description(i).split(", ")[0] for i in range(classes))


def _pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None)
    return cfg if isinstance(cfg, dict) else {}


def _download_error(exc: Exception, name: str) -> WeightsError:
    repo, _ = hub_file(name)
    from huggingface_hub import constants

    where = f"the Hugging Face repo {repo}" if repo else "timm's release"
    reason = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
    return WeightsError(
        f"Could not get the timm {name} weights ({reason}). "
        f"To work offline, download {where} on a machine with internet (huggingface-cli download {repo}) "
        f"and copy it into the hub cache {constants.HF_HUB_CACHE}, or give weights=PATH."
    )


def build(spec: BackboneSpec, weights: Weights, labels: Path | None, progress: bool) -> Backbone:
    """The backbone of a ``timm:NAME`` spec (see :mod:`gradcam.sources`).

    Raises:
        WeightsError: when the weights cannot be had or do not fit the labels.
    """
    import timm
    from timm.data import resolve_data_config

    untrained, path = requested(weights)
    given = read_labels(labels) if labels is not None else None
    names, outputs = names_and_outputs(given)
    if path is None and not untrained:
        try:
            # Downloads go through huggingface_hub, with its own progress bars and cache.
            model = timm.create_model(spec.arch, pretrained=True)
        except Exception as exc:  # hub, network and file errors of many kinds
            raise _download_error(exc, spec.arch) from exc
        if given is not None:
            check_pretrained_head(labels, len(given), spec.title, int(getattr(model, "num_classes", 0)))
        described = f"timm {_pretrained_cfg(model).get('hf_hub_id') or spec.arch}"
    else:
        state_dict = read_state_dict(path) if path is not None else None  # read, or refused, before anything is built

        def create(classes: int | None) -> nn.Module:
            kwargs: dict[str, Any] = {"num_classes": classes} if classes is not None else {}
            return timm.create_model(spec.arch, pretrained=False, **kwargs)

        model, outputs = fitted(spec, create, outputs, state_dict, str(path), labels)
        described = str(path) if path is not None else RANDOM_DESCRIBED
    config = resolve_data_config(model=model)
    input_size = tuple(config["input_size"][1:])
    patch_embed = getattr(model, "patch_embed", None)
    strict = bool(getattr(patch_embed, "strict_img_size", False))
    fixed_input = bool(_pretrained_cfg(model).get("fixed_input_size")) or strict
    fixed = (int(input_size[0]), int(input_size[1])) if fixed_input else None
    mean = tuple(float(v) for v in config["mean"])
    std = tuple(float(v) for v in config["std"])
    named = categories_of(names, outputs, _categories(model) if outputs != 1 else ())
    return backbone(
        spec, model, named, described, untrained,
        mean=mean, std=std, short_side=int(min(input_size)), fixed_size=fixed,
    )


def offline(spec: BackboneSpec) -> tuple[bool, str]:
    """Whether the model's pretrained file is in the Hugging Face hub cache (see :mod:`gradcam.sources`)."""
    repo, cached = hub_file(spec.arch)
    if repo is None:
        return False, "timm publishes no pretrained weights for it"
    if cached is None:
        return False, f"its weights {NOT_HERE}"
    return True, ""


SOURCE = Source(build, offline)
