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
