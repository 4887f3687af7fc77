"""The app as a Model Context Protocol server, through a real MCP client over streamable HTTP.

An AI assistant lists the tools, reads what ``explain`` does, and calls it with
an image (a data URL, as assistants send pictures); the answer carries the
overlay picture, the top classes and the sentence.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .app_server import RunningApp, served
from .light_app import light_service

EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"

mcp = pytest.importorskip("mcp", reason="the mcp package is not installed (pip install 'gradio[mcp]')")
from mcp.client import streamable_http  # noqa: E402

pytestmark = pytest.mark.slow  # a server and an MCP client

_client = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client


@pytest.fixture(scope="module")
def mcp_app() -> Iterator[RunningApp]:
    """The light page served with its MCP server on, the way ``python app.py`` turns it on."""
    with served(light_service(), {"GRADIO_MCP_SERVER": "True"}) as running:
        yield running


async def _session(url: str, work) -> Any:
    async with _client(url + "gradio_api/mcp/") as (read, write, _):
        async with mcp.ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def _run(app: RunningApp, work) -> Any:
    return asyncio.run(asyncio.wait_for(_session(app.url, work), timeout=120))


def _explain_tool(tools: list[Any]) -> Any:
    found = [tool for tool in tools if tool.name.endswith("explain")]
    assert len(found) == 1, f"no single explain tool in {[t.name for t in tools]}"
    return found[0]


def test_the_explain_tool_is_listed_with_words_an_assistant_can_act_on(mcp_app):
    tools = _run(mcp_app, lambda session: session.list_tools()).tools
    tool = _explain_tool(tools)
    assert "Grad-CAM" in tool.description and "photo" in tool.description
    properties = tool.inputSchema["properties"]
    assert {"image", "target"} <= set(properties)
    assert "Top prediction" in json.dumps(properties["target"])
    assert not any(t.name.endswith(("page_explain", "cleared", "lambda")) for t in tools), (
        "the page's own events are tools"
    )


def test_calling_explain_with_an_image_returns_the_overlay_and_the_top_classes(mcp_app):
    data = "data:image/png;base64," + base64.b64encode((EXAMPLES / "coffee.png").read_bytes()).decode()

    async def work(session):
        tools = (await session.list_tools()).tools
        return await session.call_tool(_explain_tool(tools).name, {"image": data, "target": "espresso"})

    result = _run(mcp_app, work)
    assert not result.isError, result.content
    images = [c for c in result.content if c.type == "image"]
    words = " ".join(c.text for c in result.content if c.type == "text")
    assert len(images) >= 3, "the panels (overlay among them) are not returned as images"
    assert all(base64.b64decode(i.data)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "You asked about **espresso**" in words
    assert words.count("'confidence':") == 5, "no top 5 classes in the answer"


def test_an_unknown_class_is_answered_with_close_names(mcp_app):
    data = "data:image/png;base64," + base64.b64encode((EXAMPLES / "coffee.png").read_bytes()).decode()

    async def work(session):
        tools = (await session.list_tools()).tools
        return await session.call_tool(_explain_tool(tools).name, {"image": data, "target": "espreso"})

    result = _run(mcp_app, work)
    text = " ".join(c.text for c in result.content if c.type == "text")
    assert result.isError and "espresso" in text, text
