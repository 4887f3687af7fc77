"""The speed a person feels: from choosing a photo to four painted panels, in Chromium, against the engine's time.

One run, one model (EfficientNet-Lite0 with its embedded weights), photos of about one megapixel,
each a little different so that every upload runs the model (the app remembers explanations by
their bytes). Interleaved round by round:
  engine    Explainer.explain on the decoded photo (the model and Grad-CAM);
  service   DemoService.explain: decoding, the engine, drawing, the four PNGs and the zip;
  page      a file chosen in the page's file dialog -> all four panels painted (Playwright, Chromium);
  slider    a new opacity typed into the slider's field + Enter -> the overlay painted again (no model run).

Run: source scripts/env.sh; python benchmarks/bench_page.py [--reps 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from demo.service import load_service  # noqa: E402
from gradcam import load_image  # noqa: E402
from tests.app_server import gradio_workdir, running_app  # noqa: E402

PAINTED = """
(before) => {
    const images = ['original', 'heatmap', 'overlay', 'boxes'].map(k => document.querySelector(`#panel-${k} img`));
    return images.every(i => i && i.complete && i.naturalWidth > 0)
        && document.querySelector('#panel-overlay img').src !== before;
}
"""


def photos(count: int, folder: Path) -> list[Path]:
    """``count`` JPEGs of about one megapixel (1155 x 866), each with one different pixel."""
    base = np.asarray(Image.open(ROOT / "demo" / "examples" / "cat-and-coffee.jpg").convert("RGB").resize((1155, 866)))
    paths = []
    for i in range(count):
        pixels = base.copy()
        pixels[0, 0] = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
        path = folder / f"photo-{i}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def overlay_src(page) -> str:
    return page.evaluate("() => { const i = document.querySelector('#panel-overlay img'); return i ? i.src : ''; }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"engine": [], "service": [], "page": [], "slider": []}
    service = load_service(None, ("efficientnet_lite0",), workdir=gradio_workdir())
    explainer = service.models.get(None)
    with tempfile.TemporaryDirectory() as tmp, running_app(service) as app, sync_playwright() as playwright:
        files = photos(3 * (args.reps + 1), Path(tmp))
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(app.url)
        page.wait_for_selector("#examples img")
        page.get_by_text("Settings: model").click()
        for round_ in range(args.reps + 1):  # the first round warms up
            engine_photo, service_photo, page_photo = files[3 * round_ : 3 * round_ + 3]
            rgb = load_image(engine_photo.read_bytes(), max_side=1280)
            start = time.perf_counter()
            explainer.explain(rgb, threshold=0.15, counterfactual=True)
            engine = time.perf_counter() - start

            start = time.perf_counter()
            service.explain(str(service_photo), name="photo.jpg")
            served = time.perf_counter() - start

            before = overlay_src(page)
            start = time.perf_counter()
            page.set_input_files("#input-image input[type=file]", str(page_photo))
            page.wait_for_function(PAINTED, arg=before, timeout=60_000, polling=5)
            shown = time.perf_counter() - start

            before = overlay_src(page)
            field = page.locator("#opacity input[type=number]")
            field.fill(f"{0.3 + 0.05 * (round_ % 8):.2f}")
            start = time.perf_counter()
            field.press("Enter")
            page.wait_for_function(PAINTED, arg=before, timeout=60_000, polling=5)
            slider = time.perf_counter() - start
            if round_:
                for name, value in zip(samples, (engine, served, shown, slider)):
                    samples[name].append(value * 1000)
        browser.close()
    service.close()
    print(f"median (min-max) of {args.reps} rounds, ms; 1155 x 866 JPEG, EfficientNet-Lite0, CPU")
    for name, values in samples.items():
        print(f"  {name:8s} {statistics.median(values):7.0f}  ({min(values):.0f}-{max(values):.0f})")
    engine = statistics.median(samples["engine"])
    print(f"  page - engine: {statistics.median(samples['page']) - engine:.0f} ms; "
          f"service - engine: {statistics.median(samples['service']) - engine:.0f} ms")


if __name__ == "__main__":
    main()
