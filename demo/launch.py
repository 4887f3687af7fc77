"""Starting the app: load the models, build the page, serve it with bounded queue and uploads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from gradcam import GradCAMError

from demo.service import DemoService, load_service
from demo.settings import Settings
from demo.ui import CSS, build_demo

log = logging.getLogger("demo")

#: Requests waiting at most; beyond that a visitor is told the app is busy.
QUEUE_SIZE = 16
#: Explanations run at once (each uses all cores already).
CONCURRENCY = 1
#: Largest upload accepted.
MAX_UPLOAD = "10mb"


def launch_options() -> dict[str, object]:
    """What ``Blocks.launch`` needs besides the address: limits, error policy, look."""
    return {
        "max_file_size": MAX_UPLOAD,
        "show_error": False,  # only gr.Error messages reach the page, never a traceback
        "theme": gr.themes.Soft(primary_hue="orange"),
        "css": CSS,
    }


def create_app(service: DemoService) -> gr.Blocks:
    """The page with its queue configured, ready to launch."""
    demo = build_demo(service)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return demo


def launch(settings: Settings) -> int:
    """Loads the models and serves the app until interrupted; returns the exit code.

    The page is served as soon as one model is ready; the others load in the
    background (the page says which are still loading).
    """
    try:
        # Outputs inside Gradio's cache folder are served as they are, not copied again.
        service = load_service(
            settings.weights,
            settings.models,
            workdir=Path(get_upload_folder()) / f"gradcam-{os.getpid()}",
            compile=settings.compile,
            device=settings.device,
            labels=settings.labels,
            layer=settings.layer,
            background=True,
        )
    except GradCAMError as exc:
        log.error("%s", exc)
        return 2
    demo = create_app(service)
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=settings.share,
            mcp_server=settings.mcp,
            **launch_options(),
        )
    finally:
        service.close()
    return 0
