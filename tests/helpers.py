"""Helpers several test modules share: an explanation made by hand, hooks counted, memory read, a Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor, nn

from gradcam import Explanation, Prediction, cam_to_boxes


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


def make_explanation(image: np.ndarray, cam: np.ndarray, **changes: object) -> Explanation:
    """An explanation of ``image`` made by hand: "disc" at 87%, boxes from ``cam``, other fields from ``changes``."""
    fields: dict[str, object] = {
        "image": image,
        "cam": cam,
        "class_index": 1,
        "class_name": "disc",
        "probability": 0.87,
        "top_k": (Prediction(1, "disc", 0.87), Prediction(0, "square", 0.13)),
        "boxes": tuple(cam_to_boxes(cam)),
        "threshold": 0.15,
        "model_name": "TinyNet",
        "layer_name": "features",
        "weights": "trained in the test",
        "untrained": False,
        "cam_empty": False,
    }
    fields.update(changes)
    return Explanation(**fields)  # type: ignore[arg-type]


class ForwardCounter:
    """Counts a model's forward passes, as ``with ForwardCounter(model) as runs:``.

    The pre-hook sits on the model's first child, which every pass runs, also those that do not go
    through the model's own ``forward`` (VGG19's exact path runs its trunk directly).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = next(model.children(), model)
        self.count = 0

    def __enter__(self) -> ForwardCounter:
        def count(module: nn.Module, inputs: object) -> None:
            self.count += 1

        self._handle = self.model.register_forward_pre_hook(count)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
