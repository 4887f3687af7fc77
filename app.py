"""Hugging Face Space entry point: ``python app.py [--share]``.

Serves the Grad-CAM demo on 127.0.0.1:7860 (``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` override it). The models are loaded once, here.

The app is also a Model Context Protocol server: AI assistants can call its
``explain`` tool at ``http://HOST:PORT/gradio_api/mcp/`` (streamable HTTP).
``--no-mcp`` (or ``GRADCAM_MCP=0``) turns that off.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from demo.launch import launch


def main() -> int:
    parser = argparse.ArgumentParser(description="Grad-CAM demo: what is the model looking at?")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--weights", help="local state dict or folder, or 'random' (default: $GRADCAM_WEIGHTS, else torchvision's)")
    parser.add_argument(
        "--no-mcp", action="store_true", default=os.environ.get("GRADCAM_MCP") == "0",
        help="do not serve the explain tool to AI assistants over MCP (default: served at /gradio_api/mcp/)",
    )
    args = parser.parse_args()
    # Gradio reads this when the app is launched without an explicit mcp_server argument.
    os.environ["GRADIO_MCP_SERVER"] = "False" if args.no_mcp else "True"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return launch(host=args.host, port=args.port, share=args.share, weights=args.weights)


if __name__ == "__main__":
    sys.exit(main())
