"""Starting the app: load the models, build the page, serve it with bounded queue, requests and disk.

Every model run goes through Gradio's queue (the REST routes that would skip it
are closed), one at a time, with at most ``QUEUE_SIZE`` waiting and a share of
them for each browser tab and network address; only the routes the app uses are
served, request bodies, files per upload and bytes per visitor are bounded
(:class:`demo.limits.RequestGuard`); results stay downloadable for 15 minutes in
a :class:`demo.files.OutputStore`, each visitor within a share of its disk.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from demo import text
from demo.files import OutputStore
from demo.gradio_internals import inputs_in_words, share_the_queue
from demo.limits import Limits, RequestGuard
from demo.logs import install_log_filter
from demo.page import CSS, build_demo
from demo.service import DemoService, load_service
from demo.settings import (
    CONCURRENCY,
    LIVE_SECONDS,
    MAX_UPLOAD,
    QUEUE_PER_ADDRESS,
    QUEUE_PER_SESSION,
    QUEUE_SIZE,
    Settings,
)
from gradcam import GradCAMError

log = logging.getLogger("demo")


def limits(proxy_hops: int = 0) -> Limits:
    """The request limits of this server: on a Hugging Face Space the visitor's address comes from its proxy."""
    return Limits(upload_dir=Path(get_upload_folder()), proxy_hops=proxy_hops)


def launch_options(request_limits: Limits | None = None) -> dict[str, Any]:
    """What ``Blocks.launch`` needs besides the address: limits, error policy, look."""
    return {
        "max_file_size": MAX_UPLOAD,
        "app_kwargs": {"middleware": [Middleware(RequestGuard, limits=request_limits or limits())]},
        "show_error": False,  # only gr.Error messages reach the page, never a traceback
        "enable_monitoring": False,  # no dashboard, no secret dashboard URL in the log
        "theme": gr.themes.Soft(primary_hue="orange"),
        "css": CSS,
    }


def create_app(
    service: DemoService,
    *,
    on_spaces: bool = False,
    preview_image: str | None = None,
    proxy_hops: int = 0,
    live_seconds: float = LIVE_SECONDS,
) -> gr.Blocks:
    """The page with its queue configured, ready to launch.

    Args:
        service: what answers the page's requests.
        on_spaces: served as a Hugging Face Space (share buttons make sense there).
        preview_image: absolute URL of the picture a shared link shows.
        proxy_hops: proxies in front of the app that append to ``X-Forwarded-For``.
        live_seconds: how long one run of the live camera lasts.
    """
    demo = build_demo(
        service, on_spaces=on_spaces, preview_image=preview_image, proxy_hops=proxy_hops, live_seconds=live_seconds
    )
    # api_open=False: POST /run/<name> and /api/<name> would run the model outside the queue.
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY, api_open=False)
    visitor = limits(proxy_hops).visitor
    share_the_queue(
        demo,
        per_session=QUEUE_PER_SESSION,
        per_address=QUEUE_PER_ADDRESS,
        visitor=lambda request: visitor(
            {k.lower(): v for k, v in request.headers.items()}, request.client.host if request.client else None
        ),
        refusal=text.QUEUE_SHARE.__getitem__,
        unknown=text.NO_SUCH_EVENT,
    )
    inputs_in_words(demo, text.UNREADABLE_INPUTS)
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
    demo = create_app(
        service, on_spaces=settings.on_spaces, preview_image=settings.preview_image, proxy_hops=settings.proxy_hops
    )
    install_log_filter()  # nothing a visitor sends reaches the log whole
    try:
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=settings.share,
            mcp_server=settings.mcp,
            **launch_options(limits(settings.proxy_hops)),
        )
    finally:
        service.close()
    return 0
