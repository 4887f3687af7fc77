"""Helpers several test modules share: counting a model's hooks, reading the process's memory."""

from __future__ import annotations

import resource

from torch import nn


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def resident_mb() -> float:
    """This process's resident memory right now, in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1e6
