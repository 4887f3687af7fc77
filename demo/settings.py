"""The app's settings, in one place: read once, at start-up, from the command line and the environment.

Library code never reads the environment: :func:`from_environment` is called by
``app.py`` (the edge) and the values are passed in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

#: Requests waiting at most; beyond that a visitor is told the app is busy.
QUEUE_SIZE: Final = 16
#: Explanations run at once (each uses all cores already).
CONCURRENCY: Final = 1
#: Largest upload accepted, in bytes and as Gradio writes it.
MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
MAX_UPLOAD: Final = "10mb"
#: Longest side of the image the app explains and shows; the network sees 224 pixels anyway.
MAX_SIDE: Final = 1280
#: How many explanations are kept for re-rendering.
CACHE_SIZE: Final = 8
#: The models on the page by default, the first one the default model. The embedded
#: EfficientNet-Lite0 needs no download, so the page works offline.
DEFAULT_MODELS: Final = ("vgg19", "resnet50", "densenet121", "efficientnet_lite0")


@dataclass(frozen=True)
class Settings:
    """What the app is started with.

    Attributes:
        host: address to listen on.
        port: port to listen on.
        share: also open a public gradio.live link.
        models: model specs, in page order (see :func:`gradcam.load_backbone`).
        weights: a state dict for the first model, or "random" (tests), or None for pretrained.
        labels: a class-names file for the first model (a fine-tuned one).
        layer: the first model's target layer, when not found automatically.
        device: "auto", "cpu" or "cuda".
        compile: compile VGG19's trunk at start-up.
        mcp: serve the explain function to AI assistants (Model Context Protocol).
        on_spaces: running as a Hugging Face Space (share buttons make sense there).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    models: tuple[str, ...] = DEFAULT_MODELS
    weights: str | None = None
    labels: str | None = None
    layer: str | None = None
    device: str = "auto"
    compile: bool = False
    mcp: bool = True
    on_spaces: bool = False


def from_environment(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from ``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``, ``GRADCAM_MODELS``,
    ``GRADCAM_WEIGHTS``, ``GRADCAM_LABELS``, ``GRADCAM_LAYER``, ``GRADCAM_DEVICE``,
    ``GRADCAM_COMPILE``, ``GRADCAM_MCP`` and ``SPACE_ID``; the command line may override them.
    """
    models = tuple(m.strip() for m in environ.get("GRADCAM_MODELS", "").split(",") if m.strip())
    return Settings(
        host=environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(environ.get("GRADIO_SERVER_PORT", "7860")),
        models=models or DEFAULT_MODELS,
        weights=environ.get("GRADCAM_WEIGHTS") or None,
        labels=environ.get("GRADCAM_LABELS") or None,
        layer=environ.get("GRADCAM_LAYER") or None,
        device=environ.get("GRADCAM_DEVICE", "auto"),
        compile=environ.get("GRADCAM_COMPILE") == "1",
        mcp=environ.get("GRADCAM_MCP", "1") != "0",
        on_spaces=bool(environ.get("SPACE_ID")),
    )
