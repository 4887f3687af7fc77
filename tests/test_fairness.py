"""A public Space shared fairly: one stranger cannot fill the queue or the disk for everyone, nor make it fetch links.

The app runs as on a Space (``proxy_hops=1``: the visitor is the last ``X-Forwarded-For`` entry), so that one
test machine can be many visitors; the model is the tiny one, so two cores can flood it.
"""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demo.files import OutputStore
from demo.request import TOP_PREDICTION
from demo.service import DemoService
from demo.settings import QUEUE_PER_ADDRESS
from gradcam import Explainer

from .app_server import RunningApp, explain_index, gradio_workdir, join, served

pytestmark = pytest.mark.slow


def _photo(seed: int, side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def space(tiny_backbone, tmp_path_factory):
    examples = str(tmp_path_factory.mktemp("fair-examples"))
    workdir = gradio_workdir()
    # A small store, so that a visitor who wrote a zip per opacity change would fill it in this test.
    store = OutputStore(workdir, max_bytes=120 * 1024**2, share=30 * 1024**2)
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, store=store)
    with served(service, {"GRADIO_EXAMPLES_CACHE": examples}, proxy_hops=1) as running:
        yield running


def _as(address: str) -> dict[str, str]:
    return {"x-forwarded-for": f"203.0.113.7, {address}"}  # the first entry is the client's own: ignored


def _upload(app: RunningApp, data: bytes, address: str) -> dict:
    response = httpx.post(
        app.url + "gradio_api/upload", files=[("files", ("p.png", data, "image/png"))], headers=_as(address), timeout=60
    )
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "p.png"}


def _explained(app: RunningApp, seed: int, address: str) -> float:
    """Seconds one visitor waits for an explanation of a new photo through the API."""
    image = _upload(app, _photo(seed), address)
    start = time.perf_counter()
    data = [image, TOP_PREDICTION, "TinyNet", 0.15, 0.5, "jet", ""]
    status, answer = join(app, explain_index(app), data, f"v{seed}", headers=_as(address))
    assert status == 200 and answer["success"], answer
    return time.perf_counter() - start


def test_one_visitor_flooding_the_queue_leaves_room_for_the_next(space):
    alone = min(_explained(space, 1000 + i, "198.51.100.2") for i in range(3))
    image = _upload(space, _photo(7), "198.51.100.1")
    index = explain_index(space)

    def flood(n: int) -> int:  # a new session per request, never listening: what a script does
        data = [image, TOP_PREDICTION, "TinyNet", 0.15, 0.5, "jet", ""]
        return join(space, index, data, f"flood-{n}", listen=False, headers=_as("198.51.100.1"))[0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(flood, range(60)))
    assert answers.count(200) <= QUEUE_PER_ADDRESS and answers.count(429) >= 60 - QUEUE_PER_ADDRESS, answers
    waited = _explained(space, 2000, "198.51.100.2")  # a second visitor, during the flood
    print(
        f"flood: second visitor waited {waited:.2f} s (alone {alone:.2f} s), "
        f"flooder got {answers.count(200)} places of 60"
    )
    assert waited < alone + 30, f"the second visitor waited {waited:.1f} s"


def test_ten_visitors_behind_one_address_are_each_served(space):
    def visitor(n: int) -> bool:
        return _explained(space, 3000 + n, "192.0.2.50") > 0

    with ThreadPoolExecutor(10) as pool:
        assert all(pool.map(visitor, range(10)))


def test_fifty_opacity_changes_write_no_zip_and_the_next_visitor_is_served(space):
    store = space.service.store
    big = _photo(11, side=900)  # its full-quality files are a few MB a time
    image = _upload(space, big, "198.51.100.9")
    explain = explain_index(space)
    visitor = _as("198.51.100.9")
    assert join(space, explain, [image, TOP_PREDICTION, "TinyNet", 0.15, 0.5, "jet", ""], "looks", headers=visitor)[1][
        "success"
    ]
    before = store.owned_bytes("198.51.100.9")
    slider = next(i for i, fn in space.demo.fns.items() if fn.name == "redrawn")
    for n in range(50):
        status, answer = join(
            space, slider, [image, TOP_PREDICTION, "TinyNet", 0.15, n / 50, "jet", ""], "looks", headers=visitor
        )
        assert status == 200 and answer["success"], answer
    grown = store.owned_bytes("198.51.100.9") - before
    zipped = space.service.files(space.service.parse(big)).archive.stat().st_size  # what one download of it costs
    assert grown < 2 * zipped, f"50 look changes wrote {grown / 1e6:.1f} MB, one zip is {zipped / 1e6:.1f} MB"
    assert _explained(space, 4000, "198.51.100.10") > 0


class _Slow(http.server.BaseHTTPRequestHandler):
    """Serves a 'photo' one byte every half second: what held the only worker 48 s."""

    seen: list[str] = []

    def do_GET(self):
        _Slow.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        for _ in range(20):
            self.wfile.write(b"\0")
            self.wfile.flush()
            time.sleep(0.5)

    def log_message(self, *args):
        pass


def test_a_link_is_never_fetched_even_from_a_trusted_host(space, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resolve = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):  # Hugging Face's hosts are trusted by Gradio's downloader: here, this machine
        return resolve("127.0.0.1" if host == "huggingface.co" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    link = f"http://huggingface.co:{server.server_port}/cat.png"
    try:
        client = Client(space.url, verbose=False, headers=_as("198.51.100.20"))
        start = time.perf_counter()
        with pytest.raises(Exception, match="This app does not fetch links"):
            client.predict(handle_file(link), api_name="/explain")
        refused = time.perf_counter() - start
    finally:
        server.shutdown()
    assert _Slow.seen == [], "the server fetched the link"
    assert refused < 5
