"""Every place the app relies on a part of Gradio that is not its public API, in one module.

Gradio 6.31 offers no public way to do these five things; each function names
the private it uses, and ``tests/test_gradio_internals.py`` has one test per
function that fails when a Gradio release changes what it relies on:

- :func:`current_event`: the request, event id and enqueue time of the event
  being handled (``gradio.context.LocalContext``, ``Blocks._queue``), so a request
  whose visitor has left can be skipped before the model runs. A stream's chunks
  after its first come without their event's id (``Queue.process_events`` hands the
  chunk's own body over): their event id is "".
- :func:`share_the_queue`: a cap on the requests one browser tab and one network
  address may have waiting or running, and a sentence for an event that does not
  exist (wraps ``Queue.push``, counts ``Queue.event_ids_to_events``).
- :func:`inputs_in_words`: a request whose inputs Gradio itself cannot read (a
  number where a file goes, a path outside its folders, too few values) is answered
  in a sentence, not an empty error (wraps ``Blocks.preprocess_data``).
- :func:`mcp_returns_every_output`: the MCP server returns each output of a
  queued endpoint (``GradioMCPServer._execute_tool_without_progress``).
- :class:`Page`: link previews (``og:description``, ``og:image``) in the HTML the
  server sends (``Blocks.get_config_file``'s ``simple_description`` and ``thumbnail``).
- :func:`end_streams`: a browser tab's streaming events (the live camera) end the
  moment its visitor leaves (``Queue.event_ids_to_events``, and what the
  ``/stream/<event>/close`` route sets on an ``Event``: ``closed``, ``run_time``, ``signal``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastapi import HTTPException

from gradcam.names import first_line

log = logging.getLogger("demo")


@dataclass(frozen=True)
class Event:
    """The queued event a handler is running for."""

    session_hash: str
    event_id: str  # "" for a stream's chunks after its first
    enqueued: float  # time.monotonic() when it joined the queue


def current_event() -> Event | None:
    """The event being handled, or None outside a queued request (tests, cached examples)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    event_id = LocalContext.event_id.get(None)
    if request is None or (event_id is None and not getattr(request, "session_hash", None)):
        return None
    event_id = event_id or ""  # a stream's later chunk (see the module's docstring)
    enqueued = time.monotonic()
    queue = getattr(LocalContext.blocks.get(None), "_queue", None)
    event = getattr(queue, "event_ids_to_events", {}).get(event_id)
    if event is not None and isinstance(getattr(event, "enqueue_time", None), float):
        enqueued = min(enqueued, event.enqueue_time)
    return Event(getattr(request, "session_hash", None) or "", event_id, enqueued)


Visitor = Callable[[Any], str]


def share_the_queue(
    blocks: gr.Blocks,
    *,
    per_session: int,
    per_address: int,
    visitor: Visitor,
    refusal: Callable[[str], str],
    unknown: str = "There is no such event on this page.",
) -> None:
    """Refuses to queue a request beyond a browser tab's or a network address's share of the queue.

    Call after ``blocks.queue(...)``. Waiting and running requests both count;
    a request that joins beyond a share gets HTTP 429 with ``refusal(which)``
    ("session" or "address") as its detail, which the page shows as it is.

    Args:
        blocks: the app, its queue configured.
        per_session: requests one session (browser tab) may have at once.
        per_address: requests one network address may have at once.
        visitor: the address of a request (a Starlette request: ``.headers``, ``.client``).
        refusal: the sentence for a visitor over their share.
        unknown: the sentence for an event index the page does not have (HTTP 404; Gradio answers 500).
    """
    queue = blocks._queue
    push = queue.push
    if getattr(push, "shares_the_queue", False):
        return

    async def fair_push(body: Any, request: Any, username: Any) -> tuple[bool, Any, str]:
        if body.fn_index not in blocks.fns:
            raise HTTPException(status_code=404, detail=unknown)
        address = visitor(request)
        sessions, addresses = Counter[str](), Counter[str]()
        for event in list(queue.event_ids_to_events.values()):
            sessions[event.session_hash] += 1
            addresses[visitor(event.request)] += 1
        if body.session_hash is not None and sessions[body.session_hash] >= per_session:
            raise HTTPException(status_code=429, detail=refusal("session"))
        if addresses[address] >= per_address:
            raise HTTPException(status_code=429, detail=refusal("address"))
        result: tuple[bool, Any, str] = await push(body=body, request=request, username=username)
        return result

    fair_push.shares_the_queue = True  # type: ignore[attr-defined]
    queue.push = fair_push  # type: ignore[method-assign,assignment]


def inputs_in_words(blocks: gr.Blocks, sentence: str) -> None:
    """Inputs Gradio cannot read before the handler runs are answered with ``sentence`` (a ``gr.Error``).

    Gradio checks an event's values itself first (how many; a file's payload and folder); what it refuses
    there reaches the visitor as an error without a message (the server shows no exception's text). Call
    after the page is built; the original reason goes to the log.
    """
    preprocess = blocks.preprocess_data
    if getattr(preprocess, "in_words", False):
        return

    async def preprocess_data(*args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            log.info("inputs Gradio could not read: %s", first_line(exc))
            raise gr.Error(sentence, title="Can't explain this image", print_exception=False) from exc

    preprocess_data.in_words = True  # type: ignore[attr-defined]
    blocks.preprocess_data = preprocess_data  # type: ignore[method-assign]


def mcp_returns_every_output() -> None:
    """Lets an assistant receive each of explain's outputs, the pictures as pictures.

    Gradio 6.31's MCP server wraps the outputs of a queued endpoint in one more
    list when the client asks for no progress updates
    (``gradio.mcp.GradioMCPServer._execute_tool_without_progress``: ``return [result]``
    where ``result`` is already the tuple of outputs), so the assistant gets one
    text of Python reprs instead of four PNGs, the top 5 and the sentence. With
    progress updates the same server returns the list itself; this makes both
    paths agree. Harmless once Gradio returns a list there.
    """
    try:
        from gradio.mcp import GradioMCPServer
    except ImportError:  # gradio without its [mcp] extra: no MCP server to fix
        return
    original = GradioMCPServer._execute_tool_without_progress
    if getattr(original, "unwraps_outputs", False):
        return

    async def execute(self: Any, job: Any) -> list[Any]:
        data = await original(self, job)
        if len(data) == 1 and isinstance(data[0], tuple):  # several outputs, wrapped once too often
            return list(data[0])
        return data

    execute.unwraps_outputs = True  # type: ignore[attr-defined]
    GradioMCPServer._execute_tool_without_progress = execute  # type: ignore[method-assign]


class Page(gr.Blocks):
    """``gr.Blocks`` whose served HTML describes the page to link previews (Open Graph, Twitter).

    Gradio's page template fills ``og:description`` and ``og:image`` from the
    config's ``simple_description`` and ``thumbnail``, which only
    ``gr.Interface`` sets; crawlers do not run the page's script, so the tags
    must be in the HTML the server sends.
    """

    def __init__(self, *, description: str, thumbnail: str | None = None, **kwargs: Any) -> None:
        self.simple_description = description
        self.thumbnail = thumbnail or ""
        super().__init__(**kwargs)

    def get_config_file(self) -> Any:
        config = super().get_config_file()
        config["simple_description"] = self.simple_description  # type: ignore[typeddict-unknown-key]
        config["thumbnail"] = self.thumbnail  # type: ignore[typeddict-unknown-key]
        return config


def end_streams(blocks: gr.Blocks, session_hash: str) -> int:
    """Ends the streaming events of one browser tab at once; returns how many. Call on the server's event loop.

    Gradio 6.31 waits for a stream's next chunk until its time limit, even when the
    visitor has closed the page (``Queue.process_events``: ``wait_for_batch`` with the
    time limit as the timeout), so the stream's slot stays taken meanwhile. This does
    what the page's own "Stop" does through ``POST /stream/<event>/close``.
    """
    queue = getattr(blocks, "_queue", None)
    ended = 0
    for event in list(getattr(queue, "event_ids_to_events", {}).values()):
        if event.session_hash == session_hash and event.streaming and not event.closed:
            event.run_time = math.inf
            event.closed = True
            event.signal.set()
            ended += 1
    return ended
