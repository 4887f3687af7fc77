"""The engine against the limit: Grad-CAM next to a plain forward pass of the same model.

For each backbone, in the layout :func:`gradcam.load_backbone` gives it
(channels-last) and on one example photo preprocessed by
:meth:`gradcam.Explainer.preprocess`, it times interleaved:

* a plain forward pass in inference mode: the limit;
* :meth:`gradcam.GradCAM.compute` for the top class and for the top 5;
* :meth:`gradcam.Explainer.explain` end to end (uint8 photo in, boxes out);
* with ``--compile``, VGG19 with its trunk compiled (``Explainer(..., compile=True)``);

then, each in a fresh process, the peak memory of the forward pass and of the
two Grad-CAM calls. Targets (issue 9): EfficientNet-Lite0, one explanation
<= 1.10 x its plain forward; VGG19's default path <= 1.05 x.

Run: ``bash benchmarks/run.sh engine [--quick]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import peak_memory
import reporting
from harness import Run

from gradcam import Explainer, GradCAMError, load_backbone

#: (spec, weights): real embedded weights for EfficientNet-Lite0, seeded untrained ones elsewhere (timing only).
BACKBONES: dict[str, str | None] = {
    "vgg19": "random",
    "efficientnet_lite0": None,
    "resnet50": "random",
    "densenet121": "random",
}
QUICK = ("vgg19", "efficientnet_lite0")
#: Rounds per backbone, as a multiple of --reps: the small model's rounds are short, and noisier.
ROUNDS = {"efficientnet_lite0": 4}
#: Grad-CAM of one class over a plain forward pass, at most (issue 9).
TARGETS = {"efficientnet_lite0": 1.10, "vgg19": 1.05}
PHOTO = "astronaut.png"
TOP = 5


@dataclass(frozen=True)
class Case:
    """One backbone, ready to time: its explainer, the photo and the network input."""

    spec: str
    explainer: Explainer

    @property
    def title(self) -> str:
        return self.explainer.backbone.title


def load_case(spec: str) -> Case:
    """The backbone as the app and the CLI load it (channels-last, warmed up by the Explainer)."""
    return Case(spec, Explainer(load_backbone(spec, BACKBONES[spec])))


def methods(case: Case) -> dict[str, Run]:
    """The compared functions of one backbone."""
    explainer = case.explainer
    image = harness.example_photo(PHOTO)
    x = explainer.preprocess(image)
    model, cam = explainer.backbone.model, explainer.cam

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    return {
        "forward": forward,
        "top1": lambda: cam.compute(x),
        "top5": lambda: cam.compute(x, top=TOP),
        "explain": lambda: explainer.explain(image),
    }


def compiled_methods(spec: str) -> dict[str, Run]:
    """VGG19 with its trunk compiled by ``Explainer(..., compile=True)`` (a separate copy of the model)."""
    explainer = Explainer(load_backbone(spec, BACKBONES[spec]), compile=True)
    x = explainer.preprocess(harness.example_photo(PHOTO))
    model, cam = explainer.backbone.model, explainer.cam

    def forward() -> object:
        with torch.no_grad():  # the grad mode the exact path runs the trunk in: the same compiled graph
            return model(x)

    return {"forward_compiled": forward, "top1_compiled": lambda: cam.compute(x)}


LABELS = {
    "forward": "plain forward, inference mode",
    "top1": "GradCAM.compute, top class",
    "top5": f"GradCAM.compute, top {TOP}",
    "explain": "Explainer.explain (uint8 photo in, boxes)",
    "forward_compiled": "forward, trunk compiled (torch.compile), no_grad",
    "top1_compiled": "GradCAM.compute, top class, trunk compiled",
}


def factories(specs: tuple[str, ...]) -> dict[str, Callable[[], Run]]:
    """For the memory children: ``spec:method`` -> builds that one function."""
    return {f"{spec}:{name}": partial(_one, spec, name) for spec in specs for name in ("forward", "top1", "top5")}


def _one(spec: str, name: str) -> Run:
    return methods(load_case(spec))[name]


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--models", default=None, help="comma-separated specs (default: all; --quick: vgg19,efficientnet_lite0)"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--compile", action="store_true", help="also time VGG19 with its trunk compiled by torch.compile")
    args = p.parse_args()
    harness.apply_threads(args)
    specs = tuple(args.models.split(",")) if args.models else (QUICK if args.quick else tuple(BACKBONES))
    if peak_memory.child_or(args, factories(specs)):
        return 0
    reps = min(args.reps, 5) if args.quick else args.reps

    report = reporting.Report("Grad-CAM against a plain forward pass (bench_engine.py)")
    rows: list[list[object]] = []
    targets: list[list[object]] = []
    contention: list[str] = []
    image = harness.example_photo(PHOTO)
    loaded: list[str] = []
    for spec in specs:
        try:
            case = load_case(spec)
        except (GradCAMError, KeyError) as exc:
            harness.log(f"{spec}: not available ({exc})")
            rows.append([spec, "not available: " + str(exc).splitlines()[0][:120], "", "", "", "", ""])
            continue
        loaded.append(spec)
        x = case.explainer.preprocess(image)
        rounds = reps * ROUNDS.get(spec, 1)
        harness.log(f"{case.title}: {rounds} interleaved rounds after {args.warmup} warm-up ...")
        runs = methods(case)
        if args.compile and spec == "vgg19":
            harness.log("compiling a second VGG19's trunk (a minute or more) ...")
            runs.update(compiled_methods(spec))
        timings = harness.time_interleaved(runs, rounds, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock)
        contention.append(f"{case.title}: {timings['forward'].rounds.summary()}")
        weights = "untrained (seeded), timing only" if case.explainer.backbone.untrained else "pretrained"
        for name, label in LABELS.items():
            if name not in timings:
                continue
            t = timings[name]
            q1, q3 = t.quartiles
            med, best = harness.ratios(timings, name, "forward")
            rows.append([
                case.title if name == "forward" else "", label, t.ms(), f"{q1 * 1000:.1f}-{q3 * 1000:.1f}",
                f"{med:.2f}", f"{best:.2f}", f"{weights}, input {x.shape[-1]}x{x.shape[-2]} {harness.layout_of(x)}"
                if name == "forward" else "",
            ])
        if spec in TARGETS:
            med, best = harness.ratios(timings, "top1", "forward")
            contended = timings["top1"].contended or timings["forward"].contended
            targets.append([
                f"{case.title}: one class <= {TARGETS[spec]:.2f} x plain forward",
                f"{med:.2f} x (best times {best:.2f} x)",
                reporting.verdict(med, TARGETS[spec], contended=contended),
            ])
        del case, timings

    rounds = ", ".join(f"{k}: {v} x" for k, v in ROUNDS.items())
    report.add(
        reporting.conditions(
            photo=f"demo/examples/{PHOTO} (512x512)",
            layout="channels_last (as load_backbone gives it), model and input",
            rounds=f"{reps} interleaved after {args.warmup} warm-up ({rounds})",
            clock=args.clock,
        ),
        reporting.table(
            ["model", "method", "median ms", "IQR ms", "x forward (medians)", "x forward (best)", "conditions"], rows
        ),
        "Contention: " + "; ".join(contention) + ". Medians marked * include contended rounds.",
    )
    if targets:
        report.add(reporting.table(["target (issue 9)", "measured", ""], targets))
    if not args.no_memory and loaded:
        harness.log("peak memory, one fresh process per function ...")
        names = [f"{spec}:{name}" for spec in loaded for name in ("forward", "top1", "top5")]
        extra = ["--models", ",".join(loaded)]
        memory = peak_memory.measure_memory(Path(__file__), names, extra)
        mem_rows = []
        for name, m in memory.items():
            spec, method = name.split(":")
            forward = memory.get(f"{spec}:forward")
            ratio = f"{m.growth_mib / forward.growth_mib:.2f}" if forward and forward.growth_mib > 0 else "-"
            sizes = [f"{m.built_mib:.0f}", f"{m.peak_mib:.0f}", f"{m.growth_mib:.0f}"]
            mem_rows.append([spec, LABELS[method], *sizes, ratio])
        report.add(
            "Peak memory, each function built and called twice in its own process (VmHWM):",
            reporting.table(
                ["model", "method", "after building MiB", "peak MiB", "growth MiB", "growth / forward's x"], mem_rows
            ),
        )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
