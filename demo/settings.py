"""The app's settings, in one place: read once, at start-up, from the command line and the environment.

Library code never reads the environment: :func:`from_environment` is called by
``app.py`` (the edge) and the values are passed in. The limits a visitor's
request must keep (ranges, lengths, queue and disk shares) are constants here,
so the page, the API and the checks read one rule for each setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA
from gradcam.errors import SettingError
from gradcam.heads import HEAD_CHOICES
from gradcam.methods import METHODS as CAM_METHODS
from gradcam.preprocess import RESIZE_CHOICES, parse_size, parse_values


@dataclass(frozen=True)
class Range:
    """The values a number setting may take: ``low`` to ``high`` inclusive, shown in steps of ``step``."""

    low: float
    high: float
    step: float
    default: float


#: The box threshold: how strong the evidence must be to be boxed (share of the strongest).
THRESHOLD: Final = Range(0.05, 0.95, 0.05, BOX_THRESHOLD)
#: The heatmap's opacity over the photo.
OPACITY: Final = Range(0.0, 1.0, 0.05, OVERLAY_ALPHA)
#: The colour maps offered (each has words in :data:`gradcam.words.COLOUR_WORDS`), the default first.
COLORMAPS: Final = (COLORMAP, "viridis", "cividis", "magma")
#: Longest class or model name accepted (the echo in a message is shorter still).
MAX_NAME: Final = 200
#: The methods the page offers, by their titles, the default first ("Grad-CAM").
METHODS: Final = tuple(m.title for m in CAM_METHODS.values())
#: The longest a Score-CAM explanation may take on the page (one masked pass per channel), in seconds: it holds
#: the one explanation slot of the queue while it runs.
SCORE_CAM_SECONDS: Final = 45.0

#: Requests waiting at most, every visitor together; beyond that a visitor is told the app is busy.
QUEUE_SIZE: Final = 24
#: Requests one browser tab may have waiting or running at once.
QUEUE_PER_SESSION: Final = 3
#: Requests one network address may have waiting or running at once (a room behind one Wi-Fi shares it).
QUEUE_PER_ADDRESS: Final = 12
#: Explanations run at once (each uses all cores already).
CONCURRENCY: Final = 1
#: Largest upload accepted, in bytes and as Gradio writes it.
MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
MAX_UPLOAD: Final = "10mb"
#: Longest side of the image the app explains and shows; the network sees 224 pixels anyway.
MAX_SIDE: Final = 1280
#: How many explanations are kept for re-rendering.
CACHE_SIZE: Final = 8
#: The most disk all kept results may use together (bytes), and one visitor's (network address's) share of it.
STORE_BYTES: Final = 2 * 1024**3
STORE_SHARE: Final = 512 * 1024**2
#: The models on the page by default, the first one the default model. The embedded
#: EfficientNet-Lite models need no download, so the page works offline with three real models.
DEFAULT_MODELS: Final = (
    "vgg19", "resnet50", "densenet121", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
)
#: The options a model of ``GRADCAM_MODELS`` may carry in brackets (see :func:`parse_models`).
MODEL_OPTIONS: Final = ("title", "weights", "labels", "layer", "head", "size", "mean", "std", "resize")


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers, and what its operator said about it.

    Attributes:
        spec: the model spec (see :func:`gradcam.load_backbone`).
        title: the name on the page, when not the spec's own ("Leaf model").
        weights: a state dict, or "random"; None: the pretrained weights.
        labels: a class-names file (a fine-tuned model; two or one names for a binary one).
        layer: the target layer; None: found automatically.
        head: "auto", "softmax" or "sigmoid" (multi-label).
        size: the network input's shorter side, or with ``resize="exact"`` its size.
        mean: per-channel normalisation mean on the [0, 1] scale.
        std: per-channel normalisation std.
        resize: "short" or "exact".
    """

    spec: str
    title: str | None = None
    weights: str | None = None
    labels: str | None = None
    layer: str | None = None
    head: str = "auto"
    size: int | tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str | None = None

    @property
    def configured(self) -> bool:
        """True when the operator chose something for this model beyond its name (so it must load as asked)."""
        return (self.weights not in (None, "random")) or any(
            value is not None for value in (self.labels, self.layer, self.size, self.mean, self.std, self.resize)
        ) or self.head != "auto"

    def input_options(self) -> dict[str, Any]:
        """The head and input options for :func:`gradcam.load_backbone`, those given."""
        options: dict[str, Any] = {"head": self.head}
        for name in ("size", "mean", "std", "resize"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options


def _option(spec: str, key: str, value: str) -> tuple[str, Any]:
    """One ``key=value`` of a model's brackets, checked."""
    if key not in MODEL_OPTIONS:
        raise SettingError(
            f"GRADCAM_MODELS: unknown option {key!r} for {spec}; use {', '.join(MODEL_OPTIONS)}."
        )
    if key == "head" and value not in HEAD_CHOICES:
        raise SettingError(f"GRADCAM_MODELS: head for {spec} must be one of {', '.join(HEAD_CHOICES)}, not {value!r}.")
    if key == "resize" and value not in RESIZE_CHOICES:
        raise SettingError(
            f"GRADCAM_MODELS: resize for {spec} must be one of {', '.join(RESIZE_CHOICES)}, not {value!r}."
        )
    if key == "size":
        return key, parse_size(value)
    if key in ("mean", "std"):
        return key, parse_values(value, key)
    return key, value


def _entries(text: str) -> list[str]:
    """The comma-separated entries of a model list, commas inside brackets kept."""
    entries: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    entries.append("".join(current))
    return [entry.strip() for entry in entries if entry.strip()]


def parse_models(text: str) -> tuple[ModelChoice, ...]:
    """The models of ``GRADCAM_MODELS`` (or ``--models``), in page order.

    A plain list names models by spec: ``vgg19,efficientnet_lite0,timm:resnet50``. A model
    may carry options in brackets, ``key=value`` separated by ``;``, per-channel values
    separated by ``/``::

        torchvision:resnet18[weights=leaves.pth;labels=leaves.txt;title=Leaves],efficientnet_lite0
        timm:resnet18[weights=xray.pth;labels=xray.txt;head=auto;size=384;mean=0.5;std=0.25]
        hf:./my-vit[title=My ViT;resize=exact]

    Keys: ``title`` (the name on the page), ``weights``, ``labels``, ``layer``, ``head``
    (auto, softmax, sigmoid), ``size`` (384 or 384x320), ``mean``, ``std``, ``resize``
    (short, exact).

    Raises:
        SettingError: an unknown option, a value that is not one, a bracket left open,
            or two models of one title; in one sentence.
    """
    choices = []
    for entry in _entries(text):
        spec, bracket, rest = entry.partition("[")
        spec = spec.strip()
        options: dict[str, Any] = {}
        if bracket:
            if not rest.endswith("]") or "[" in rest:
                raise SettingError(f"GRADCAM_MODELS: the options of {spec} must end with one ']': {entry!r}.")
            for item in filter(None, (part.strip() for part in rest[:-1].split(";"))):
                key, equals, value = item.partition("=")
                if not equals or not value.strip():
                    raise SettingError(f"GRADCAM_MODELS: an option of {spec} is key=value, not {item!r}.")
                key, parsed = _option(spec, key.strip(), value.strip())
                options[key] = parsed
        if not spec:
            raise SettingError(f"GRADCAM_MODELS: an entry names no model: {entry!r}.")
        choices.append(ModelChoice(spec, **options))
    titled = [choice.title for choice in choices if choice.title]
    if len(titled) != len(set(titled)):
        raise SettingError("GRADCAM_MODELS: two models have the same title; give each its own.")
    return tuple(choices)

#: The picture a shared link of the Space shows, a path in the repository.
PREVIEW: Final = "docs/real-photos.png"


@dataclass(frozen=True)
class Settings:
    """What the app is started with.

    Attributes:
        host: address to listen on.
        port: port to listen on.
        share: also open a public gradio.live link.
        models: the models, in page order, each with what its operator said about it
            (:func:`parse_models`).
        weights: a state dict for the first model, or "random" (tests: then every model is
            untrained), or None for pretrained; a model's own ``weights`` option comes first.
        labels: a class-names file for the first model (a fine-tuned one).
        layer: the first model's target layer, when not found automatically.
        device: "auto", "cpu" or "cuda".
        compile: compile VGG19's trunk at start-up.
        mcp: serve the explain function to AI assistants (Model Context Protocol).
        on_spaces: running as a Hugging Face Space (share buttons make sense there).
        proxy_hops: how many proxies in front of the app append to ``X-Forwarded-For``
            (1 on a Space: its proxy; 0 elsewhere: the header is the client's own and ignored).
        preview_image: absolute URL of the picture a shared link shows (on a Space: the
            README's picture, served by the Hub from the Space's repository).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    models: tuple[ModelChoice, ...] = field(default=tuple(ModelChoice(spec) for spec in DEFAULT_MODELS))
    weights: str | None = None
    labels: str | None = None
    layer: str | None = None
    device: str = "auto"
    compile: bool = False
    mcp: bool = True
    on_spaces: bool = False
    proxy_hops: int = 0
    preview_image: str | None = None


def from_environment(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from ``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``, ``GRADCAM_MODELS``,
    ``GRADCAM_WEIGHTS``, ``GRADCAM_LABELS``, ``GRADCAM_LAYER``, ``GRADCAM_DEVICE``,
    ``GRADCAM_COMPILE``, ``GRADCAM_MCP``, ``GRADCAM_PROXY_HOPS`` and ``SPACE_ID``; the
    command line may override them.

    Raises:
        SettingError: a ``GRADCAM_MODELS`` that cannot be read (see :func:`parse_models`).
    """
    models = parse_models(environ.get("GRADCAM_MODELS", ""))
    space = environ.get("SPACE_ID")
    return Settings(
        host=environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(environ.get("GRADIO_SERVER_PORT", "7860")),
        models=models or Settings.models,
        weights=environ.get("GRADCAM_WEIGHTS") or None,
        labels=environ.get("GRADCAM_LABELS") or None,
        layer=environ.get("GRADCAM_LAYER") or None,
        device=environ.get("GRADCAM_DEVICE", "auto"),
        compile=environ.get("GRADCAM_COMPILE") == "1",
        mcp=environ.get("GRADCAM_MCP", "1") != "0",
        on_spaces=bool(space),
        proxy_hops=int(environ.get("GRADCAM_PROXY_HOPS", "1" if space else "0")),
        preview_image=f"https://huggingface.co/spaces/{space}/resolve/main/{PREVIEW}" if space else None,
    )

#: The live camera: how often the browser sends a frame (seconds), and the frame size it asks the camera for
#: (pixels; the browser scales the camera's picture down to it before sending: the network sees 224 anyway).
LIVE_EVERY: Final = 0.1
LIVE_WIDTH: Final = 320
LIVE_HEIGHT: Final = 240
#: How long one live run lasts (seconds) before it stops by itself, and how long before the end the page says so.
LIVE_SECONDS: Final = 60
LIVE_WARNING: Final = 10
#: Live runs at once, every visitor together (each holds the model only while one of its frames is explained).
LIVE_STREAMS: Final = 2
#: Frames whose maps are averaged to steady the live map, and the shortest time between two sentences (seconds).
LIVE_AVERAGE: Final = 3
LIVE_SENTENCE_EVERY: Final = 1.0
#: Video clips on the page: the longer side of the explained video (pixels), the most time one clip may take
#: (seconds), and which frames are explained (every N-th).
CLIP_SIDE: Final = 640
CLIP_SECONDS: Final = 300
EVERY: Final = Range(1, 10, 1, 1)
