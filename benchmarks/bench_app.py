"""What the web app adds over the engine, per request, measured in one run.

Times, on the same image and the same untrained VGG19:
  engine    Explainer.explain on the decoded image (the model and Grad-CAM);
  service   DemoService.explain: decoding, the engine, rendering, the PNGs and the zip;
  app       one `explain` call through gradio_client against the app on a local port,
            without and with the client downloading the seven outputs;
  floor     the same call against a Gradio endpoint of the same shape that does nothing,
            which is what Gradio and its client cost before any of our code runs.
The service remembers nothing between calls here (cache_size=0): every call runs the model.

Run: bash benchmarks/run.sh app   (or: source scripts/env.sh; python benchmarks/bench_app.py)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from demo.launch import create_app, launch_options  # noqa: E402
from demo.service import DemoService, load_service  # noqa: E402
from gradcam import load_image  # noqa: E402


def timed(steps: dict[str, Callable[[], object]], reps: int) -> dict[str, tuple[float, float, float]]:
    """Median, min and max in milliseconds of each step after a warm-up, the steps interleaved round by round."""
    for fn in steps.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: (statistics.median(v), min(v), max(v)) for name, v in samples.items()}


def floor_app(outputs: list[str]) -> gr.Blocks:
    """A Gradio endpoint with the app's inputs and outputs that returns precomputed files at once."""
    with gr.Blocks() as demo:
        inputs = [gr.Image(type="filepath"), gr.Dropdown(["Top prediction"], allow_custom_value=True), gr.Radio(["VGG19"]),
                  gr.Slider(0, 1), gr.Slider(0, 1), gr.Dropdown(["jet"])]
        results = [gr.Image(type="filepath", format="png") for _ in range(4)] + [gr.Label(), gr.Markdown(), gr.File()]
        gr.Button().click(lambda *args: outputs, inputs, results, api_name="explain")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--image", default=str(ROOT / "demo" / "examples" / "chelsea.png"))
    args = parser.parse_args()

    workdir = Path(get_upload_folder()) / "gradcam-bench"
    base = load_service("random", models=("vgg19",), workdir=workdir)
    service = DemoService(base.explainers, workdir=workdir, cache_size=0)
    explainer = service.explainers["VGG19"]
    rgb = load_image(args.image)
    image = args.image

    rendered = service.explain(image)
    # The floor returns copies: the service prunes its own folders as requests come in.
    kept = Path(get_upload_folder()) / "gradcam-bench-floor"
    kept.mkdir(parents=True, exist_ok=True)
    files = [Path(shutil.copy(p, kept / p.name)) for p in (*rendered.panels.values(), rendered.archive)]
    outputs = [*(str(p) for p in files[:4]), rendered.label, rendered.sentence, str(files[4])]

    with tempfile.TemporaryDirectory() as cache:
        import os

        os.environ["GRADIO_EXAMPLES_CACHE"] = cache
        app = create_app(service)
        app.launch(server_name="127.0.0.1", server_port=0 or None, prevent_thread_lock=True, quiet=True, **launch_options())
        floor = floor_app(outputs)
        floor.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, show_error=True)
        try:
            clients = {
                (name, download): Client(url, verbose=False, download_files=download)
                for name, url in (("app", app.local_url), ("floor", floor.local_url))
                for download in (False, True)
            }

            def call(client: Client) -> Callable[[], object]:
                arguments = (handle_file(image), "Top prediction", "VGG19", 0.15, 0.5, "jet")
                return lambda: client.predict(*arguments, api_name="/explain")

            steps = {"engine": lambda: explainer.explain(rgb), "service": lambda: service.explain(image)}
            steps.update({key: call(client) for key, client in clients.items()})
            results = timed(steps, args.reps)
        finally:
            app.close()
            floor.close()
    service.close()
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(kept, ignore_errors=True)

    print(f"image {Path(image).name} {rgb.shape[1]}x{rgb.shape[0]}, torch threads {torch.get_num_threads()}, {args.reps} reps, median [min-max] ms")
    rows = [
        ("engine (Explainer.explain)", results["engine"]),
        ("service (engine + rendering + files)", results["service"]),
        ("app via gradio_client, no download", results["app", False]),
        ("app via gradio_client, downloads", results["app", True]),
        ("Gradio floor (no-op, same shape), no download", results["floor", False]),
        ("Gradio floor (no-op, same shape), downloads", results["floor", True]),
    ]
    print("| step | median ms | min | max |\n|---|---:|---:|---:|")
    for name, (median, low, high) in rows:
        print(f"| {name} | {median:.0f} | {low:.0f} | {high:.0f} |")
    engine, served = results["engine"], results["service"]
    ours = results["app", False][0] - results["floor", False][0] - engine[0]
    print(f"\nOur code's cost over the engine (service - engine): {served[0] - engine[0]:.0f} ms")
    print(f"App over the engine, Gradio floor subtracted (no download): {ours:.0f} ms")
    print(f"App over the engine, end to end with Gradio (no download): {results['app', False][0] - engine[0]:.0f} ms")


if __name__ == "__main__":
    main()
