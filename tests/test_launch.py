"""Starting the app: the queue's bounds and shares, the request guard in front, no dashboard, no tracebacks."""

from __future__ import annotations

from demo.launch import create_app, launch_options, limits
from demo.limits import RequestGuard
from demo.service import DemoService
from demo.settings import CONCURRENCY, LIVE_STREAMS, MAX_UPLOAD, QUEUE_SIZE
from gradcam import Explainer


def test_the_page_is_queued_with_its_bounds_and_shares(tiny_backbone, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path)
    demo = create_app(service, proxy_hops=1)
    queue = demo._queue
    assert queue.max_size == QUEUE_SIZE
    assert getattr(queue.push, "shares_the_queue", False), "the per-tab and per-address shares are not applied"
    own = {"video": 1, "live": LIVE_STREAMS}  # a clip at a time; the live streams, each frame behind the photos
    for fn in demo.fns.values():
        assert fn.concurrency_limit in (own.get(fn.concurrency_id), CONCURRENCY, "default", None), fn.name
    assert not demo.api_open, "the REST routes that would skip the queue are open"


def test_the_server_runs_behind_the_guard_without_a_dashboard_or_tracebacks():
    options = launch_options(limits(proxy_hops=1))
    (middleware,) = options["app_kwargs"]["middleware"]
    assert middleware.cls is RequestGuard and middleware.kwargs["limits"].proxy_hops == 1
    assert options["max_file_size"] == MAX_UPLOAD
    assert options["show_error"] is False and options["enable_monitoring"] is False
