"""The backbones: torchvision classifiers, their weights, labels and preprocessing.

The default backbone is VGG19 dissected at its last convolutional block, as in the
original Grad-CAM demo (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization", ICCV 2017): ``features[:36]`` ends at
relu5_4 (512 x 14 x 14 for a 224 x 224 input), then the last max-pool, the
adaptive average pool and the classifier. ResNet-50 (``layer4``) and DenseNet-121
(its last feature block, ``features.norm5``) use the generic hook path of
:class:`gradcam.cam.GradCAM`.

Weights come from torchvision's weights enums through torchvision's own download
and cache (``TORCH_HOME``), from a local state dict, or are left untrained
(``"random"``, for offline tests). Class names and normalisation constants come
from the same enums.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum

from gradcam.cam import GradientSums
from gradcam.config import RANDOM_WEIGHTS, WEIGHTS_ENV
from gradcam.errors import WeightsError
log = logging.getLogger("gradcam")


class HookedVGG19(nn.Module):
    """VGG19 split at relu5_4, with a hook that stores the activations' gradient.

    The original design's API is kept: :meth:`get_activations` returns the
    feature maps of the last convolutional block, and after ``model(x)`` with
    ``x`` requiring grad and a ``backward()``, :meth:`get_activations_gradient`
    returns their gradient. The stored gradient is per thread, so concurrent
    callers do not see each other's gradients.

    :class:`gradcam.cam.GradCAM` uses the faster, exact :meth:`cam_forward`
    instead, which never differentiates the convolutional trunk.
    """

    cam_layer = "features_conv"

    def __init__(self, vgg: models.VGG | None = None) -> None:
        super().__init__()
        vgg = vgg if vgg is not None else models.vgg19()
        if len(vgg.features) != 37 or not isinstance(vgg.classifier[0], nn.Linear):
            raise ValueError("HookedVGG19 needs a torchvision VGG19 (37 feature modules).")
        self.features_conv = vgg.features[:36]  # up to relu5_4
        self.max_pool = vgg.features[36]
        self.avgpool = vgg.avgpool
        self.classifier = vgg.classifier
        self._local = threading.local()
        self._fc1_sums_cache: tuple[tuple[int, int], Tensor] | None = None

    def __getstate__(self) -> dict[str, object]:
        # A thread-local cannot be copied or pickled: copy.deepcopy and torch.save
        # of the module get a fresh one (stored gradients are per call anyway).
        state = self.__dict__.copy()
        state.pop("_local", None)
        state["_fc1_sums_cache"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        super().__setstate__(state)
        self._local = threading.local()

    def _gradient_slot(self) -> dict[str, Tensor]:
        """This thread's storage: a plain dict, so a hook run by another thread can fill it."""
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = {}
        return slot

    def activations_hook(self, grad: Tensor) -> None:
        """Stores the gradient of the activations (registered on them in forward)."""
        self._gradient_slot()["gradients"] = grad

    def get_activations_gradient(self) -> Tensor:
        """The gradient stored by the last backward pass of this thread's forward pass.

        Raises:
            RuntimeError: if no backward pass has gone through the hook yet.
        """
        gradients = self._gradient_slot().get("gradients")
        if gradients is None:
            raise RuntimeError("No gradient stored: call backward() on an output of forward() first.")
        return gradients

    def get_activations(self, x: Tensor) -> Tensor:
        """The relu5_4 feature maps, ``(N, 512, H/16, W/16)``."""
        return self.features_conv(x)

    def _head(self, activations: Tensor) -> Tensor:
        pooled = self.avgpool(self.max_pool(activations))  # (N, 512, 7, 7)
        return self.classifier(torch.flatten(pooled, 1))  # (N, 1000)

    def forward(self, x: Tensor) -> Tensor:
        activations = self.features_conv(x)
        if activations.requires_grad:
            # Autograd runs the hooks of CUDA tensors in its own device threads, so
            # the hook writes into the slot of the thread that ran this forward pass.
            slot = self._gradient_slot()
            activations.register_hook(lambda grad: slot.__setitem__("gradients", grad))
        return self._head(activations)

    def _fc1_channel_sums(self) -> Tensor:
        """First classifier weight summed over the 7 x 7 positions: ``(4096, 512)``."""
        weight = self.classifier[0].weight  # (4096, 512 * 7 * 7)
        key = (weight.data_ptr(), weight._version)
        cached = self._fc1_sums_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            sums = weight.reshape(weight.shape[0], -1, 49).sum(dim=2)
        self._fc1_sums_cache = (key, sums)
        return sums

    def cam_forward(self, x: Tensor) -> tuple[Tensor, Tensor, GradientSums]:
        """One forward pass that also yields Grad-CAM's channel gradient sums.

        Grad-CAM only needs each channel's gradient summed over space. Max-pooling
        routes each output gradient to one input and average pooling spreads it
        evenly, so both preserve that sum: the sum over relu5_4's positions equals
        the sum over the 7 x 7 pooled positions, which is the gradient at the first
        fully connected layer's output times its weight summed over those positions.
        So only the small part after that layer is differentiated, and the 400 MB
        weight of the first layer is read once, as in a plain forward pass.

        Args:
            x: preprocessed images ``(N, 3, H, W)``.

        Returns:
            The activations ``(N, 512, h, w)``, the logits ``(N, 1000)``, and a
            function that maps one-hot class selections ``(K, N, 1000)`` to the
            channel gradient sums ``(K, N, 512)``.
        """
        with torch.no_grad():
            activations = self.features_conv(x)  # (N, 512, h, w)
            pooled = torch.flatten(self.avgpool(self.max_pool(activations)), 1)  # (N, 25088)
            fc1 = self.classifier[0](pooled)  # (N, 4096)
        fc1 = fc1.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.classifier[1:](fc1.clone())  # (N, 1000); the copy takes the inplace ReLU
        channel_sums = self._fc1_channel_sums()

        def gradient_sums(one_hot: Tensor) -> Tensor:
            if one_hot.shape[0] == 1:  # one class: a plain backward, without vmap's overhead
                (grad,) = torch.autograd.grad(logits, fc1, one_hot[0])
                grad = grad.unsqueeze(0)
            else:
                (grad,) = torch.autograd.grad(logits, fc1, one_hot, is_grads_batched=True)  # (K, N, 4096)
            return grad @ channel_sums  # (K, N, 512)

        return activations, logits.detach(), gradient_sums


@dataclass(frozen=True)
class BackboneSpec:
    """What is needed to build one architecture and find its weights."""

    name: str
    title: str
    weights: WeightsEnum
    target_layer: str
    build: Callable[[], nn.Module]
    wrap: Callable[[nn.Module], nn.Module] = lambda model: model


def _remap_densenet_keys(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    # torchvision's published DenseNet files use old key names ("norm.1"); its
    # own loader renames them the same way (torchvision.models.densenet).
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {pattern.sub(r"\1\2", key): value for key, value in state_dict.items()}


BACKBONES: dict[str, BackboneSpec] = {
    "vgg19": BackboneSpec(
        "vgg19", "VGG19", models.VGG19_Weights.IMAGENET1K_V1, HookedVGG19.cam_layer, models.vgg19, HookedVGG19
    ),
    "resnet50": BackboneSpec("resnet50", "ResNet-50", models.ResNet50_Weights.IMAGENET1K_V2, "layer4", models.resnet50),
    "densenet121": BackboneSpec(
        "densenet121", "DenseNet-121", models.DenseNet121_Weights.IMAGENET1K_V1, "features.norm5", models.densenet121
    ),
}


@dataclass(frozen=True)
class Backbone:
    """A classifier ready to explain: the model, where to hook it, labels and preprocessing.

    Attributes:
        name: short name, as given to :func:`load_backbone` ("vgg19").
        title: name for people ("VGG19").
        model: the network, in eval mode, parameters frozen.
        target_layer: dotted name of the layer Grad-CAM reads.
        categories: class names, index-aligned with the logits.
        mean: per-channel normalisation mean (RGB, images scaled to [0, 1]).
        std: per-channel normalisation std.
        weights: where the weights came from, for manifests and logs.
        untrained: True when the weights are random: results mean nothing.
        compile: ask whoever runs the model (:class:`gradcam.Explainer`) to
            compile it with ``torch.compile``.
        spec: the spec string the backbone was loaded from.
        short_side: shorter side of the network input, in pixels.
        fixed_size: ``(height, width)`` for models that take only that input size.
        tokens: True when the target layer outputs transformer tokens.
        prefix_tokens: leading tokens (class, distillation) before the patch grid.
    """

    name: str
    title: str
    model: nn.Module
    target_layer: str
    categories: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str
    untrained: bool
    compile: bool = False
    spec: str = ""
    short_side: int = 224
    fixed_size: tuple[int, int] | None = None
    tokens: bool = False
    prefix_tokens: int = 0


def cached_weights_path(name: str) -> Path:
    """Where torchvision's download cache keeps the pretrained file of ``name``."""
    url = BACKBONES[name].weights.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _download_hint(spec: BackboneSpec) -> str:
    return (
        f"copy {Path(urlparse(spec.weights.url).path).name} (from {spec.weights.url}) to "
        f"{cached_weights_path(spec.name)}, or set {WEIGHTS_ENV}=/path/to/state_dict.pth "
        f"(or {WEIGHTS_ENV}={RANDOM_WEIGHTS} for an untrained model, for tests only)"
    )


def _load_failure(exc: Exception) -> str:
    """One line saying why torch.load failed, for a message in one line.

    torch's own text spans lines, carries terminal escapes and advises turning
    ``weights_only`` off; only its reason is kept.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("WeightsUnpickler error:")[-1]
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line.split(". ")[0].rstrip(".") or type(exc).__name__


def _read_state_dict(path: Path, spec: BackboneSpec) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsError(f"Weights file {path} does not exist; {_download_hint(spec)}.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        # torch.load of a damaged file raises almost anything: UnpicklingError,
        # RuntimeError, OSError, EOFError, ValueError, but also IndexError,
        # KeyError, struct.error, TypeError, AssertionError.
        reason = _load_failure(exc)
        raise WeightsError(f"Weights file {path} is corrupt or not a PyTorch state dict ({reason}).") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()):
        raise WeightsError(f"Weights file {path} does not hold a state dict (a mapping of names to tensors).")
    return loaded


def _download_state_dict(spec: BackboneSpec, progress: bool) -> dict[str, Tensor]:
    cached = cached_weights_path(spec.name)
    try:
        # torchvision's own download and cache; a download is checked against the
        # hash prefix torchvision publishes in the file name.
        return spec.weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file raises almost anything (see _read_state_dict)
        # A failed download (network, disk, hash check) leaves no file behind,
        # so a file in the cache means reading it failed.
        if cached.is_file():
            raise WeightsError(
                f"The {spec.title} weights at {cached} are corrupt ({_load_failure(exc)}); delete the file and retry."
            ) from exc
        if isinstance(exc, (OSError, http.client.HTTPException)):
            raise WeightsError(
                f"Could not download the {spec.title} weights ({exc}). To work offline, {_download_hint(spec)}."
            ) from exc
        if isinstance(exc, RuntimeError):
            raise WeightsError(f"The downloaded {spec.title} weights failed the hash check ({exc}); retry.") from exc
        raise


def _weights_file_for(spec: BackboneSpec, source: Path) -> Path:
    # A folder holds files named as torchvision names them; a file is used as it is.
    return source / Path(urlparse(spec.weights.url).path).name if source.is_dir() else source


def load_backbone(
    name: str = "vgg19",
    weights: str | os.PathLike[str] | None = None,
    *,
    channels_last: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
    compile: bool = False,
) -> Backbone:
    """Builds a backbone and loads its weights.

    Args:
        name: one of ``BACKBONES`` ("vgg19", "resnet50", "densenet121").
        weights: None for torchvision's pretrained weights (downloaded once into
            ``TORCH_HOME``) unless the environment variable ``GRADCAM_WEIGHTS``
            says otherwise; a path to a local state dict (or a folder holding
            torchvision's file names); or ``"random"`` for an untrained model.
        channels_last: store convolution weights channels-last (faster on CPUs).
        progress: show torchvision's download progress bar.
        device: where the model runs ("cpu", "cuda").
        compile: ask the :class:`gradcam.Explainer` that runs the backbone to
            compile its convolutional trunk with ``torch.compile`` (VGG19 only;
            the other backbones run through hooks).

    Returns:
        The backbone, in eval mode with its parameters frozen.

    Raises:
        KeyError: for an unknown name.
        WeightsError: when the weights cannot be found, downloaded or loaded; the
            message names the file and says what to do.
    """
    if name not in BACKBONES:
        raise KeyError(f"Unknown model {name!r}; choose one of: {', '.join(BACKBONES)}.")
    spec = BACKBONES[name]
    source = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    untrained = source is not None and str(source) == RANDOM_WEIGHTS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # untrained weights are the same on every start
        model = spec.build()
    if untrained:
        described = "random (untrained)"
    else:
        if source is None:
            state_dict, described = _download_state_dict(spec, progress), f"torchvision {spec.weights}"
        else:
            path = _weights_file_for(spec, Path(source).expanduser())
            state_dict, described = _read_state_dict(path, spec), str(path)
        if name == "densenet121":
            state_dict = _remap_densenet_keys(state_dict)
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as exc:
            where = described if source is not None else str(cached_weights_path(name))
            summary = str(exc).splitlines()[0]
            raise WeightsError(f"{where} does not hold {spec.title} weights: {summary}") from exc
    model = spec.wrap(model).eval().to(device)
    model.requires_grad_(False)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    transforms = spec.weights.transforms()
    return Backbone(
        name=spec.name,
        title=spec.title,
        model=model,
        target_layer=spec.target_layer,
        categories=tuple(spec.weights.meta["categories"]),
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        weights=described,
        untrained=untrained,
        compile=compile,
    )
