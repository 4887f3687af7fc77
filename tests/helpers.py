"""Helpers several test modules share: counting a model's hooks, reading the process's memory, a Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def resident_mib() -> float:
    """This process's resident memory right now, in MiB (Linux's VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def put_in_hf_cache(root: Path, repo: str, state_dict: dict[str, Tensor]) -> Path:
    """A state dict as model.safetensors in the Hugging Face cache layout (what a download leaves)."""
    from safetensors.torch import save_file

    revision = "0" * 40
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    save_file({key: value.contiguous() for key, value in state_dict.items()}, snapshot / "model.safetensors")
    return snapshot / "model.safetensors"
