"""The CAM family and the trust check against the limit: each method next to a plain forward pass.

For VGG19 (seeded untrained weights: timing only) and EfficientNet-Lite0 (its real
embedded weights), on one example photo preprocessed by
:meth:`gradcam.Explainer.preprocess`, it times interleaved:

* a plain forward pass in inference mode: the limit;
* :meth:`gradcam.GradCAM.compute` of the top class with each cheap method (Grad-CAM
  takes VGG19's exact path; the other gradient methods the generic hook's gradient
  maps; Eigen-CAM no gradient at all);

then, once each (they are long):

* Score-CAM: its masked passes counted and its time in forward passes;
* the trust check (``Explainer.explain(image, trust=True)``): its forward passes as
  counted by the check, and its time in forward passes;
* ``evaluate --trust``: the local engine with the trust check on ``--images`` photos
  against plain batched inference of the same photos, its work counted in forward
  passes (every image a model's stem convolution takes, the randomised copies' too).

Targets (issue 22): each gradient method <= 1.15 x a plain forward pass, Eigen-CAM
<= 1.10 x; evaluation throughput >= 0.85 x plain batched inference, counted in
forward passes.

Run: ``bash benchmarks/run.sh methods [--quick] [--wait-quiet 20]``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import reporting
from bench_evaluate import make_images, time_forward

from gradcam import Explainer, load_backbone
from gradcam.evaluate.annotations import read_annotations
from gradcam.evaluate.local import BatchEvaluator, ResultsWriter, plan_batches, run_local
from gradcam.methods import CHEAP, METHODS

BACKBONES: dict[str, str | None] = {"vgg19": "random", "efficientnet_lite0": None}
PHOTO = "astronaut.png"
#: Each method's time over a plain forward pass, at most.
LIMITS = {name: 1.10 if METHODS[name].needs == "activations" else 1.15 for name in CHEAP}
EVALUATE_TARGET = 0.85


@contextmanager
def counting_images() -> Iterator[list[int]]:
    """Counts the images every model's stem takes (any convolution of 3 input channels), copies included."""
    seen = [0]

    def count(module: nn.Module, inputs: tuple[object, ...]) -> None:
        x = inputs[0] if inputs else None
        if isinstance(module, nn.Conv2d) and module.in_channels == 3 and isinstance(x, torch.Tensor):
            seen[0] += len(x)

    handle = nn.modules.module.register_module_forward_pre_hook(count)
    try:
        yield seen
    finally:
        handle.remove()


def methods_table(spec: str, args: argparse.Namespace, report: reporting.Report) -> tuple[Explainer, float]:
    """Times each cheap method against the forward pass; returns the explainer and the forward's median."""
    explainer = Explainer(load_backbone(spec, BACKBONES[spec]))
    x = explainer.preprocess(harness.example_photo(PHOTO))
    model = explainer.backbone.model

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    runs = {"forward": forward}
    for name in CHEAP:
        engine = explainer.cam.with_method(name)
        runs[name] = functools.partial(engine.compute, x)
    timings = harness.time_interleaved(runs, args.reps, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock)
    base = timings["forward"]
    rows = [["plain forward, inference mode", base.ms(), "1.00", ""]]
    for name in CHEAP:
        ratio, _ = harness.ratios(timings, name, "forward")
        limit = LIMITS[name]
        rows.append(
            [
                METHODS[name].title,
                timings[name].ms(),
                f"{ratio:.2f}",
                f"<= {limit:.2f}: {reporting.verdict(ratio, limit, contended=timings[name].contended)}",
            ]
        )
    layout = harness.layout_of(x)
    report.add(
        f"**{explainer.backbone.title}** ({'real weights' if BACKBONES[spec] is None else 'seeded untrained'}), "
        f"input {tuple(x.shape)} {layout}, layer `{explainer.cam.target_layer}`; {base.rounds.summary()}",
        reporting.table(["method", "median ms", "x forward", "target"], rows),
    )
    return explainer, base.median


def once(explainer: Explainer, forward_s: float) -> list[list[str]]:
    """Score-CAM and the trust check of one photo: their passes and their time in forward passes."""
    image = harness.example_photo(PHOTO)
    x = explainer.preprocess(image)
    rows = []
    score = explainer.cam.with_method("scorecam")
    with counting_images() as seen:
        started = time.perf_counter()
        score.compute(x)
        seconds = time.perf_counter() - started
    rows.append(["Score-CAM, top class", f"{seen[0]:,}", f"{seconds:.1f}", f"{seconds / forward_s:.0f}"])
    explainer.explain(image, trust=True)  # first-call costs (imputation buffers, copies) out of the timing
    with counting_images() as seen:
        started = time.perf_counter()
        check = explainer.explain(image, trust=True).trust
        seconds = time.perf_counter() - started
    assert check is not None
    rows.append(
        [
            f"trust check (counted by the check: {check.forward_passes})",
            f"{seen[0]:,}",
            f"{seconds:.1f}",
            f"{seconds / forward_s:.0f}",
        ]
    )
    return rows


def evaluate_throughput(args: argparse.Namespace, report: reporting.Report) -> None:
    """``evaluate --trust`` against plain batched inference, both counted in forward passes."""
    backbone = load_backbone("efficientnet_lite0", None)
    explainer = Explainer(backbone)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "photos"
        annotations = make_images(folder, args.images, (224, 224))
        samples = read_annotations(annotations, folder, backbone.categories).samples
        batch = args.batch_size
        time_forward(backbone, folder, annotations, batch)  # warm-up
        harness.wait_for_quiet(args.wait_quiet)
        plain, _ = time_forward(backbone, folder, annotations, batch)
        found = {}
        for trust in (False, True):
            evaluator = BatchEvaluator(explainer, 0.15, ("gradcam",), trust=trust)
            harness.wait_for_quiet(args.wait_quiet)
            with counting_images() as seen, ResultsWriter(Path(work) / f"results-{trust}.csv") as writer:
                started = time.perf_counter()
                run_local(evaluator, plan_batches(samples, batch), writer, progress=False)
                found[trust] = (time.perf_counter() - started, seen[0])
    n = args.images
    rows = [
        [
            "plain batched inference (decode, preprocess, forward)",
            f"{n / plain:.1f}",
            f"{n:,}",
            f"{n / plain:.1f}",
            "1.00",
        ]
    ]
    for trust, (seconds, passes) in found.items():
        ratio = (passes / seconds) / (n / plain)
        label = "evaluate --trust (Grad-CAM, the trust check)" if trust else "evaluate (Grad-CAM)"
        rows.append([label, f"{n / seconds:.2f}", f"{passes:,}", f"{passes / seconds:.1f}", f"{ratio:.2f}"])
    ratio = float(rows[-1][-1])
    report.add(
        f"**evaluate --trust**: EfficientNet-Lite0 (real weights), {n} noisy 224 x 224 JPEGs, batch {batch}; "
        f"the trust check without Guided Backpropagation's control, three randomised copies shared by the run. "
        f"Target: passes/s >= {EVALUATE_TARGET} x plain inference's images/s: "
        f"{reporting.verdict(ratio, EVALUATE_TARGET, at_most=False)}.",
        reporting.table(["run", "images/s", "forward passes", "passes/s", "x plain (in passes)"], rows),
    )


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=7)
    p.add_argument("--images", type=int, default=32, help="photos for evaluate --trust (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="evaluate's batch (default: %(default)s)")
    p.add_argument("--models", default=",".join(BACKBONES), help="comma-separated specs (default: %(default)s)")
    p.add_argument("--skip-once", action="store_true", help="skip Score-CAM and the trust check of one photo")
    p.add_argument("--skip-evaluate", action="store_true", help="skip evaluate --trust")
    args = p.parse_args()
    harness.apply_threads(args)
    if args.quick:
        args.reps, args.images = min(args.reps, 5), min(args.images, 16)
    report = reporting.Report("The CAM family and the trust check")
    report.add(reporting.conditions(reps=args.reps, clock=args.clock, GPU="none lent: CPU only"))
    once_rows = []
    for spec in args.models.split(","):
        harness.log(f"{spec}: methods")
        explainer, forward_s = methods_table(spec, args, report)
        if not args.skip_once:
            harness.log(f"{spec}: Score-CAM and the trust check")
            once_rows += [[explainer.backbone.title, *row] for row in once(explainer, forward_s)]
    if once_rows:
        report.add(
            "**Score-CAM and the trust check of one photo** (once each; the forward passes are the images the "
            "model's stem took, batched; time in forward passes = seconds / the plain forward's median)",
            reporting.table(["model", "run", "forward passes", "seconds s", "x forward"], once_rows),
        )
    if not args.skip_evaluate:
        harness.log("evaluate --trust")
        evaluate_throughput(args, report)
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
