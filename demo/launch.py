"""Starting the app: load the models, build the page, serve it with bounded queue, requests and disk.

Every model run goes through Gradio's queue (the REST routes that would skip it
are closed), one at a time, with at most ``QUEUE_SIZE`` waiting; request bodies,
files per upload and bytes per visitor are bounded by :class:`demo.guard.RequestGuard`;
results stay downloadable for 15 minutes in a :class:`demo.files.OutputStore`.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from gradcam import GradCAMError

from demo.files import OutputStore
from demo.guard import Limits, RequestGuard, install_log_filter
from demo.service import DemoService, load_service
from demo.settings import CONCURRENCY, MAX_UPLOAD, QUEUE_SIZE, Settings
from demo.ui import CSS, build_demo

log = logging.getLogger("demo")

def limits(on_spaces: bool = False) -> Limits:
    """The request limits of this server: on a Hugging Face Space the visitor's address comes from its proxy."""
    return Limits(upload_dir=Path(get_upload_folder()), trust_forwarded=on_spaces)


def launch_options(request_limits: Limits | None = None) -> dict[str, Any]:
    """What ``Blocks.launch`` needs besides the address: limits, error policy, look."""
    return {
        "max_file_size": MAX_UPLOAD,
        "app_kwargs": {"middleware": [Middleware(RequestGuard, limits=request_limits or limits())]},
        "show_error": False,  # only gr.Error messages reach the page, never a traceback
        "theme": gr.themes.Soft(primary_hue="orange"),
        "css": CSS,
    }


def create_app(service: DemoService) -> gr.Blocks:
    """The page with its queue configured, ready to launch."""
    demo = build_demo(service)
    # api_open=False: POST /run/<name> and /api/<name> would run the model outside the queue.
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY, api_open=False)
    return demo


def launch(settings: Settings) -> int:
    """Loads the models and serves the app until interrupted; returns the exit code.

    The page is served as soon as one model is ready; the others load in the
    background (the page says which are still loading).
    """
    try:
        # Outputs inside Gradio's cache folder are served as they are, not copied again.
        uploads = Path(get_upload_folder())
        service = load_service(
            settings.weights,
            settings.models,
            compile=settings.compile,
            device=settings.device,
            labels=settings.labels,
            layer=settings.layer,
            background=True,
            store=OutputStore(uploads / f"gradcam-{os.getpid()}", uploads=uploads),
        )
    except GradCAMError as exc:
        log.error("%s", exc)
        return 2
    demo = create_app(service)
    install_log_filter()  # nothing a visitor sends reaches the log whole
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=settings.share,
            mcp_server=settings.mcp,
            **launch_options(limits(settings.on_spaces)),
        )
    finally:
        service.close()
    return 0
