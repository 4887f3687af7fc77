"""Hugging Face Space entry point: ``python app.py [--share] [--models SPECS] ...``.

Serves the Grad-CAM demo on 127.0.0.1:7860. Settings come from the environment
(``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``, ``GRADCAM_MODELS``,
``GRADCAM_WEIGHTS``, ``GRADCAM_LABELS``, ``GRADCAM_LAYER``, ``GRADCAM_DEVICE``,
``GRADCAM_COMPILE``, ``GRADCAM_MCP``; see :mod:`demo.settings`), and the
command line overrides them. They are read here, once, and passed in.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from demo.launch import launch
from demo.settings import from_environment


def main(argv: list[str] | None = None) -> int:
    settings = from_environment()
    parser = argparse.ArgumentParser(description="Grad-CAM demo: what is the model looking at?")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument(
        "--models",
        default=",".join(settings.models),
        help="model specs, comma-separated, in page order: vgg19, resnet50, densenet121, efficientnet_lite0, "
        "torchvision:NAME, timm:NAME (default: $GRADCAM_MODELS, else %(default)s)",
    )
    parser.add_argument(
        "--weights", default=settings.weights, help="state dict for the first model, or 'random' (tests)"
    )
    parser.add_argument("--labels", default=settings.labels, help="class names of the first model, one per line")
    parser.add_argument(
        "--layer", default=settings.layer, help="the first model's target layer (default: found automatically)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=settings.device)
    parser.add_argument("--compile", action="store_true", default=settings.compile, help="compile VGG19's trunk")
    parser.add_argument("--no-mcp", action="store_true", help="do not serve the explain tool to AI assistants (MCP)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
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
