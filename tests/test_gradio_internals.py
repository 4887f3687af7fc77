"""Each reliance on a Gradio private, checked against the Gradio installed: these fail when a release changes it.

Every test serves a small Blocks app on a free local port and talks to it as the page or an API client does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr
import httpx
import pytest

from demo import gradio_internals
from demo.gradio_internals import Page, current_event, inputs_in_words, mcp_returns_every_output, share_the_queue

from .app_server import free_port


@contextmanager
def served(demo: gr.Blocks) -> Iterator[str]:
    port = free_port()
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def _join(url: str, fn_index: int, data: list, session: str) -> httpx.Response:
    return httpx.post(
        url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session}, timeout=30
    )


def _answer(url: str, session: str) -> dict:
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return json.loads(line[5:])
    raise AssertionError("no answer")


def _fn_index(demo: gr.Blocks, name: str) -> int:
    return next(i for i, fn in demo.fns.items() if fn.name == name)


def test_a_handler_knows_its_event_session_and_when_it_joined():
    seen = []

    def record(x):
        seen.append((current_event(), time.monotonic()))
        return x

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(record, box, box)
    with served(demo) as url:
        assert _join(url, _fn_index(demo, "record"), ["hi"], "session-1").status_code == 200
        assert _answer(url, "session-1")["success"]
    ((event, now),) = seen
    assert event is not None and event.session_hash == "session-1" and len(event.event_id) >= 16
    assert event.enqueued <= now
    assert current_event() is None  # outside a queued request


def test_a_session_and_an_address_each_get_a_share_of_the_queue():
    release = threading.Event()

    def slow(x):
        release.wait(30)
        return x

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(slow, box, box, concurrency_limit=1)
    with served(demo) as url:
        share_the_queue(
            demo,
            per_session=2,
            per_address=3,
            visitor=lambda request: request.client.host,
            refusal=lambda which: f"over the {which} share",
        )
        index = _fn_index(demo, "slow")
        mine = [_join(url, index, ["a"], "tab-1") for _ in range(3)]
        assert [r.status_code for r in mine] == [200, 200, 429] and mine[2].json()["detail"] == "over the session share"
        other_tab = [_join(url, index, ["b"], f"tab-{n}") for n in (2, 3)]
        assert [r.status_code for r in other_tab] == [200, 429] and other_tab[1].json()[
            "detail"
        ] == "over the address share"
        release.set()


def test_an_event_the_page_does_not_have_gets_a_sentence_not_a_server_error():
    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(lambda x: x, box, box)
    with served(demo) as url:
        share_the_queue(
            demo, per_session=2, per_address=3, visitor=lambda r: "x", refusal=str, unknown="No such event."
        )
        answer = _join(url, 9999, ["a"], "tab")
    assert answer.status_code == 404 and answer.json()["detail"] == "No such event."


def test_values_gradio_cannot_read_are_answered_in_a_sentence():
    with gr.Blocks() as demo:
        image = gr.Image(type="filepath")
        out = gr.Textbox()
        image.change(lambda path: str(path), image, out)
    inputs_in_words(demo, "This request could not be read.")
    with served(demo) as url:
        for data in ([5], ["/etc/passwd"], [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}], []):
            assert _join(url, 0, data, "bad").status_code == 200
            answer = _answer(url, "bad")
            assert not answer["success"] and answer["output"]["error"] == "This request could not be read.", data


def test_the_mcp_server_returns_each_output_of_a_queued_endpoint():
    from gradio.mcp import GradioMCPServer

    mcp_returns_every_output()
    execute = GradioMCPServer._execute_tool_without_progress
    assert getattr(execute, "unwraps_outputs", False)

    class Job:
        def result(self):
            return ("picture.png", {"tabby": 0.6}, "The model is 60% sure.")

    assert asyncio.run(execute(None, Job())) == ["picture.png", {"tabby": 0.6}, "The model is 60% sure."]


def test_the_page_html_describes_itself_to_link_previews():
    with Page(description="What the model looks at", thumbnail="https://example.com/p.png") as demo:
        gr.Markdown("hi")
    with served(demo) as url:
        page = httpx.get(url, timeout=30).text
    assert 'content="What the model looks at"' in page and "https://example.com/p.png" in page


@pytest.mark.parametrize(
    "name", ["current_event", "share_the_queue", "inputs_in_words", "mcp_returns_every_output", "Page"]
)
def test_every_reliance_is_named_in_the_module_docstring(name):
    assert f"`{name}`" in (gradio_internals.__doc__ or "")


def test_a_tabs_streams_can_be_ended_as_the_close_route_ends_one():
    """``end_streams`` relies on Gradio's queued ``Event``: ``streaming``, ``closed``, ``run_time``, ``signal``."""
    import asyncio

    from gradio.queueing import Event

    with gr.Blocks() as demo:
        camera = gr.Image(sources=["webcam"], streaming=True)
        camera.stream(lambda frame: frame, camera, camera)
        box = gr.Textbox()
        box.submit(lambda x: x, box, box)
    demo.queue()
    stream_fn = next(fn for fn in demo.fns.values() if fn.connection == "stream")
    other_fn = next(fn for fn in demo.fns.values() if fn.connection != "stream")

    async def run() -> tuple[int, list[Event]]:
        events = [Event("tab", stream_fn, None, None), Event("other-tab", stream_fn, None, None)]
        events.append(Event("tab", other_fn, None, None))
        demo._queue.event_ids_to_events.update({event._id: event for event in events})
        return gradio_internals.end_streams(demo, "tab"), events

    ended, (mine, theirs, not_a_stream) = asyncio.run(run())
    assert ended == 1
    assert mine.closed and mine.is_finished and mine.signal.is_set()
    assert not theirs.closed and not not_a_stream.closed and not theirs.signal.is_set()
