"""Helpers several test modules share: counting a model's hooks, reading the process's memory."""

from __future__ import annotations

from pathlib import Path

from torch import nn


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def resident_mib() -> float:
    """This process's resident memory right now, in MiB (Linux's VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class ForwardCounter:
    """Counts a model's forward passes, as ``with ForwardCounter(model) as runs:``.

    The pre-hook sits on the model's first child, which every pass runs, also those that do not go
    through the model's own ``forward`` (VGG19's exact path runs its trunk directly).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = next(model.children(), model)
        self.count = 0

    def __enter__(self) -> ForwardCounter:
        self._handle = self.model.register_forward_pre_hook(lambda module, inputs: setattr(self, "count", self.count + 1))
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
