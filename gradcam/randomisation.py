"""Does the map depend on what the model learned? The model-parameter randomisation test.

Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018) re-initialise a
trained network's layers in cascade, from the top (the logits) down, and compare
each explanation with the one of the trained model: a method whose map barely
changes does not explain what the model learned. Guided Backpropagation is their
known failure (its maps stay similar: they mostly show edges of the input), so it
serves here as the test's built-in negative control.

Here the cascade goes from the top down to the target layer: every module that
runs after the target layer has produced its output, and the target layer itself
with everything inside it. When the target layer holds no kernel or weight
matrix of its own (a ReLU, or a normalisation such as EfficientNet-Lite0's
``bn2``), the cascade goes on down to the last module before it that has one (the
convolution whose output it rectifies or normalises): re-initialising only a
normalisation's scale and shift would leave the features it explains as they
were learned. Modules are re-initialised as they initialise
themselves (``reset_parameters()``: PyTorch's defaults, BatchNorm's running
statistics reset); the few without that method get their own parameters redrawn
(matrices as ``nn.Linear`` draws its weight, vectors uniformly in
``[-1/sqrt(n), 1/sqrt(n)]``). Everything happens in a deep copy: the caller's
model stays bit-identical. The maps are compared with Spearman's rank
correlation, ties ranked by their mean rank.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from gradcam.errors import NotAvailableError
from gradcam.guided import guided_backprop
from gradcam.inference import as_in_inference

#: torch's global random state is borrowed for the new weights: one re-initialisation at a time.
_SEEDING = threading.Lock()


@dataclass(frozen=True)
class Randomised:
    """A copy of a model with its layers from the top down to the target layer re-initialised.

    Attributes:
        model: the copy (in eval mode, its parameters frozen, as the original's).
        layers: the re-initialised modules' names, from the top down.
        seed: the seed of the new weights.
    """

    model: nn.Module
    layers: tuple[str, ...]
    seed: int


def _has_own_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def cascade(model: nn.Module, target_layer: str, x: Tensor) -> list[str]:
    """The modules to re-initialise for ``target_layer``, from the top down, found by one forward pass of ``x``.

    Args:
        model: the network.
        target_layer: the dotted name of the explained layer.
        x: an input the model takes (its values do not matter: only the order modules run in).

    Raises:
        ValueError: when the target layer does not run.
    """
    started: dict[str, int] = {}
    finished: dict[str, int] = {}
    clock = iter(range(1 << 62))

    def start(name: str) -> None:  # a hook that returns nothing leaves the inputs and outputs alone
        started.setdefault(name, next(clock))

    def finish(name: str) -> None:
        finished[name] = next(clock)

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, i, n=name: start(n)))
        handles.append(module.register_forward_hook(lambda m, i, o, n=name: finish(n)))
    try:
        with torch.no_grad(), as_in_inference(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    if target_layer not in finished:
        raise ValueError(f"Layer {target_layer!r} did not run during the forward pass.")
    begin, end = started[target_layer], finished[target_layer]

    def inside(name: str) -> bool:
        return name == target_layer or name.startswith(target_layer + ".")

    modules = dict(model.named_modules())
    stateful = [name for name, m in modules.items() if _has_own_state(m) and name in started]
    kernels = [name for name in stateful if any(p.ndim >= 2 for p in modules[name].parameters(recurse=False))]
    bottom = None
    if not any(inside(name) for name in kernels):  # no features of its own: down to the last kernel before it
        before = [name for name in kernels if finished[name] < begin]
        bottom = max(before, key=lambda name: finished[name]) if before else None
    chosen = [
        name
        for name in stateful
        if inside(name) or started[name] > end or (bottom is not None and started[name] >= started[bottom])
        and not (started[name] < begin and finished[name] >= end)  # not a container around the target
    ]
    return sorted(chosen, key=lambda name: started[name], reverse=True)


def _redraw(module: nn.Module) -> None:
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    with torch.no_grad():
        for parameter in module.parameters(recurse=False):
            if parameter.ndim >= 2:
                nn.init.kaiming_uniform_(parameter, a=math.sqrt(5))
            else:
                bound = 1 / math.sqrt(max(1, parameter.numel()))
                nn.init.uniform_(parameter, -bound, bound)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    devices = [device.index or 0] if device.type == "cuda" else []
    with _SEEDING, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def randomised_copy(model: nn.Module, target_layer: str, x: Tensor, *, seed: int = 0) -> Randomised:
    """A deep copy of ``model`` with the cascade of :func:`cascade` re-initialised, in order, from the top.

    Args:
        model: the trained network; it is not changed (not even its random state's users: torch's global
            generator is restored after the new weights are drawn).
        target_layer: the explained layer.
        x: an input the model takes, for the order modules run in.
        seed: of the new weights.
    """
    twin = copy.deepcopy(model)
    names = cascade(twin, target_layer, x)
    parameter = next(twin.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    modules = dict(twin.named_modules())
    with _seeded(seed, device):
        for name in names:
            _redraw(modules[name])
    twin.requires_grad_(False)
    return Randomised(twin, tuple(names), seed)


def _ranks(values: np.ndarray) -> np.ndarray:
    """The ranks of ``values`` (0-based), tied values getting their mean rank."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(values)))
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(starts + (sizes - 1) / 2, sizes)
    return ranks


def spearman(reference: np.ndarray, other: np.ndarray) -> float | None:
    """Spearman's rank correlation of two maps of one shape, in [-1, 1].

    Returns None when ``reference`` is constant (an empty map: nothing to compare), and 0.0 when only
    ``other`` is (its ranks carry nothing of the reference's).
    """
    if reference.shape != other.shape:
        raise ValueError(f"The maps' shapes differ: {reference.shape} and {other.shape}.")
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (reference, other))
    if np.all(a == a[0]):
        return None
    if np.all(b == b[0]):
        return 0.0
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(np.dot(ra, rb) / math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb))))


def guided_saliency(model: nn.Module, x: Tensor, class_index: int) -> np.ndarray | None:
    """Guided Backpropagation's saliency: the guided gradient's largest magnitude over the colours, ``(h, w)``
    (the reduction of Simonyan et al.'s saliency maps, ICLR Workshop 2014).

    None for a model whose activations have no guided rule.
    """
    try:
        with as_in_inference(model):
            gradient = guided_backprop(model, x, class_index)  # (3, h, w)
    except NotAvailableError:
        return None
    return gradient.abs().amax(dim=0).float().cpu().numpy()
