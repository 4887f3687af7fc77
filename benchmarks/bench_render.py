"""What drawing and saving cost next to the model, for a 1024 x 768 photo, and the CLI's throughput.

Times interleaved, on one backbone: preprocessing, the model (``GradCAM.compute``
with the map at photo size), ``cam_to_boxes``, the pictures
(``views.panels`` and each picture alone), ``save_explanation`` (four PNGs,
the raw map, the manifest) and ``Explainer.explain`` end to end. Then the CLI's
work over a folder of 8 photos, in process and as ``python -m gradcam``.
Target (issue 4): rendering (panels + boxes) under 10 % of the model time.

Run: ``bash benchmarks/run.sh render [--quick]``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import reporting
from harness import Run

from gradcam import Explainer, cam_to_boxes, load_backbone, save_explanation, views

PHOTO_SIZE = (768, 1024)  # (height, width)
MAX_RENDER_OVER_MODEL = 0.10
STEPS = {
    "preprocess": "preprocess (resize to the network input, normalise)",
    "model": "model: GradCAM.compute, map at photo size",
    "upsample": "... of which bilinear upsampling of the coarse map to 1024x768",
    "boxes": "cam_to_boxes",
    "panels": "views.panels() (heatmap, overlay, boxes)",
    "heatmap": "... views.heatmap() alone",
    "overlay": "... views.overlay() alone",
    "boxed": "... views.boxed() alone",
    "save": "save_explanation (4 PNGs, cam.npy, manifest)",
    "explain": "Explainer.explain end to end",
}


def steps(explainer: Explainer, out: Path) -> dict[str, Run]:
    """The timed steps for one 1024 x 768 photo."""
    image = harness.example_photo("chelsea.png", PHOTO_SIZE)
    x = explainer.preprocess(image)
    explanation = explainer.explain(image)
    coarse = torch.rand(1, 1, x.shape[-2] // 16, x.shape[-1] // 16)  # a map at relu5_4's resolution
    return {
        "preprocess": lambda: explainer.preprocess(image),
        "model": lambda: explainer.cam.compute(x, size=PHOTO_SIZE),
        "upsample": lambda: F.interpolate(coarse, size=PHOTO_SIZE, mode="bilinear", align_corners=False),
        "boxes": lambda: cam_to_boxes(explanation.cam),
        "panels": lambda: views.panels(explanation),
        "heatmap": lambda: views.heatmap(explanation),
        "overlay": lambda: views.overlay(explanation),
        "boxed": lambda: views.boxed(explanation),
        "save": lambda: save_explanation(explanation, out / "photo"),
        "explain": lambda: explainer.explain(image),
    }


def cli_throughput(explainer: Explainer, spec: str, weights: str | None, passes: int) -> list[str]:
    """Images per second of explain + save over 8 photos, in process and as a command."""
    workdir = Path(tempfile.mkdtemp(prefix="gradcam-bench-cli-"))
    try:
        folder = workdir / "images"
        folder.mkdir()
        for path in harness.example_paths()[:4]:
            shutil.copy(path, folder / path.name)
        for i, path in enumerate(harness.example_paths()[:4]):  # the same photos at 1024 x 768
            rgb = harness.example_photo(path.name, PHOTO_SIZE)
            cv2.imwrite(str(folder / f"large-{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        images = sorted(folder.iterdir())
        save_explanation(explainer.explain(images[0]), workdir / "warm", source=images[0])
        seconds = []
        for n in range(passes):
            started = time.perf_counter()
            for path in images:
                save_explanation(explainer.explain(path), workdir / f"pass{n}" / path.stem, source=path)
            seconds.append(time.perf_counter() - started)
        per_pass = statistics.median(seconds)
        command = [sys.executable, "-m", "gradcam", str(folder), "--model", spec, "--out", str(workdir / "cli")]
        command += ["--weights", weights] if weights else []
        started = time.perf_counter()
        done = subprocess.run(command, cwd=harness.ROOT, capture_output=True, text=True, check=False)
        command_s = time.perf_counter() - started
        written = len(list((workdir / "cli").glob("*/manifest.json"))) if (workdir / "cli").is_dir() else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = done.returncode == 0 and written == len(images)
    failed = "" if ok else f" (THE COMMAND FAILED: {done.stderr.strip()[-200:]})"
    return [
        f"CLI over a folder of {len(images)} photos (4 examples and the same at 1024x768): "
        f"{len(images) / per_pass:.2f} images/s in process (explain + save_explanation, "
        f"{per_pass / len(images) * 1000:.0f} ms per image, model loaded once, median of {passes} passes); "
        f"`python -m gradcam` as a command: {command_s:.1f} s in all, {written / command_s:.2f} images/s "
        f"including start-up and model build{failed}."
    ]


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=9)
    p.add_argument("--model", default="vgg19", help="backbone spec (default: %(default)s)")
    p.add_argument("--weights", default="random", help="as for load_backbone; 'pretrained' for its default weights")
    p.add_argument("--no-cli", action="store_true", help="skip the CLI throughput")
    args = p.parse_args()
    harness.apply_threads(args)
    weights = None if args.weights == "pretrained" else args.weights
    reps = min(args.reps, 5) if args.quick else args.reps
    explainer = Explainer(load_backbone(args.model, weights))
    out = Path(tempfile.mkdtemp(prefix="gradcam-bench-render-"))
    try:
        harness.log(f"rendering: {reps} interleaved rounds ...")
        timings = harness.time_interleaved(
            steps(explainer, out), reps, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    med = {k: t.median for k, t in timings.items()}
    best = {k: t.best for k, t in timings.items()}
    share = (med["panels"] + med["boxes"]) / med["model"]
    share_best = (best["panels"] + best["boxes"]) / best["model"]
    rows: list[list[object]] = [[label, timings[k].ms(), f"{best[k] * 1000:.1f}"] for k, label in STEPS.items()]
    rows.append(["rendering (panels + cam_to_boxes) / model", f"{share:.1%}", f"{share_best:.1%}"])
    contended = any(timings[k].contended for k in ("model", "panels", "boxes"))
    report = reporting.Report("Rendering against the model (bench_render.py)")
    trained = "untrained, timing only" if explainer.backbone.untrained else "pretrained"
    width = explainer.preprocess(harness.example_photo("chelsea.png", PHOTO_SIZE)).shape[-1]
    report.add(
        reporting.conditions(
            model=f"{explainer.backbone.title} ({trained})",
            photo="demo/examples/chelsea.png resized to 1024x768",
            network_input=f"{width}x224, channels_last",
            rounds=f"{reps} interleaved after {args.warmup} warm-up", clock=args.clock,
        ),
        reporting.table(["step", "median ms", "best ms"], rows),
        f"Target: rendering < {MAX_RENDER_OVER_MODEL:.0%} of the model time: {share:.1%} "
        f"(best times {share_best:.1%}), "
        + reporting.verdict(share, MAX_RENDER_OVER_MODEL, contended=contended)
        + ". Under contention multi-threaded PyTorch slows down far more than single-threaded drawing, "
        "so a contended share looks better than it is.",
        "Contention: " + timings["model"].rounds.summary() + ".",
    )
    if not args.no_cli:
        harness.log("CLI throughput ...")
        report.add(*cli_throughput(explainer, args.model, weights, passes=1 if args.quick else 2))
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
