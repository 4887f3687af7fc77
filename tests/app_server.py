"""Starts the web app in this process on a free local port, for tests that talk to it over HTTP."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio.utils import get_upload_folder

from demo.launch import create_app, launch_options, limits
from demo.service import DemoService


@dataclass(frozen=True)
class RunningApp:
    url: str
    demo: gr.Blocks
    service: DemoService


def gradio_workdir() -> Path:
    """A fresh output folder inside Gradio's cache folder, as ``python app.py`` uses."""
    return Path(get_upload_folder()) / f"gradcam-test-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(
    app: RunningApp,
    fn_index: int,
    data: list | str,
    session: str,
    *,
    listen: bool = True,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict | str]:
    """Joins the queue as the page does, raw: the status, and with ``listen`` the answer from the event stream.

    ``data`` is the event's inputs, or a whole JSON body as text (to send what no client would).
    """
    body = data if isinstance(data, str) else json.dumps({"data": data, "fn_index": fn_index, "session_hash": session})
    with httpx.Client(timeout=120, headers=dict(headers or {})) as http:
        joined = http.post(
            app.url + "gradio_api/queue/join", content=body, headers={"content-type": "application/json"}
        )
        if joined.status_code != 200 or not listen:
            return joined.status_code, joined.text
        with http.stream("GET", app.url + "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                    return 200, json.loads(line[5:])
    raise AssertionError("the stream ended without an answer")


def explain_index(app: RunningApp) -> int:
    """The function index of the public ``explain`` endpoint."""
    return next(i for i, fn in app.demo.fns.items() if fn.api_name == "explain")


@contextmanager
def running_app(
    service: DemoService, proxy_hops: int = 0, port: int | None = None, **page: Any
) -> Iterator[RunningApp]:
    """The app as ``python app.py`` serves it, on 127.0.0.1 and a free port; closed afterwards.

    With ``proxy_hops=1`` it trusts the last ``X-Forwarded-For`` entry, as on a Space: a test can
    then be many visitors from one machine. ``page`` goes to :func:`demo.launch.create_app`.
    """
    demo = create_app(service, proxy_hops=proxy_hops, **page)
    port = port or free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(limits(proxy_hops)),
    )
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, service)
    finally:
        demo.close()


@contextmanager
def served(
    service: DemoService, env: Mapping[str, str] | None = None, proxy_hops: int = 0, **page: Any
) -> Iterator[RunningApp]:
    """:func:`running_app` with ``env`` set while it runs; the service is closed (its files deleted) afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            with running_app(service, proxy_hops, **page) as running:
                yield running
        finally:
            service.close()
