"""Helpers several test modules share: an explanation made by hand, hooks and forward passes counted, memory
read, a Hugging Face cache, a call in a child process."""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
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


@dataclass(frozen=True)
class ChildResult:
    """How a call in a child process ended.

    Attributes:
        exitcode: 0 when the child ended normally; negative: the signal that killed it (-11
            SIGSEGV, -6 SIGABRT); None: still running at the timeout (then killed).
        returned: ``("returned", value)`` or ``("raised", "ClassName: message")``; None when the
            child sent nothing (it died first).
    """

    exitcode: int | None
    returned: tuple[str, object] | None


def _call_and_send(
    function: Callable[..., object], args: tuple[object, ...], memory: int | None, sender: Connection
) -> None:
    if memory is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
    try:
        value = function(*args)
    except Exception as exc:  # the test decides what was expected
        sender.send(("raised", f"{type(exc).__name__}: {exc}"))
    else:
        sender.send(("returned", value))


def in_child(
    function: Callable[..., object], *args: object, timeout: float = 30, memory_mib: float | None = None
) -> ChildResult:
    """Calls ``function(*args)`` in a forked child: a crash, a hang or a runaway read ends the child, not the tests.

    Forking is fast (the child has everything imported already) and the child
    only calls ``function``; its value must be picklable.

    Args:
        function: what to call.
        args: its arguments.
        timeout: seconds before the child is killed.
        memory_mib: caps the child's address space at its size when forked plus this
            many MiB (``RLIMIT_AS``): an allocation beyond raises MemoryError there,
            so a read that never ends fails the test instead of exhausting the machine.
    """
    memory = None
    if memory_mib is not None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                memory = int(line.split()[1]) * 1024 + int(memory_mib * 1024 * 1024)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_call_and_send, args=(function, args, memory, sender))
    child.start()
    sender.close()
    child.join(timeout)
    if child.exitcode is None:
        child.kill()
        child.join()
        receiver.close()
        return ChildResult(None, None)
    try:
        returned = receiver.recv() if receiver.poll() else None
    except EOFError:  # the child died before sending
        returned = None
    receiver.close()
    return ChildResult(child.exitcode, returned)


def release_pipe_after(path: Path, seconds: float) -> threading.Thread:
    """After ``seconds``, opens the FIFO at ``path`` for writing and closes it again, should a reader wait on it.

    A reader that blocked on the pipe (the bug a test is about) then reads an
    empty file and the test fails on what it reads, instead of hanging forever.
    """

    def release() -> None:
        time.sleep(seconds)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # nobody is reading it: nothing to release
            pass

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def by_definition(
    model: nn.Module, layer: str, x: Tensor, target: int, to_maps: Callable[[Tensor], Tensor]
) -> np.ndarray:
    """Grad-CAM as the paper defines it, for one image and class, with the layer's output read by ``to_maps``.

    The layer's output ``A`` and the gradient of the class score with respect to it come from one full forward
    and backward pass; ``to_maps`` is the test's own statement of the layout: it turns ``A`` (the first item of
    a tuple output) into ``(1, C, h, w)``. ``alpha_k`` is the gradient averaged over the h x w positions; the
    map is ``ReLU(sum_k alpha_k A_k)``, resized to the input bilinearly and min-max normalised.
    """
    import torch
    import torch.nn.functional as F

    stored: list[Tensor] = []

    def keep(module: nn.Module, inputs: object, output: object) -> None:
        stored.append(output[0] if isinstance(output, (tuple, list)) else output)  # type: ignore[index, arg-type]

    handle = model.get_submodule(layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            output = model(x.clone().requires_grad_(True))
            logits = output if isinstance(output, Tensor) else output.logits  # type: ignore[attr-defined]
            (grad,) = torch.autograd.grad(logits[0, target], stored[0])
    finally:
        handle.remove()
    activations, gradients = to_maps(stored[0].detach()).double(), to_maps(grad).double()  # (1, C, h, w)
    alpha = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    span = cam.max() - cam.min()
    return ((cam - cam.min()) / span if span > 0 else cam * 0).numpy()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of two maps."""
    return float(np.corrcoef(np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel())[0, 1])
