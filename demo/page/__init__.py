"""The page: one Gradio Blocks app that formats what :class:`demo.service.DemoService` returns.

- :mod:`demo.page.layout`: the components, first screen first;
- :mod:`demo.page.events`: what each control does, and the ``explain`` endpoint;
- :mod:`demo.page.explore`: the Explore area's questions and answers;
- :mod:`demo.page.live` and :mod:`demo.page.clips`: the live camera and video clips, beside the photo;
- :mod:`demo.page.handling`: how an event becomes a checked request, and a failure words;
- :mod:`demo.page.assets`: the CSS and the few scripts that run in the browser.
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import gradio as gr

from demo import text
from demo.gradio_internals import Page, mcp_returns_every_output
from demo.page import assets, clips, events, explore, layout, live
from demo.page.handling import Handling
from demo.service import DemoService
from demo.settings import LIVE_SECONDS, MAX_UPLOAD_BYTES

__all__ = ["CSS", "build_demo", "head"]

CSS = assets.CSS + live.CSS
#: Largest upload the page announces: the server's own limit.
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES / 1024 / 1024


def head(title: str, description: str, image_url: str | None) -> str:
    """Link-preview tags (Open Graph, Twitter) for a shared link to the page."""
    tags = {
        "og:title": title,
        "og:description": description,
        "og:type": "website",
        "twitter:card": "summary_large_image",
        "twitter:title": title,
        "twitter:description": description,
    }
    if image_url:
        tags["og:image"] = image_url
        tags["twitter:image"] = image_url
    lines = [f'<meta name="description" content="{html.escape(description)}">']
    for key, value in tags.items():
        attribute = "property" if key.startswith("og:") else "name"
        lines.append(f'<meta {attribute}="{key}" content="{html.escape(value)}">')
    return "\n".join(lines)


def build_demo(
    service: DemoService,
    *,
    on_spaces: bool = False,
    preview_image: str | None = None,
    upload_limit_mb: float = UPLOAD_LIMIT_MB,
    proxy_hops: int = 0,
    live_seconds: float = LIVE_SECONDS,
) -> gr.Blocks:
    """Lays out the page and wires its events to ``service``.

    The ``explain`` API endpoint (and MCP tool) takes (image file, class name or
    "Top prediction", model title, box threshold, overlay opacity, colours, layer) and
    returns the four pictures (PNG), the top-5 label, the sentence and the zip of
    everything.

    Args:
        service: runs the models.
        on_spaces: the page is served on Hugging Face Spaces (``SPACE_ID`` is set):
            show the buttons that share a picture there.
        preview_image: absolute URL of the picture a shared link shows (``og:image``).
        upload_limit_mb: the upload limit the server enforces, announced in our words.
        proxy_hops: proxies in front of the app that append to ``X-Forwarded-For``.
        live_seconds: how long one run of the live camera lasts.

    The ``explain_video`` endpoint takes (video file, class, model, threshold, opacity,
    colours, every N-th frame) and returns the explained video (MP4), the per-frame table
    (CSV) and a sentence.
    """
    mcp_returns_every_output()
    handling = Handling(service, proxy_hops)
    with warnings.catch_warnings():
        # Gradio 6 prefers head= and js= at launch(); here they travel with the page wherever it is launched.
        warnings.filterwarnings("ignore", message="The parameters have been moved")
        blocks = Page(
            title=text.TITLE,
            description=text.DESCRIPTION,
            thumbnail=preview_image,
            delete_cache=(300, 900),
            head=head(text.TITLE, text.DESCRIPTION, preview_image),
            js=assets.page_script(upload_limit_mb),
        )
    with blocks as demo:
        gr.Markdown(text.INTRO, elem_id="intro")
        if service.untrained:
            gr.Markdown(text.UNTRAINED_BANNER, elem_classes="banner", elem_id="untrained-banner")
        camera, videos = live.LiveCamera(), clips.VideoClips()

        def more_sources() -> None:
            live.source_buttons()
            camera.build()
            videos.build()

        page = layout.build(
            list(service.categories),
            service.model_titles,
            service.default_model,
            text.models_note(service.models.status()),
            on_spaces=on_spaces,
            more_sources=more_sources,
            layers=service.layers(service.default_model),
        )
        answers = explore.build(handling, page.inputs, on_spaces=on_spaces)
        events.wire(handling, page, answers)
        camera.wire(handling, page, demo, seconds=live_seconds)
        videos.wire(handling, page)
        # Each visitor's page says which models are still loading or unavailable, as it is when they arrive.
        light: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "page", "concurrency_limit": None}
        demo.load(lambda: gr.update(info=text.models_note(service.models.status()) or None), None, page.model, **light)
    return demo
