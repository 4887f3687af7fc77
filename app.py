"""Hugging Face Space entry point: ``python app.py [--share] [--models SPECS] ...``.

Serves the Grad-CAM demo on 127.0.0.1:7860. Settings come from the environment
(``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``, ``GRADCAM_MODELS``,
``GRADCAM_WEIGHTS``, ``GRADCAM_LABELS``, ``GRADCAM_LAYER``, ``GRADCAM_DEVICE``,
``GRADCAM_COMPILE``, ``GRADCAM_MCP``; see :mod:`demo.settings`), and the
command line overrides them. They are read here, once, and passed in. A setting
that cannot be used is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any

from demo.launch import launch
from demo.settings import Settings, from_environment, parse_models
from gradcam.errors import SettingError
from gradcam.heads import HEAD_CHOICES
from gradcam.preprocess import RESIZE_CHOICES, parse_size, parse_values


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Grad-CAM demo: what is the model looking at?")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument(
        "--models",
        help="models, comma-separated, in page order: vgg19, resnet50, densenet121, efficientnet_lite0 (1, 2), "
        "torchvision:NAME, timm:NAME, hf:PATH_OR_ID, each with options in brackets, e.g. "
        "torchvision:resnet18[weights=leaves.pth;labels=leaves.txt;title=Leaves] (default: $GRADCAM_MODELS, "
        "else the built-ins)",
    )
    parser.add_argument(
        "--weights", default=settings.weights, help="state dict for the first model, or 'random' (tests)"
    )
    parser.add_argument("--labels", default=settings.labels, help="class names of the first model, one per line")
    parser.add_argument(
        "--layer", default=settings.layer, help="the first model's target layer (default: found automatically)"
    )
    first = parser.add_argument_group("the first model's head and input (as its brackets in --models)")
    first.add_argument("--head", choices=HEAD_CHOICES, help="auto, softmax or sigmoid (multi-label)")
    first.add_argument("--size", metavar="N|HxW", help="network input: shorter side, or with --resize exact the size")
    first.add_argument("--mean", nargs="+", metavar="M", help="per-channel mean on the [0, 1] scale")
    first.add_argument("--std", nargs="+", metavar="S", help="per-channel std on the [0, 1] scale")
    first.add_argument("--resize", choices=RESIZE_CHOICES, help="short (aspect ratio kept) or exact (stretched)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=settings.device)
    parser.add_argument("--compile", action="store_true", default=settings.compile, help="compile VGG19's trunk")
    parser.add_argument("--no-mcp", action="store_true", help="do not serve the explain tool to AI assistants (MCP)")
    return parser


def _first_model(args: argparse.Namespace) -> dict[str, Any]:
    """The first model's head and input options given on the command line, checked."""
    given: dict[str, Any] = {}
    if args.head is not None:
        given["head"] = args.head
    if args.size is not None:
        given["size"] = parse_size(args.size)
    for name in ("mean", "std"):
        if getattr(args, name) is not None:
            given[name] = parse_values(getattr(args, name), name)
    if args.resize is not None:
        given["resize"] = args.resize
    return given


def main(argv: list[str] | None = None) -> int:
    try:
        settings = from_environment()
        args = _parser(settings).parse_args(argv)
        models = parse_models(args.models) if args.models is not None else settings.models
        if not models:
            raise SettingError("--models names no model.")
        models = (dataclasses.replace(models[0], **_first_model(args)), *models[1:])
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = dataclasses.replace(
        settings,
        host=args.host,
        port=args.port,
        share=args.share,
        models=models,
        weights=args.weights,
        labels=args.labels,
        layer=args.layer,
        device=args.device,
        compile=args.compile,
        mcp=settings.mcp and not args.no_mcp,
    )
    return launch(settings)


if __name__ == "__main__":
    sys.exit(main())
