"""Which visitors still listen: a request nobody waits for is dropped before the model runs."""

from __future__ import annotations

import asyncio
import threading
import time

from demo.limits import RequestGuard
from demo.presence import Listeners


def test_an_event_stream_marks_its_visitor_present_until_they_disconnect():
    listeners = Listeners()
    seen = []

    async def stream(scope, receive, send):
        seen.append(listeners.listening("abc"))
        await receive()  # the request
        message = await receive()  # the visitor leaves
        seen.append(message["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    scope = {"type": "http", "method": "GET", "path": "/gradio_api/queue/data", "query_string": b"session_hash=abc"}
    messages = [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        pass

    asyncio.run(RequestGuard(stream, listeners=listeners)(scope, receive, send))
    assert seen == [True, "http.disconnect"]
    assert not listeners.listening("abc")


def test_a_request_is_gone_only_when_no_stream_opens_in_time():
    listeners = Listeners()
    assert listeners.gone(["s1"], until=time.monotonic())  # nobody listening, no time left
    assert not listeners.gone([], until=time.monotonic())  # not a queued request
    listeners.opened("s1")
    assert not listeners.gone(["s1", "e1"], until=time.monotonic())
    listeners.closed("s1")
    opener = threading.Timer(0.05, listeners.opened, args=("s1",))
    opener.start()
    assert not listeners.gone(["s1"], until=time.monotonic() + 60)  # the stream opens while it waits
    opener.join()
