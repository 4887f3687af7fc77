"""Hugging Face ZeroGPU: model work runs inside the ``spaces`` package's ``GPU`` decorator.

On a ZeroGPU Space a GPU is attached only while a function decorated with
``spaces.GPU`` runs. Everywhere else (no ``spaces`` package, or a Space on
other hardware, where the decorator does nothing) the function runs as it is.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("demo")

F = TypeVar("F", bound=Callable[..., Any])


def on_gpu(fn: F, *, importer: Callable[[str], Any] = importlib.import_module) -> F:
    """``spaces.GPU(fn)`` when the ``spaces`` package is installed, else ``fn`` unchanged."""
    try:
        spaces = importer("spaces")
    except ImportError:
        return fn
    log.info("running model work through spaces.GPU (Hugging Face ZeroGPU)")
    wrapped: F = spaces.GPU(fn)
    return wrapped
