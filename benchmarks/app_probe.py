"""The web app, started in this process on 127.0.0.1, with server-side timestamps for the benchmarks.

Shared by ``bench_app.py`` and ``bench_page.py``. The app is built the way
``python app.py`` builds it (``demo.launch``), on a free port; the only coupling
to the demo's internals is :func:`running_app`. While it runs, every event
handler of the page and the engine's ``Explainer.explain`` (the model work of a
request, whatever part of the demo calls it) and ``gradcam.encode.write_png``
(every PNG file the package writes) record their start and end times (``time.time()``, the clock the
browser's ``performance.timeOrigin + performance.now()`` also follows), so a
request's time can be split between Gradio, our code and the model.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

import gradcam.encode
from gradcam import Explainer, load_backbone


@dataclass
class Spans:
    """(start, end) wall-clock times of each instrumented kind of work, in the order they ended."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, start: float, end: float) -> None:
        with self.lock:
            self.spans.setdefault(kind, []).append((start, end))

    def between(self, kind: str, start: float, end: float) -> list[tuple[float, float]]:
        """The spans of ``kind`` that lie within ``[start, end]``."""
        with self.lock:
            return [s for s in self.spans.get(kind, []) if s[0] >= start and s[1] <= end]

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()


def _timed(fn: Callable[..., Any], kind: str, spans: Spans) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.add(kind, start, time.time())

    return wrapper


@contextmanager
def instrumented(spans: Spans) -> Iterator[None]:
    """Records engine calls and PNG encodings in ``spans`` while the block runs; restores them after."""
    explain = Explainer.explain
    write_png = gradcam.encode.write_png
    Explainer.explain = _timed(explain, "engine", spans)  # patching a method on purpose
    gradcam.encode.write_png = _timed(write_png, "png", spans)
    try:
        yield
    finally:
        Explainer.explain = explain
        gradcam.encode.write_png = write_png


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningApp:
    """The app being served: its address and the server-side spans it records."""

    url: str
    blocks: gr.Blocks
    spans: Spans
    explainer: Explainer
    models: Any


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The app benchmarks' ``--model``, ``--weights`` and ``--background`` options (see :func:`running_app`)."""
    p.add_argument("--model", default="vgg19", help="backbone spec (default: %(default)s)")
    p.add_argument("--weights", default="random", help="as for load_backbone; 'pretrained' for its default weights")
    p.add_argument(
        "--background", default="",
        help="more model specs, comma-separated, loaded in the background after the first as the app does "
        "(untrained weights: the same work as loading real ones)",
    )


@contextmanager
def running_app(model: str, weights: str | None, background: tuple[str, ...] = ()) -> Iterator[RunningApp]:
    """Serves the app as ``python app.py`` does, on a free local port; every handler call is a "handler" span.

    ``weights`` is as for :func:`gradcam.load_backbone`, or "pretrained" for the model's default weights.
    The models of ``background`` load in a thread after the first, as the app's do (so the first
    visitors' requests run while they load); the page is served as soon as the first is ready.
    """
    from demo.engine import ENGINE
    from demo.launch import create_app, launch_options
    from demo.models import ModelSet
    from demo.service import DemoService
    from gradcam import describe_spec

    def loader(spec: str, chosen: str | None) -> Callable[[], Explainer]:
        return lambda: Explainer(load_backbone(spec, chosen))

    workdir = Path(get_upload_folder()) / f"gradcam-bench-{free_port()}"
    loaders = [(describe_spec(model), loader(model, None if weights == "pretrained" else weights))]
    loaders += [(describe_spec(spec), loader(spec, "random")) for spec in background]
    models = ModelSet.load(loaders, background=True, fallback=False, idle=ENGINE.wait_idle)
    service = DemoService(models, workdir=workdir)
    spans = Spans()
    blocks = create_app(service)
    for block_fn in blocks.fns.values():
        if block_fn.fn is not None:
            block_fn.fn = _timed(block_fn.fn, "handler", spans)
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        with instrumented(spans):
            yield RunningApp(f"http://127.0.0.1:{port}/", blocks, spans, models.get(None), models)
    finally:
        blocks.close()
        service.close()
        shutil.rmtree(workdir, ignore_errors=True)


def variants(source: Path, count: int, folder: Path, size: tuple[int, int] | None = None) -> list[Path]:
    """``count`` copies of a photo (resized to ``size`` = (height, width) if given), each one pixel different.

    Different bytes make every upload a new image to the app's cache, so every
    request runs the model, as a new visitor's photo would.
    """
    import cv2
    from harness import example_photo

    folder.mkdir(parents=True, exist_ok=True)
    rgb = example_photo(source.name, size)
    paths = []
    for i in range(count):
        copy = rgb.copy()
        copy[0, 0] = (i * 37 % 256, i * 11 % 256, i % 256)
        path = folder / f"{source.stem}-{i}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(copy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths
