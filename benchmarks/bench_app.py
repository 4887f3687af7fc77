"""What the web app adds over the engine per request, through ``gradio_client``, measured in one run.

On one model and one photo (every request a new image, so every request runs the
model), interleaved:

* engine: ``Explainer.explain`` on the decoded photo, in this process;
* app: one ``explain`` call through ``gradio_client`` against the app served on
  127.0.0.1, without and with the client downloading the seven outputs; the
  server records when the handler and the engine ran, so each call splits into
  Gradio, our code (decoding, rendering, PNGs, zip) and the engine;
* floor: the same call against a Gradio endpoint of the same shape that does
  nothing, which is what Gradio and its client cost before any of our code runs.

It also times the app's very first request after start-up (issue 9: within 1 s
with EfficientNet-Lite0 on 2 CPU cores).

Run: ``bash benchmarks/run.sh app [--quick] [--model efficientnet_lite0]``.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gradio as gr
import harness
import reporting
from app_probe import RunningApp, add_model_options, free_port, running_app, variants
from gradio_client import Client, handle_file
from harness import Run

from gradcam import load_image

FIRST_REQUEST_LIMIT_S = 1.0
PHOTO = "chelsea.png"


def floor_app(outputs: list[object]) -> gr.Blocks:
    """A Gradio endpoint with the app's inputs and outputs that returns precomputed files at once."""
    with gr.Blocks() as demo:
        inputs = [
            gr.Image(type="filepath"), gr.Dropdown(["Top prediction"], allow_custom_value=True), gr.Textbox(),
            gr.Slider(0, 1), gr.Slider(0, 1), gr.Dropdown(["jet"]),
        ]
        results = [gr.Image(type="filepath", format="png") for _ in range(4)] + [gr.Label(), gr.Markdown(), gr.File()]
        gr.Button().click(lambda *args: outputs, inputs, results, api_name="explain")
    return demo


def caller(client: Client, photos: Iterator[Path], title: str) -> Run:
    """One ``explain`` call per run, each with the next photo."""
    return lambda: explain_call(client, next(photos), title)


def explain_call(client: Client, photo: Path, title: str) -> Any:
    """The page's ``explain`` event for one photo: top prediction, default threshold, opacity and colours."""
    return client.predict(handle_file(str(photo)), "Top prediction", title, 0.15, 0.5, "jet", api_name="/explain")


def split(app: RunningApp, run: Run, calls: int) -> dict[str, float]:
    """Median ms of a call, of its handler and of its engine work, from ``calls`` calls of ``run``."""
    totals, handlers, engines, pngs = [], [], [], []
    for _ in range(calls):
        start = time.time()
        run()
        end = time.time()
        handler = app.spans.between("handler", start, end)
        engine = app.spans.between("engine", start, end)
        png = app.spans.between("png", start, end)
        totals.append(end - start)
        handlers.append(sum(e - s for s, e in handler))
        engines.append(sum(e - s for s, e in engine))
        pngs.append(max((e for _, e in png), default=0) - min((s for s, _ in png), default=0))
    return {k: statistics.median(v) * 1000 for k, v in
            (("call", totals), ("handler", handlers), ("engine", engines), ("png", pngs))}


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=15)
    add_model_options(p)
    args = p.parse_args()
    harness.apply_threads(args)
    reps = min(args.reps, 5) if args.quick else args.reps
    folder = Path(tempfile.mkdtemp(prefix="gradcam-bench-app-"))
    # More photos than the app's cache holds, none sent twice: every request runs the model.
    photos = variants(harness.EXAMPLES / PHOTO, 3 * (reps + args.warmup) + 12, folder)
    rgb = load_image(photos[0])
    fresh = itertools.cycle(photos[2:])
    try:
        with running_app(args.model, args.weights) as app:
            title = app.explainer.backbone.title
            started = time.perf_counter()
            first = Client(app.url, verbose=False, download_files=False)
            explain_call(first, photos[0], title)
            first_s = time.perf_counter() - started
            outputs = explain_call(Client(app.url, verbose=False), photos[1], title)
            kept = folder / "floor"
            kept.mkdir()
            files = [str(shutil.copy(path, kept)) for path in (*outputs[:4], outputs[6])]  # the app prunes its own
            label = {c["label"]: c["confidence"] for c in outputs[4]["confidences"]}
            floor = floor_app([*files[:4], label, outputs[5], files[4]])
            floor.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
            try:
                clients = {
                    (name, download): Client(url, verbose=False, download_files=download)
                    for name, url in (("app", app.url), ("floor", floor.local_url)) for download in (False, True)
                }
                runs: dict[str, Run] = {"engine": lambda: app.explainer.explain(rgb)}
                for (name, download), client in clients.items():
                    runs[f"{name}{'+download' if download else ''}"] = caller(client, fresh, title)
                timings = harness.time_interleaved(runs, reps, args.warmup, wait_quiet_s=args.wait_quiet)
                parts = split(app, caller(clients["app", False], fresh, title), max(3, reps // 2))
            finally:
                floor.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    med = {k: t.median * 1000 for k, t in timings.items()}
    labels = {
        "engine": "engine (Explainer.explain, in process)",
        "app": "app via gradio_client, no download",
        "app+download": "app via gradio_client, downloads the 7 outputs",
        "floor": "Gradio floor (no-op endpoint, same shape), no download",
        "floor+download": "Gradio floor, downloads",
    }
    rows: list[list[object]] = [
        [label, timings[k].ms(), f"{timings[k].best * 1000:.0f}", f"{max(timings[k].samples) * 1000:.0f}"]
        for k, label in labels.items()
    ]
    report = reporting.Report("The web app over the engine (bench_app.py)")
    report.add(
        reporting.conditions(
            model=f"{title} ({'untrained, timing only' if app.explainer.backbone.untrained else 'pretrained'})",
            photo=f"demo/examples/{PHOTO} ({rgb.shape[1]}x{rgb.shape[0]}), a new image every request",
            layout="channels_last", rounds=f"{reps} interleaved after {args.warmup} warm-up",
        ),
        reporting.table(["step", "median ms", "best ms", "max ms"], rows),
        f"One call through the app, split by the server's timestamps (median of {max(3, reps // 2)} calls, ms): "
        f"call {parts['call']:.0f} = engine {parts['engine']:.0f} "
        f"+ our code around it {parts['handler'] - parts['engine']:.0f} "
        f"(of which PNG encoding, wall time, {parts['png']:.0f}) "
        f"+ Gradio and its client {parts['call'] - parts['handler']:.0f}.",
        f"App over the engine, end to end (no download): **{med['app'] - med['engine']:.0f} ms**; the no-op floor "
        f"alone is {med['floor']:.0f} ms, so our code adds {med['app'] - med['floor'] - med['engine']:.0f} ms. "
        f"Downloading the outputs adds {med['app+download'] - med['app']:.0f} ms "
        f"(floor: {med['floor+download'] - med['floor']:.0f} ms).",
        f"First request after start-up: {first_s:.2f} s (target for EfficientNet-Lite0: within "
        f"{FIRST_REQUEST_LIMIT_S:.0f} s, " + (reporting.verdict(first_s, FIRST_REQUEST_LIMIT_S) if args.model ==
        "efficientnet_lite0" else f"n/a for {title}") + "); it includes the client's connection.",
        "Contention: " + timings["engine"].rounds.summary() + ".",
    )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
