"""A normal request during a flood of every model endpoint from one address, and the disk used after many requests.

Serves the app on 127.0.0.1 with the tiny test model (``--model tiny``, from
``tests.conftest``, through the tests' ``tests.app_server``) or a real
architecture with random weights, joins the queue ``--flood`` times across every
model event (visitors who never listen: the guard drops them), times a normal
``explain`` through gradio_client meanwhile, and prints the process's peak
resident memory; then makes ``--requests`` explanations and prints the disk the
output store holds. Not a test: it prints figures with their conditions.

    python -m benchmarks.bench_flood --model tiny --flood 40 --requests 300
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _photo(seed: int, side: int) -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="tiny", help="tiny, or a backbone name with random weights (vgg19, resnet50, ...)"
    )
    parser.add_argument("--flood", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--side", type=int, default=256, help="side of the square test photos, pixels")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_EXAMPLES_CACHE", tempfile.mkdtemp())

    import httpx
    from gradio_client import Client, handle_file

    from demo.service import DemoService
    from gradcam import Explainer, load_backbone
    from tests.app_server import gradio_workdir, running_app
    from tests.conftest import MEAN, SHAPES, STD, TinyNet

    if args.model == "tiny":
        from gradcam import Backbone

        backbone = Backbone(name="tiny", title="TinyNet", model=TinyNet().eval(), target_layer="features",
                            categories=SHAPES, mean=MEAN, std=STD, weights="random", untrained=True)
    else:
        backbone = load_backbone(args.model, "random")
    title = backbone.title
    service = DemoService({title: Explainer(backbone)}, workdir=gradio_workdir())
    folder = Path(tempfile.mkdtemp())
    photos = []
    for i in range(3):
        path = folder / f"p{i}.png"
        path.write_bytes(_photo(i, args.side))
        photos.append(handle_file(str(path)))
    # As on a Space (one proxy appends the visitor's address): the flood from one address, the visitor from another.
    flooder, visitor = {"x-forwarded-for": "198.51.100.1"}, {"x-forwarded-for": "198.51.100.2"}
    with running_app(service, proxy_hops=1) as app:
        client = Client(app.url, verbose=False, download_files=False, headers=visitor)
        start = time.perf_counter()
        client.predict(photos[0], "Top prediction", title, api_name="/explain")
        quiet = time.perf_counter() - start
        sent = [("files", ("f.png", _photo(9, args.side), "image/png"))]
        upload = httpx.post(app.url + "gradio_api/upload", files=sent, headers=flooder).json()[0]
        image = {"path": upload, "meta": {"_type": "gradio.FileData"}}
        def elem_id(block: object) -> object:
            return getattr(block, "elem_id", None)

        fns = [(i, fn) for i, fn in app.demo.fns.items() if any(elem_id(b) == "input-image" for b in fn.inputs)]
        settings = {"target": "Top prediction", "model": title, "colormap": "jet"}

        def join(n: int) -> int:
            index, fn = fns[n % len(fns)]
            data = [image if elem_id(b) == "input-image" else settings.get(elem_id(b), b.value) for b in fn.inputs]
            body = json.dumps({"data": data, "fn_index": index, "session_hash": f"flood{n}"})
            headers = {"content-type": "application/json", **flooder}
            return httpx.post(app.url + "gradio_api/queue/join", content=body, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(join, range(args.flood)))
        start, tries = time.perf_counter(), 0
        while True:  # a visitor turned away by the full queue tries again
            tries += 1
            try:
                client.predict(photos[1], "Top prediction", title, api_name="/explain")
                break
            except Exception as exc:  # only "queue full" is expected
                if "Queue is full" not in str(exc) or tries > 400:
                    raise
                time.sleep(0.25)
        flooded = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"model {title}, {args.side}x{args.side} photos, {os.cpu_count()} CPUs")
        print(f"flood of {args.flood} joins from one address over {len(fns)} model events: {answers.count(200)} "
              f"queued, {answers.count(429)} over its share, {answers.count(503)} turned away by a full queue")
        print(f"normal request: {quiet:.2f} s quiet, {flooded:.2f} s during the flood ({tries} tries); "
              f"peak RSS {peak:.0f} MB")
        for i in range(args.requests):
            client.predict(photos[i % 3], "Top prediction", title, api_name="/explain")
        used = service.store.used_bytes
        print(f"after {args.requests} more requests: {len(service.store)} folders kept, {used / 1e6:.1f} MB on disk "
              f"({used / max(1, len(service.store)) / 1e3:.0f} kB a request); "
              f"cap {service.store.max_bytes / 1e9:.1f} GB")
    service.close()


if __name__ == "__main__":
    main()
