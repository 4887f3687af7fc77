"""Which classes to explain: the targets a caller gives, checked against the model's class scores.

Targets may be None (the best classes), one index for every image, one per image, or
a list per image; indices may be ints, numpy integers or integer tensors. Anything
else is refused in words (``True`` is not a class, nor is a 20-digit number).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradcam.names import short

Targets = int | Tensor | np.ndarray | Sequence[Any] | None


def resolve_targets(targets: Targets, logits: Tensor, top: int) -> Tensor:
    """The class indices ``(N, K)`` to explain: ``targets`` checked against the logits ``(N, num_classes)``.

    Args:
        targets: see :meth:`gradcam.GradCAM.compute`.
        logits: the model's class scores.
        top: with ``targets=None``, how many of each image's best classes.

    Raises:
        ValueError: for targets that are not class indices of the model, or do not match the batch.
    """
    batch, num_classes = logits.shape
    if targets is None:
        if not 1 <= top <= num_classes:
            raise ValueError(f"top must be between 1 and {num_classes}, got {top}.")
        return logits.topk(top, dim=1).indices
    targets = _plain(targets)
    if not isinstance(targets, list):
        rows: list[list[int | None]] = [[_class_index(targets)] for _ in range(batch)]
    else:
        rows = [[_class_index(t) for t in row] if isinstance(row, list) else [_class_index(row)] for row in targets]
        if len(rows) != batch or len({len(r) for r in rows}) != 1:
            raise ValueError(f"Expected {batch} targets (or {batch} lists of equal length), got {targets!r}.")
    best = logits.argmax(dim=1).tolist()
    filled = [[best[n] if t is None else t for t in row] for n, row in enumerate(rows)]
    for row in filled:
        for index in row:
            if not 0 <= index < num_classes:
                raise ValueError(f"Class indices must be in [0, {num_classes}), got {short(index)}.")
    return torch.tensor(filled, dtype=torch.long, device=logits.device)


def _plain(targets: Any) -> Any:
    """Tensors and arrays of targets as Python ints and lists."""
    if isinstance(targets, Tensor):
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"Class indices must be integers, got a {targets.dtype} tensor.")
        return targets.tolist()
    if isinstance(targets, np.ndarray):
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"Class indices must be integers, got a {targets.dtype} array.")
        return targets.tolist()
    if isinstance(targets, (list, tuple)):
        return [_plain(t) for t in targets]
    return targets


def _class_index(target: Any) -> int | None:
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"A class index is an integer, not {type(target).__name__} ({short(target)}).")
    return int(target)
