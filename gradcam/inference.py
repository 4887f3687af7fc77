"""Running a model as the engine does: in inference whatever its flags, its input cast, its class scores unwrapped.

A model in training mode is run as in inference (BatchNorm running statistics, no
Dropout) and its modules' flags are restored after the call; concurrent calls on
one model neither see nor restore each other's switch. What the model returns
(a tensor, a tuple, a mapping or an object with ``.logits``) is unwrapped to its
class scores ``(N, num_classes)``, and a layer's output to its tensor.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from gradcam.heads import two_classes


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Class scores ``(N, num_classes)`` of a plain forward pass, float32, without autograd.

    The model is treated as :class:`GradCAM` treats it: in inference mode whatever
    its flags, its input cast to its floating-point type, its logits unwrapped.
    """
    dtype = floating_dtype(model)
    with torch.no_grad(), as_in_inference(model):
        return logits_of(model(x if dtype is None else x.to(dtype))).float()


def floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating-point type of the model's first parameter, if it has one."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None


def logits_of(output: object) -> Tensor:
    """Class scores from what a model returns: a tensor, a tuple, a mapping or an object with ``.logits``.

    A single logit ``z`` (a binary classifier) is read as two classes, ``(-z/2, z/2)``
    (see :mod:`gradcam.heads`): class 1 is the positive one, class 0 its negation.
    """
    if isinstance(output, Tensor):
        logits = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        logits = output[0]
    elif isinstance(output, dict) and isinstance(output.get("logits"), Tensor):
        logits = output["logits"]
    elif isinstance(getattr(output, "logits", None), Tensor):
        logits = output.logits  # type: ignore[attr-defined]
    else:
        raise TypeError(
            f"The model returns {type(output).__name__}; Grad-CAM needs class scores (N, num_classes): "
            "wrap the model so that forward returns them."
        )
    if logits.ndim != 2:
        raise ValueError(f"The model's class scores should be (N, num_classes), got {tuple(logits.shape)}.")
    return two_classes(logits)


def layer_tensor(output: object) -> Tensor | None:
    """The tensor a layer outputs: the output itself, or the first item of a tuple or list (None for anything else)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def with_layer_tensor(output: object, tensor: Tensor) -> object:
    """The layer's output with its tensor (see :func:`layer_tensor`) replaced, of the same type."""
    if isinstance(output, Tensor):
        return tensor
    assert isinstance(output, (tuple, list))
    items = [tensor, *output[1:]]
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a named tuple
        return type(output)(*items)
    return type(output)(items)


_training_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


@contextlib.contextmanager
def as_in_inference(model: nn.Module) -> Iterator[None]:
    """Runs a model in training mode as in inference, then restores its modules' flags.

    Calls on a model already in eval mode pass straight through. Calls on a model
    in training mode hold a per-model lock while its flags are switched, so that
    concurrent calls neither see nor restore each other's switch.
    """
    with _locks_guard:
        lock = _training_locks.setdefault(model, threading.Lock())
    lock.acquire()
    training = [module for module in model.modules() if module.training]
    if not training:
        lock.release()
        yield
        return
    try:
        for module in training:
            module.training = False
        yield
    finally:
        for module in training:
            module.training = True
        lock.release()
