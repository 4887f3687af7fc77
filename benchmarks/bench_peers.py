"""This project's Grad-CAM against pytorch-grad-cam, captum and torchcam, like with like.

Everyone gets the same VGG19 (the same seeded, untrained weights: checked), the
same input, the same classes, the same thread count and, row by row, the same
memory layout: every method runs in NCHW and in channels-last (model and input),
and every ratio compares methods of one layout. The peers are used as their
documentation shows, on a plain torchvision VGG19 whose parameters require grad
(torchvision's default); this project runs on the VGG19 of
``load_backbone("vgg19", "random")`` (its exact fast path) and, for reference, on
the peers' model through its generic hook path. Every peer's maps are checked
against this project's (correlation, largest difference) so that equal work is
compared; then peak memory is measured in a fresh process per method.

Run: ``bash benchmarks/run.sh peers [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import peak_memory
import reporting
from harness import Run

from gradcam import Explainer, GradCAM, load_backbone

SIZE = (224, 224)
TOP = 5
LAYER = 35  # relu5_4 in torchvision's VGG19 ``features``
LAYOUTS = ("NCHW", "channels_last")
PEERS = ("pytorch-grad-cam", "captum", "torchcam")


class Setup:
    """Models and input, built on first use and per layout: a memory child builds only what it runs.

    Args:
        device: where everything runs.
        batch: images per call (copies of the one photo).
        x: the network input ``(1, 3, 224, 224)``; None to make it from the example photo.
    """

    def __init__(self, device: str = "cpu", batch: int = 1, x: Tensor | None = None) -> None:
        self.device = torch.device(device)
        self.batch = batch
        self.classes: list[int] = []
        self._x = x
        self._ours: dict[str, nn.Module] = {}
        self._plain: dict[str, nn.Module] = {}

    def ours(self, layout: str) -> nn.Module:
        """The project's VGG19 (exact fast path) as the app and the CLI run it: loaded, warmed up by an Explainer."""
        if layout not in self._ours:
            backbone = load_backbone("vgg19", "random", channels_last=layout == "channels_last", device=self.device)
            explainer = Explainer(backbone)  # pays the one-time costs (weight sums, autograd state) now
            if self._x is None:
                self._x = explainer.preprocess(harness.example_photo("astronaut.png", SIZE)).contiguous()
            self._ours[layout] = explainer.backbone.model
        return self._ours[layout]

    def plain(self, layout: str) -> nn.Module:
        """The peers' model: torchvision's VGG19, same seed, parameters requiring grad, in ``layout``."""
        if layout not in self._plain:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # the seed of load_backbone(..., "random")
                model = torchvision.models.vgg19().eval().to(self.device)
            self._plain[layout] = model.to(memory_format=torch.channels_last) if layout == "channels_last" else model
        return self._plain[layout]

    def input(self) -> Tensor:
        """The network input of one photo, ``(1, 3, 224, 224)`` NCHW, as Explainer.preprocess makes it."""
        if self._x is None:
            self.ours("channels_last")
        assert self._x is not None
        return self._x

    def x(self, layout: str) -> Tensor:
        """The input batch ``(N, 3, 224, 224)`` on the device, in ``layout``."""
        x = self.input().expand(self.batch, -1, -1, -1).to(self.device)
        return x.contiguous(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)


#: name -> (library, layout, classes, builder of the function to time)
Catalogue = dict[str, tuple[str, str, int, Callable[[Setup], Run]]]


def _ours(setup: Setup, layout: str, top: int, hook_path: bool) -> Run:
    model = setup.plain(layout) if hook_path else setup.ours(layout)
    cam = GradCAM(model, f"features.{LAYER}" if hook_path else "features_conv")
    x, classes = setup.x(layout), setup.classes[:top]
    return lambda: cam.compute(x, [classes] * len(x)).maps[0]  # the first image's K maps


def _pytorch_grad_cam(setup: Setup, layout: str, top: int) -> Run:
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, classes = setup.plain(layout), setup.x(layout).clone(), setup.classes[:top]

    def run() -> np.ndarray:
        # Its README's usage; one call per class.
        with PGCGradCAM(model=model, target_layers=[model.get_submodule(f"features.{LAYER}")]) as cam:
            maps = [cam(input_tensor=x, targets=[ClassifierOutputTarget(c)] * len(x))[:1] for c in classes]
            return np.concatenate(maps)

    return run


def _captum(setup: Setup, layout: str, top: int) -> Run:
    from captum.attr import LayerAttribution, LayerGradCam  # type: ignore[import-untyped]

    model, x, classes = setup.plain(layout), setup.x(layout).clone(), setup.classes[:top]
    layer_gc = LayerGradCam(model, model.get_submodule(f"features.{LAYER}"))

    def run() -> Tensor:
        # Its docstring's usage, plus the upsampling the others do; detached, as anyone keeping maps would.
        maps = []
        for c in classes:
            attr = layer_gc.attribute(x, target=c, relu_attributions=True).detach()  # (1, 1, 14, 14)
            maps.append(LayerAttribution.interpolate(attr, SIZE, interpolate_mode="bilinear")[:1])
        return torch.cat(maps)

    return run


def _torchcam(setup: Setup, layout: str, top: int) -> Run:
    from torchcam.methods import GradCAM as TorchCAMGradCAM

    model, x, classes = setup.plain(layout), setup.x(layout).clone(), setup.classes[:top]

    def run() -> Tensor:
        # Its README's usage; several classes reuse one forward pass (retain_graph).
        maps = []
        with TorchCAMGradCAM(model, target_layer=f"features.{LAYER}") as extractor:
            out = model(x)
            for k, c in enumerate(classes):
                (cam,) = extractor(c, out, retain_graph=k < len(classes) - 1)  # (N, 14, 14)
                maps.append(F.interpolate(cam[:1, None], size=SIZE, mode="bilinear", align_corners=False))
        return torch.cat(maps)

    return run


def _forward(setup: Setup, layout: str) -> Run:
    model, x = setup.ours(layout), setup.x(layout)

    def run() -> Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def catalogue(quick: bool) -> Catalogue:
    """name -> (library, layout, classes, builder); quick drops the slow peers' top-5 rows."""
    short = {"NCHW": "nchw", "channels_last": "cl"}
    out: Catalogue = {}
    for layout in LAYOUTS:
        s = short[layout]
        out[f"forward_{s}"] = ("plain forward", layout, 0, partial(_forward, layout=layout))
        for top in (1, TOP):
            ours = partial(_ours, layout=layout, top=top, hook_path=False)
            out[f"ours_top{top}_{s}"] = ("gradcam", layout, top, ours)
        hooked = partial(_ours, layout=layout, top=1, hook_path=True)
        out[f"ourshook_top1_{s}"] = ("gradcam, hook path", layout, 1, hooked)
        for peer, build in zip(PEERS, (_pytorch_grad_cam, _captum, _torchcam)):
            for top in (1, TOP):
                if quick and top > 1 and peer != "torchcam":
                    continue
                out[f"{peer}_top{top}_{s}"] = (peer, layout, top, partial(build, layout=layout, top=top))
    return out


def maps_of(run: Run) -> Tensor | np.ndarray:
    """Runs a Grad-CAM method once; its maps ``(K, h, w)`` for the agreement check."""
    return cast("Tensor | np.ndarray", run())


def peers_available() -> str:
    """Empty when the three peers import, else why not."""
    try:
        import captum.attr  # type: ignore[import-untyped]  # noqa: F401
        import pytorch_grad_cam  # noqa: F401
        import torchcam.methods  # noqa: F401
    except ImportError as exc:
        return f"{exc} (scripts/env.sh installs them from benchmarks/requirements.txt)"
    return ""


def prepare(setup: Setup) -> float:
    """Checks equal weights, sets the classes (ours top 5); returns the logits' largest NCHW/channels-last gap."""
    for mine, theirs in zip(setup.ours("NCHW").parameters(), setup.plain("NCHW").parameters(), strict=True):
        if not torch.equal(mine, theirs):
            raise RuntimeError("The project's and the peers' VGG19 weights differ.")
    ours, x = setup.ours("channels_last"), setup.x("channels_last")  # built outside inference mode: grads later
    with torch.inference_mode():
        logits = ours(x)
        gap = float((logits - setup.plain("NCHW")(setup.x("NCHW"))).abs().max())
    setup.classes = logits.topk(TOP, dim=1).indices[0].tolist()
    return gap

def tables(
    names: Catalogue,
    timings: dict[str, harness.Timing],
    agree: dict[str, harness.Agreement],
    memory: dict[str, tuple[float, float]],
) -> tuple[str, list[str]]:
    """The results table (memory as (peak, growth) MiB per method) and the speed-ups within each layout."""
    rows: list[list[object]] = []
    for name, (library, layout, top, _) in names.items():
        t = timings[name]
        forward = "forward_nchw" if layout == "NCHW" else "forward_cl"
        med, best = harness.ratios(timings, name, forward)
        q1, q3 = t.quartiles
        m = memory.get(name)
        rows.append([
            library, layout, top or "", t.ms(), f"{q1 * 1000:.0f}-{q3 * 1000:.0f}", f"{med:.2f}", f"{best:.2f}",
            f"{m[0]:.0f}" if m else "-", f"{m[1]:.0f}" if m else "-",
            str(agree[name]) if name in agree else "",
        ])
    lines = []
    for layout, s in (("NCHW", "nchw"), ("channels_last", "cl")):
        for top in (1, TOP):
            peers = [f"{peer}_top{top}_{s}" for peer in PEERS if f"{peer}_top{top}_{s}" in timings]
            if not peers:
                continue
            fastest = min(peers, key=lambda n: timings[n].median)
            med, best = harness.ratios(timings, fastest, f"ours_top{top}_{s}")
            slowest = f"pytorch-grad-cam_top{top}_{s}"
            extra = ""
            if slowest in timings:
                pmed, _ = harness.ratios(timings, slowest, f"ours_top{top}_{s}")
                extra = f"; pytorch-grad-cam / ours {pmed:.2f} x"
            lines.append(
                f"- {layout}, {'one class' if top == 1 else f'top {top}'}: fastest peer ({names[fastest][0]}) / ours = "
                f"**{med:.2f} x** (best times {best:.2f} x){extra}"
            )
    table = reporting.table(
        ["library", "layout", "classes", "median ms", "IQR ms", "x forward, same layout (medians)",
         "x forward (best)", "peak MiB", "growth MiB", "maps agree (corr / max diff)"],
        rows,
    )
    return table, lines


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=7)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--classes", help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    harness.apply_threads(args)
    why = peers_available()
    names = catalogue(args.quick)
    if why:
        names = {k: v for k, v in names.items() if v[0] not in PEERS}
        harness.log(f"peers not importable, timing this project alone: {why}")
    if args.memory_child:
        setup = Setup(x=torch.load(args.input))
        setup.classes = [int(c) for c in args.classes.split(",")]
        return 0 if peak_memory.child_or(args, {args.memory_child: lambda: names[args.memory_child][3](setup)}) else 1

    setup = Setup()
    gap = prepare(setup)
    runs = {name: build(setup) for name, (_, _, _, build) in names.items()}
    reference = {top: harness.common_maps(maps_of(runs[f"ours_top{top}_nchw"]), SIZE) for top in (1, TOP)}
    agree = {
        name: harness.agreement(reference[top], harness.common_maps(maps_of(runs[name]), SIZE))
        for name, (_, _, top, _) in names.items()
        if top
    }
    reps = min(args.reps, 3) if args.quick else args.reps
    harness.log(f"timing {len(runs)} methods, {reps} interleaved rounds after {args.warmup} warm-up ...")
    timings = harness.time_interleaved(runs, reps, args.warmup, wait_quiet_s=args.wait_quiet, clock=args.clock)
    memory: dict[str, peak_memory.Memory] = {}
    if not args.no_memory:
        harness.log("peak memory, one fresh process per method ...")
        # --quick: the one-class rows, the peers in NCHW only.
        wanted = [
            n for n, v in names.items() if not args.quick or (v[2] <= 1 and (v[1] == "NCHW" or v[0] not in PEERS))
        ]
        with tempfile.TemporaryDirectory() as folder:
            torch.save(setup.input(), Path(folder) / "x.pt")  # the children need no model to make it
            extra = ["--classes", ",".join(map(str, setup.classes)), "--input", str(Path(folder) / "x.pt")]
            memory = peak_memory.measure_memory(Path(__file__), wanted, extra + (["--quick"] if args.quick else []))

    report = reporting.Report("Against the peers, like with like (bench_peers.py)")
    table, lines = tables(names, timings, agree, {n: (m.peak_mib, m.growth_mib) for n, m in memory.items()})
    report.add(
        reporting.conditions(
            model="torchvision VGG19, seeded untrained weights (seed 0), identical for all (checked)",
            input="demo/examples/astronaut.png resized to 224x224, preprocessed as Explainer.preprocess",
            classes=f"this project's top {TOP} {setup.classes}, given to every method",
            logits_gap_between_layouts=f"{gap:.1e}",
            rounds=f"{reps} interleaved after {args.warmup} warm-up", clock=args.clock,
        ),
        table,
        "Speed-ups over the fastest peer, each within one layout:\n" + "\n".join(lines),
        "Contention: " + timings["forward_nchw"].rounds.summary() + ". Medians marked * include contended rounds. "
        "Peak memory: each method built and called twice in a fresh process (VmHWM); growth is over what "
        "the process held after building.",
    )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
