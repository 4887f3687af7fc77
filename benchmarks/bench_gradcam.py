"""Speed and memory of this project's Grad-CAM against a plain forward pass and three peers.

Issue 4 ("Performance"). On one VGG19 (the same seeded, untrained weights for
everyone), one 224 x 224 input and one thread count, it times:

* a plain forward pass in inference mode, NCHW and channels-last: the limit;
* this project's Grad-CAM (:class:`gradcam.GradCAM`, top class and top 5) and
  :meth:`gradcam.Explainer.explain` end to end;
* pytorch-grad-cam, captum and torchcam, each used as its documentation shows,
  on a plain torchvision VGG19 (NCHW, parameters requiring grad);

then the peak memory of each in a fresh process, whether every peer's maps agree
with this project's (so that equal work is compared), the rendering step of a
1024 x 768 photo, the CLI's throughput and ``torch.compile``. It prints ratios,
a markdown table and whether each target of the issue is met.

Run it through ``benchmarks/run.sh`` (which puts the peers on the path), or with
the peers already importable: ``python benchmarks/bench_gradcam.py [--quick]``.
On a shared machine add ``--wait-quiet 60``: other processes' use of the CPUs is
measured in every round, and medians are taken over the quiet rounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradcam import Explainer, GradCAM, load_backbone, save_explanation  # noqa: E402
from gradcam.boxes import cam_to_boxes  # noqa: E402
from gradcam.images import load_image  # noqa: E402
from gradcam.models import Backbone  # noqa: E402

SIZE = 224
TOP = 5
PHOTO_SIZE = (768, 1024)  # (height, width) of the rendering benchmark's photo
TARGET_LAYER_INDEX = 35  # relu5_4 in torchvision's VGG19 ``features``
EXAMPLES = Path(os.environ.get("GRADCAM_EXAMPLES", "/work/shared/examples"))
RESULT_PREFIX = "RESULT "

# The targets of issue 4.
MAX_TOP1_OVER_FORWARD = 1.10
MAX_TOP5_OVER_FORWARD = 1.30
MIN_SPEEDUP_VS_PYTORCH_GRAD_CAM = 3.0
MIN_SPEEDUP_VS_FASTEST_PEER_TOP1 = 1.25
MIN_SPEEDUP_VS_FASTEST_PEER_TOP5 = 3.0
MAX_MEMORY_OVER_FORWARD = 1.2
MAX_MEMORY_OVER_PYTORCH_GRAD_CAM = 0.5
MAX_RENDER_OVER_MODEL = 0.10

# A round is quiet when other processes used less than this share of the CPUs; medians are taken over
# quiet rounds when there are at least MIN_QUIET_ROUNDS of them.
QUIET_SHARE = 0.10
MIN_QUIET_ROUNDS = 3

CONTENDED = " (contended: other processes used the CPUs in most rounds; rerun on a quiet machine)"

# Maps agree when they correlate at least this much and differ at most this much (maps are in [0, 1]).
MIN_CORRELATION = 0.999
MAX_ABS_DIFFERENCE = 0.02


# ----------------------------------------------------------------------------- inputs and models


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 picture with a few shapes, for machines without the example photos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = np.stack([xx / width * 200 + 30, yy / height * 160 + 40, (xx + yy) / (width + height) * 120 + 60], axis=-1)
    for _ in range(4):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        radius = rng.uniform(0.08, 0.2) * min(height, width)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = rng.integers(0, 256, 3)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def example_photos() -> list[Path]:
    """The example photos shipped beside the project, if this machine has them."""
    if not EXAMPLES.is_dir():
        return []
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def photo(height: int, width: int, index: int = 0) -> np.ndarray:
    """An example photo (or a synthetic one) resized to ``(height, width)``, RGB uint8."""
    paths = example_photos()
    if not paths:
        return synthetic_photo(height, width, seed=index)
    image = load_image(paths[index % len(paths)])
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def plain_vgg19() -> nn.Module:
    """torchvision's VGG19 with the project's seeded untrained weights, as the peers' docs use it.

    Eval mode, NCHW, parameters requiring grad (torchvision's default).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the seed load_backbone(..., "random") uses
        return torchvision.models.vgg19().eval()


@dataclass
class Setup:
    """Everything the methods share; models are built on first use.

    Build them outside ``torch.inference_mode``: parameters created inside it are
    inference tensors, which no gradient may ever go through.
    """

    classes: list[int]
    image: np.ndarray = field(default_factory=lambda: photo(SIZE, SIZE))
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @property
    def backbone(self) -> Backbone:
        """The project's VGG19 as load_backbone gives it: channels-last, frozen."""
        return self._get("backbone", lambda: load_backbone("vgg19", "random"))

    @property
    def backbone_nchw(self) -> Backbone:
        """The project's VGG19 in the default NCHW layout."""
        return self._get("backbone_nchw", lambda: load_backbone("vgg19", "random", channels_last=False))

    @property
    def explainer(self) -> Explainer:
        """The project's Explainer on :attr:`backbone`."""
        return self._get("explainer", lambda: Explainer(self.backbone))

    @property
    def vgg(self) -> nn.Module:
        """The peers' model: a plain torchvision VGG19, NCHW, parameters requiring grad."""
        return self._get("vgg", plain_vgg19)

    @property
    def x(self) -> Tensor:
        """The input as the Explainer makes it: ``(1, 3, 224, 224)``, channels-last in memory."""
        return self._get("x", lambda: preprocess(self.image))

    @property
    def x_nchw(self) -> Tensor:
        """The same input, contiguous NCHW."""
        return self._get("x_nchw", lambda: self.x.contiguous())


def preprocess(image: np.ndarray) -> Tensor:
    """A 224 x 224 RGB uint8 image to the network input, computed as Explainer.preprocess does.

    ``(1, 3, 224, 224)``, channels-last in memory; ImageNet statistics from the
    weights enum. Kept separate so that the peers' processes need not build the
    project's model; :func:`main` checks it equals ``Explainer.preprocess``.
    """
    transforms = torchvision.models.VGG19_Weights.IMAGENET1K_V1.transforms()
    mean = np.asarray(transforms.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(transforms.std, dtype=np.float32) * 255.0)
    normalised = (image.astype(np.float32) - mean) * inv_std  # (224, 224, 3)
    return torch.from_numpy(normalised).permute(2, 0, 1).unsqueeze(0)  # (1, 3, 224, 224), NHWC in memory


# ----------------------------------------------------------------------------- the methods


def common_maps(raw: Tensor | np.ndarray) -> Tensor:
    """Any method's maps ``(K, h, w)`` after the same ReLU, bilinear upsampling to 224 x 224 and min-max scaling."""
    maps = torch.as_tensor(np.asarray(raw) if isinstance(raw, np.ndarray) else raw.detach()).float()
    maps = F.relu(maps.reshape(-1, *maps.shape[-2:]))  # (K, h, w)
    if tuple(maps.shape[-2:]) != (SIZE, SIZE):
        maps = F.interpolate(maps[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    return minmax(maps)


def minmax(maps: Tensor) -> Tensor:
    """Scales each map of ``(..., H, W)`` to [0, 1]; an all-zero map stays zero."""
    low = maps.flatten(-2).amin(-1)[..., None, None]
    high = maps.flatten(-2).amax(-1)[..., None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


@dataclass(frozen=True)
class Method:
    """One way of computing Grad-CAM maps (or the plain forward pass they are compared with).

    Attributes:
        name: short key, used on the command line of the memory subprocesses.
        label: for people.
        layout: "channels_last" or "NCHW", to pick the plain forward it is compared with.
        classes: how many classes one call explains (0 for a plain forward).
        make: builds a callable that runs the method once and returns its output.
        maps: the output to maps ``(K, 224, 224)`` for the agreement check (None for a forward).
        library: "project", a peer library, or "" for the plain forward.
    """

    name: str
    label: str
    layout: str
    classes: int
    make: Callable[[Setup], Callable[[], Any]]
    maps: Callable[[Any], Tensor] | None
    library: str


def _forward_nchw(s: Setup) -> Callable[[], Any]:
    model, x = s.vgg, s.x_nchw

    def run() -> Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def _forward_channels_last(s: Setup) -> Callable[[], Any]:
    model, x = s.backbone.model, s.x

    def run() -> Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def _project(
    model_of: Callable[[Setup], nn.Module], layer: str, nchw: bool, top: int
) -> Callable[[Setup], Callable[[], Any]]:
    def make(s: Setup) -> Callable[[], Any]:
        cam, x = GradCAM(model_of(s), layer), (s.x_nchw if nchw else s.x)
        return lambda: cam.compute(x, top=top)

    return make


def _explain(s: Setup) -> Callable[[], Any]:
    explainer, image = s.explainer, s.image
    return lambda: explainer.explain(image)


def _pytorch_grad_cam(s: Setup, classes: Sequence[int]) -> Callable[[], Any]:
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = s.vgg, s.x_nchw.clone()
    target_layers = [model.features[TARGET_LAYER_INDEX]]

    def run() -> np.ndarray:
        # Its README's usage; one call per class (a batch of copies would cost the same).
        with PGCGradCAM(model=model, target_layers=target_layers) as cam:
            maps = [cam(input_tensor=x, targets=[ClassifierOutputTarget(c)]) for c in classes]  # each (1, 224, 224)
        return np.concatenate(maps)

    return run


def _captum(s: Setup, classes: Sequence[int]) -> Callable[[], Any]:
    from captum.attr import LayerAttribution, LayerGradCam

    model, x = s.vgg, s.x_nchw.clone()
    layer_gc = LayerGradCam(model, model.features[TARGET_LAYER_INDEX])

    def run() -> Tensor:
        # Its docstring's usage, plus the ReLU, bilinear upsampling and scaling the others do. The
        # attribution stays attached to the forward graph: detached, as anyone keeping several maps would.
        maps = []
        for c in classes:
            attr = layer_gc.attribute(x, target=c, relu_attributions=True).detach()  # (1, 1, 14, 14)
            upsampled = LayerAttribution.interpolate(attr, (SIZE, SIZE), interpolate_mode="bilinear")
            maps.append(minmax(upsampled))
        return torch.cat(maps)

    return run


def _torchcam(s: Setup, classes: Sequence[int]) -> Callable[[], Any]:
    from torchcam.methods import GradCAM as TorchCAMGradCAM

    model, x = s.vgg, s.x_nchw.clone()

    def run() -> Tensor:
        # Its README's usage; several classes reuse one forward pass (retain_graph).
        maps = []
        with TorchCAMGradCAM(model, target_layer=f"features.{TARGET_LAYER_INDEX}") as cam_extractor:
            out = model(x)
            for k, c in enumerate(classes):
                (cam,) = cam_extractor(c, out, retain_graph=k < len(classes) - 1)  # (1, 14, 14), ReLU, scaled
                maps.append(F.interpolate(cam[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False))
        return torch.cat(maps)

    return run


def _peer(build: Callable[[Setup, Sequence[int]], Callable[[], Any]], top: int) -> Callable[[Setup], Callable[[], Any]]:
    return lambda s: build(s, s.classes[:top])


def _project_maps(result: Any) -> Tensor:
    return result.maps[0]


METHODS: tuple[Method, ...] = (
    Method("forward_nchw", "plain forward, inference mode", "NCHW", 0, _forward_nchw, None, ""),
    Method("forward_cl", "plain forward, inference mode", "channels_last", 0, _forward_channels_last, None, ""),
    Method(
        "project_top1",
        "gradcam GradCAM.compute, top class",
        "channels_last",
        1,
        _project(lambda s: s.backbone.model, "features_conv", False, 1),
        _project_maps,
        "project",
    ),
    Method(
        "project_top5",
        "gradcam GradCAM.compute, top 5",
        "channels_last",
        TOP,
        _project(lambda s: s.backbone.model, "features_conv", False, TOP),
        _project_maps,
        "project",
    ),
    Method(
        "explain",
        "gradcam Explainer.explain (uint8 in, boxes)",
        "channels_last",
        1,
        _explain,
        lambda e: torch.tensor(e.cam)[None],
        "project",
    ),
    Method(
        "project_top1_nchw",
        "gradcam GradCAM.compute, top class",
        "NCHW",
        1,
        _project(lambda s: s.backbone_nchw.model, "features_conv", True, 1),
        _project_maps,
        "project",
    ),
    Method(
        "project_hook_top1_nchw",
        "gradcam GradCAM generic hook path, top class",
        "NCHW",
        1,
        _project(lambda s: s.vgg, f"features.{TARGET_LAYER_INDEX}", True, 1),
        _project_maps,
        "project",
    ),
    Method(
        "pgc_top1",
        "pytorch-grad-cam GradCAM, 1 class",
        "NCHW",
        1,
        _peer(_pytorch_grad_cam, 1),
        common_maps,
        "pytorch-grad-cam",
    ),
    Method(
        "pgc_top5",
        "pytorch-grad-cam GradCAM, 5 classes",
        "NCHW",
        TOP,
        _peer(_pytorch_grad_cam, TOP),
        common_maps,
        "pytorch-grad-cam",
    ),
    Method("captum_top1", "captum LayerGradCam, 1 class", "NCHW", 1, _peer(_captum, 1), common_maps, "captum"),
    Method("captum_top5", "captum LayerGradCam, 5 classes", "NCHW", TOP, _peer(_captum, TOP), common_maps, "captum"),
    Method("torchcam_top1", "torchcam GradCAM, 1 class", "NCHW", 1, _peer(_torchcam, 1), common_maps, "torchcam"),
    Method("torchcam_top5", "torchcam GradCAM, 5 classes", "NCHW", TOP, _peer(_torchcam, TOP), common_maps, "torchcam"),
)
BY_NAME = {m.name: m for m in METHODS}
FORWARD_OF_LAYOUT = {"NCHW": "forward_nchw", "channels_last": "forward_cl"}


def peers_available() -> tuple[bool, str]:
    """Whether the three peer libraries import (benchmarks/run.sh puts them on the path)."""
    try:
        import captum.attr  # noqa: F401
        import pytorch_grad_cam  # noqa: F401
        import torchcam.methods  # noqa: F401
    except ImportError as exc:
        return False, f"{exc} (run benchmarks/run.sh, which installs the peers from benchmarks/requirements.txt)"
    return True, ""


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the timed repetitions of one method.

    Attributes:
        samples: seconds of each repetition.
        others: the share of the CPUs other processes used during each repetition's round.
    """

    samples: tuple[float, ...]
    others: tuple[float, ...]

    @property
    def quiet(self) -> tuple[float, ...]:
        """The repetitions to summarise: those of quiet rounds if there are enough, else all."""
        quiet = tuple(t for t, share in zip(self.samples, self.others) if share < QUIET_SHARE)
        return quiet if len(quiet) >= MIN_QUIET_ROUNDS else self.samples

    @property
    def contended(self) -> bool:
        """True when too few rounds were quiet: the median is then measured under contention."""
        return sum(share < QUIET_SHARE for share in self.others) < MIN_QUIET_ROUNDS

    @property
    def median(self) -> float:
        return statistics.median(self.quiet)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        quiet = self.quiet
        if len(quiet) < 2:
            return quiet[0], quiet[0]
        q1, _, q3 = statistics.quantiles(quiet, n=4, method="inclusive")
        return q1, q3


def time_interleaved(runs: dict[str, Callable[[], Any]], reps: int, warmup: int, seed: int = 0) -> dict[str, Timing]:
    """Times each callable ``reps`` times after ``warmup`` untimed rounds, in a new random order every round.

    Interleaving spreads the machine's drift (other processes, frequency, caches)
    over all methods instead of charging it to whichever ran during it.
    """
    order = list(runs)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in order}
    shares: list[float] = []
    # Collect garbage before each call, not during one; freezing what exists now
    # makes those collections cheap (a full one takes 0.2 s with the peers loaded).
    gc.collect()
    gc.freeze()
    try:
        for round_index in range(warmup + reps):
            rng.shuffle(order)
            with other_processes_share() as share:
                for name in order:
                    gc.collect()
                    t0 = time.perf_counter()
                    output = runs[name]()
                    elapsed = time.perf_counter() - t0
                    del output
                    if round_index >= warmup:
                        samples[name].append(elapsed)
            if round_index >= warmup:
                shares.append(share["others"])
            kind = "warm-up" if round_index < warmup else "round"
            number = round_index + 1 if round_index < warmup else round_index - warmup + 1
            log(f"  {kind} {number}: {share['seconds']:.1f} s, other processes used {share['others']:.0%} of the CPUs")
    finally:
        gc.unfreeze()
    return {name: Timing(tuple(values), tuple(shares)) for name, values in samples.items()}


# ----------------------------------------------------------------------------- memory (one process per method)


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def _reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_child(name: str, classes: list[int], runs: int) -> dict[str, Any]:
    """In a fresh process: build what ``name`` needs, then its peak RSS growth.

    "first": over the first ``runs`` calls, one-time allocations included (caches,
    parameter gradients a method keeps); "warm": over ``runs`` more calls, measured
    from what the first calls left behind.
    """
    setup = Setup(classes=classes)
    run = BY_NAME[name].make(setup)

    def peak() -> tuple[float, float, float]:
        gc.collect()
        if not _reset_peak():
            raise RuntimeError("Cannot reset VmHWM (/proc/self/clear_refs); peak memory needs Linux 4.0 or newer.")
        baseline = _status_kib("VmRSS")
        for _ in range(runs):
            output = run()
            del output
        gc.collect()
        return baseline / 1024, (_status_kib("VmHWM") - baseline) / 1024, (_status_kib("VmRSS") - baseline) / 1024

    baseline, first, kept = peak()
    _, warm, _ = peak()
    return {"baseline_mib": baseline, "delta_mib": first, "kept_mib": kept, "warm_delta_mib": warm}


def measure_memory(names: Sequence[str], classes: list[int], runs: int, threads: int) -> dict[str, dict[str, Any]]:
    """Runs :func:`memory_child` for each method in its own subprocess.

    glibc's malloc raises its mmap threshold as large blocks are freed, after which
    freed tensors may stay resident, so RSS would depend on allocation history
    (+-10 MiB between identical runs here). The children fix the threshold at its
    initial 128 KiB: large tensors are then mapped and unmapped as they live and
    die, and the high-water mark follows the tensors.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}

    def measure(name: str) -> dict[str, Any]:
        command = [sys.executable, __file__, "--child-memory", name, "--classes", ",".join(map(str, classes))]
        command += ["--memory-runs", str(runs), "--threads", str(threads)]
        result = _run_child(command, f"memory of {name}", timeout=300, env=env)
        if "delta_mib" in result:
            log(
                f"  {name}: peak +{result['delta_mib']:.0f} MiB (warm +{result['warm_delta_mib']:.0f}) "
                f"over {result['baseline_mib']:.0f} MiB"
            )
        return result

    # Memory does not depend on speed: two processes at a time halve the wait.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(names, pool.map(measure, names)))


def _run_child(command: list[str], what: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        log(f"  {what}: gave up after {timeout:.0f} s")
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"  {what} failed: {last}")
        return {"error": last}
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


@contextmanager
def other_processes_share() -> Iterator[dict[str, float]]:
    """Measures what share of all CPUs processes other than this one (and its children) kept busy.

    The machine's busy time comes from /proc/stat, ours from os.times(); the
    dictionary is filled in when the block ends.
    """

    def machine_busy_s() -> float:
        try:
            with open("/proc/stat") as stat:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
        except (OSError, ValueError):
            return float("nan")
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def ours_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    result: dict[str, float] = {}
    busy, ours, started = machine_busy_s(), ours_s(), time.perf_counter()
    try:
        yield result
    finally:
        seconds = time.perf_counter() - started
        others = (machine_busy_s() - busy) - (ours_s() - ours)
        result.update(seconds=seconds, others=max(0.0, others / (seconds * (os.cpu_count() or 1))))


def wait_for_quiet(max_wait_s: float, threshold: float = 0.1, window_s: float = 2.0) -> None:
    """Waits (at most ``max_wait_s``) until other processes use less than ``threshold`` of the CPUs."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        with other_processes_share() as share:
            time.sleep(window_s)
        if share["others"] < threshold:
            return
        if time.perf_counter() >= deadline:
            log(f"  still busy after {max_wait_s:.0f} s (others use {share['others']:.0%} of the CPUs); going on")
            return


# ----------------------------------------------------------------------------- agreement


def agreement(reference: Tensor, other: Tensor) -> tuple[float, float]:
    """Pearson correlation and largest absolute difference of two stacks of maps in [0, 1]."""
    a, b = reference.flatten().double(), other.flatten().double()
    correlation = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    return correlation, float((a - b).abs().max())


def check_agreement(setup: Setup, runs: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, float]]:
    """Every method's maps against the project's, for the same classes, after common post-processing."""
    reference = {
        1: common_maps(_project_maps(runs["project_top1"]())),
        TOP: common_maps(_project_maps(runs["project_top5"]())),
    }
    results = {}
    for name, run in runs.items():
        method = BY_NAME[name]
        if method.maps is None or name in ("project_top1", "project_top5"):
            continue
        maps = common_maps(method.maps(run()))
        results[name] = agreement(reference[method.classes], maps)
    return results


# ----------------------------------------------------------------------------- rendering, CLI, torch.compile


def bench_rendering(setup: Setup, reps: int, warmup: int) -> dict[str, Any]:
    """The model time of a 1024 x 768 photo against drawing its pictures."""
    from gradcam.cam import _normalise  # the engine's own scaling, to time the map upsampling alone

    explainer = setup.explainer
    image = photo(*PHOTO_SIZE, index=1)
    x = explainer.preprocess(image)
    explanation = explainer.explain(image)
    coarse = torch.rand(1, 1, x.shape[-2] // 16, x.shape[-1] // 16)  # a map at relu5_4's resolution
    out = Path(tempfile.mkdtemp(prefix="gradcam-bench-"))
    try:
        runs = {
            "preprocess": lambda: explainer.preprocess(image),
            "model": lambda: explainer.cam.compute(x, size=PHOTO_SIZE),
            "map_upsampling": lambda: _normalise(
                F.interpolate(coarse, size=PHOTO_SIZE, mode="bilinear", align_corners=False)
            ),
            "cam_to_boxes": lambda: cam_to_boxes(explanation.cam),
            "panels": explanation.panels,
            "heatmap": explanation.heatmap,
            "overlay": explanation.overlay,
            "boxed": explanation.boxed,
            "save_png": lambda: save_explanation(explanation, out / "photo"),
            "explain": lambda: explainer.explain(image),
        }
        timings = time_interleaved(runs, reps, warmup, seed=1)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    medians = {name: t.median for name, t in timings.items()}
    best = {name: t.best for name, t in timings.items()}
    render = medians["panels"] + medians["cam_to_boxes"]
    return {
        "photo": f"{PHOTO_SIZE[1]}x{PHOTO_SIZE[0]}",
        "network_input": f"{x.shape[-1]}x{x.shape[-2]}",
        "medians_s": medians,
        "best_s": best,
        "render_s": render,
        "render_over_model": render / medians["model"],
        "render_over_model_best": (best["panels"] + best["cam_to_boxes"]) / best["model"],
        "contended": any(timings[name].contended for name in ("model", "panels", "cam_to_boxes")),
        "others": timings["model"].others,
    }


def bench_cli(setup: Setup, passes: int) -> dict[str, Any]:
    """Images per second of the CLI's work over a folder of 8 photos, in-process and as a command."""
    workdir = Path(tempfile.mkdtemp(prefix="gradcam-bench-cli-"))
    try:
        folder = workdir / "images"
        folder.mkdir()
        paths = example_photos()[:4]
        for i, path in enumerate(paths):
            shutil.copy(path, folder / path.name)
        while len(list(folder.iterdir())) < 8:  # the rest at 1024 x 768 (or all synthetic)
            i = len(list(folder.iterdir()))
            cv2.imwrite(str(folder / f"photo{i}.png"), cv2.cvtColor(photo(*PHOTO_SIZE, index=i), cv2.COLOR_RGB2BGR))
        images = sorted(folder.iterdir())
        sizes = sorted({"x".join(map(str, load_image(p).shape[1::-1])) for p in images})
        explainer = setup.explainer
        save_explanation(explainer.explain(images[0]), workdir / "warmup", source=images[0])
        seconds = []
        for n in range(passes):
            started = time.perf_counter()
            for path in images:
                save_explanation(explainer.explain(path), workdir / f"pass{n}" / path.stem, source=path)
            seconds.append(time.perf_counter() - started)
        per_pass = statistics.median(seconds)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "gradcam", str(folder), "--weights", "random", "--out", str(workdir / "cli")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        command_s = time.perf_counter() - started
        if done.returncode != 0:
            log(f"  the CLI failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        written = len(list((workdir / "cli").glob("*/manifest.json"))) if (workdir / "cli").is_dir() else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "images": len(images),
        "sizes": sizes,
        "in_process_images_per_s": len(images) / per_pass,
        "in_process_s_per_image": per_pass / len(images),
        "command_s": command_s,
        "command_images_per_s": written / command_s,
        "command_ok": done.returncode == 0 and written == len(images),
    }


COMPILE_VARIANTS: dict[str, str] = {
    "whole_model": "torch.compile(model)",
    "trunk": "trunk compiled (inductor defaults)",
    "trunk_frozen": "trunk compiled, options={'freezing': True}",
}


def _compiled_cam(variant: str) -> GradCAM:
    """A GradCAM on a fresh copy of the project's VGG19, compiled one way."""
    model = load_backbone("vgg19", "random").model
    if variant == "whole_model":
        # What a user would try first. GradCAM then takes the model's fast path
        # (cam_forward), which the compiled wrapper hands to the eager module.
        return GradCAM(torch.compile(model), "features_conv")
    # The trunk, nearly all the work; cam_forward calls it under no_grad.
    options = {"freezing": True} if variant == "trunk_frozen" else None  # weights as constants, pre-packed
    model.features_conv = torch.compile(model.features_conv, options=options)
    return GradCAM(model, "features_conv")


def compile_child(classes: list[int], reps: int) -> dict[str, Any]:
    """In a fresh process: Grad-CAM (top class) and the forward pass under ``torch.compile``, against eager.

    Each variant compiles a separate copy of the model on its first call; a
    variant whose compiler fails is reported as unavailable and the others go on.
    """
    setup = Setup(classes=classes)
    x = setup.x
    eager = GradCAM(setup.backbone.model, "features_conv")
    expected = eager.compute(x)
    cams: dict[str, GradCAM] = {}
    results: dict[str, Any] = {"variants": {}}
    for variant, label in COMPILE_VARIANTS.items():
        try:
            cam = _compiled_cam(variant)
            started = time.perf_counter()
            first = cam.compute(x)  # compiles
            first_s = time.perf_counter() - started
            cam.compute(x)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "not available here"
            error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
            results["variants"][variant] = {"available": False, "error": error}
            log(f"  torch.compile, {label}: not available ({error})")
            continue
        cams[variant] = cam
        results["variants"][variant] = {
            "available": True,
            "first_call_s": first_s,
            "max_abs_map_difference": float((first.maps - expected.maps).abs().max()),
            "same_class": bool(torch.equal(first.classes, expected.classes)),
        }

    def forward(model: nn.Module) -> Callable[[], Any]:
        def run() -> Tensor:
            with torch.no_grad():  # the grad mode cam_forward runs the trunk in: the same compiled graph
                return model(x)

        return run

    runs: dict[str, Callable[[], Any]] = {
        "eager_forward": forward(setup.backbone.model),
        "eager_top1": lambda: eager.compute(x),
    }
    for variant, cam in cams.items():
        runs[f"{variant}_top1"] = lambda cam=cam: cam.compute(x)
        if variant != "whole_model":
            runs[f"{variant}_forward"] = forward(cam.model)
    timings = time_interleaved(runs, reps, warmup=1, seed=2)
    results["medians_s"] = {name: t.median for name, t in timings.items()}
    results["best_s"] = {name: t.best for name, t in timings.items()}
    results["contended"] = any(t.contended for t in timings.values())
    results["available"] = bool(cams)
    return results


# ----------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _verdict(ok: bool | None, also_ok: bool | None = None, how: str = "medians", also: str = "best times") -> str:
    """Met or missed, judged one way (``how``) and, where given, another (``also``)."""
    if ok is None:
        return "n/a"
    if also_ok is None or also_ok == ok:
        return "met" if ok else "MISSED"
    return f"met on {how if ok else also} only"


def report(
    args: argparse.Namespace,
    timings: dict[str, Timing],
    memory: dict[str, dict[str, Any]],
    agree: dict[str, tuple[float, float]],
    rendering: dict[str, Any] | None,
    cli: dict[str, Any] | None,
    compiled: dict[str, Any] | None,
    sections: dict[str, dict[str, float]],
) -> str:
    """The results as markdown: the main table, the targets, rendering, CLI and compile."""
    quiet_rounds = sum(share < QUIET_SHARE for share in next(iter(timings.values())).others)
    lines = [
        (
            f"VGG19, one {SIZE}x{SIZE} image, {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"{args.reps} interleaved repetitions after the agreement check's call of each method"
            f"{f' and {args.warmup} warm-up round(s)' if args.warmup else ''}; best = the fastest repetition."
        ),
        "",
        "Share of the CPUs that other processes used during each part (from /proc/stat): "
        + ", ".join(f"{name} {v['others']:.0%} ({v['seconds']:.0f} s)" for name, v in sections.items())
        + f"; {quiet_rounds} of {args.reps} timing rounds were quiet (others < {QUIET_SHARE:.0%}). "
        "Medians and IQRs are over the quiet rounds when there are at least "
        f"{MIN_QUIET_ROUNDS}, else over all rounds and marked *. Where others compete, multi-threaded PyTorch "
        "slows down far more than single-threaded drawing: trust the best times.",
        "",
        (
            "| method | layout | median ms | IQR ms | min-max ms | x plain forward (medians) | x plain forward (best) "
            "| peak RSS +MiB, first calls (warm) | x forward's | agrees (corr / max diff) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method in METHODS:
        if method.name not in timings:
            continue
        t = timings[method.name]
        forward = FORWARD_OF_LAYOUT[method.layout]
        ratio = t.median / timings[forward].median
        ratio_best = t.best / timings[forward].best
        q1, q3 = t.quartiles
        mem = memory.get(method.name, {})
        delta = mem.get("delta_mib")
        forward_delta = memory.get(forward, {}).get("delta_mib")
        mem_text = f"{delta:.0f} ({mem['warm_delta_mib']:.0f})" if delta is not None else "-"
        mem_ratio = f"{delta / forward_delta:.2f}" if delta is not None and forward_delta else "-"
        if method.name in agree:
            corr, diff = agree[method.name]
            ok = corr >= MIN_CORRELATION and diff <= MAX_ABS_DIFFERENCE
            agree_text = f"{'yes' if ok else 'NO'} ({corr:.5f} / {diff:.1e})"
        else:
            agree_text = "reference" if method.maps is not None else ""
        lines.append(
            f"| {method.label} | {method.layout} | {_ms(t.median)}{'*' if t.contended else ''} | {_ms(q1)}-{_ms(q3)} | "
            f"{_ms(t.best)}-{_ms(max(t.samples))} | {ratio:.2f} | {ratio_best:.2f} | "
            f"{mem_text} | {mem_ratio} | {agree_text} |"
        )
    lines += ["", "| target (issue 4) | measured | |", "|---|---|---|"]
    for target, measured, verdict in targets(timings, memory, rendering):
        lines.append(f"| {target} | {measured} | {verdict} |")
    if rendering is not None:
        lines += _rendering_report(rendering)
    if cli is not None:
        lines += [
            "",
            (
                f"CLI over a folder of {cli['images']} images ({', '.join(cli['sizes'])}): "
                f"{cli['in_process_images_per_s']:.2f} images/s in process (explain + save_explanation, "
                f"{cli['in_process_s_per_image'] * 1000:.0f} ms per image, model loaded once); "
                f"`python -m gradcam` as a command: {cli['command_s']:.1f} s in all, {cli['command_images_per_s']:.2f} "
                f"images/s including start-up and model build{'' if cli['command_ok'] else ' (THE COMMAND FAILED)'}."
            ),
        ]
    if compiled is not None:
        lines += _compile_report(compiled)
    return "\n".join(lines)


RENDERING_STEPS = {
    "preprocess": "preprocess (resize to the network input, normalise)",
    "model": "model: GradCAM.compute, map at photo size",
    "map_upsampling": "... of which upsampling + scaling the map to 1024x768",
    "cam_to_boxes": "cam_to_boxes",
    "panels": "Explanation.panels() (heatmap, overlay, boxes)",
    "heatmap": "... Explanation.heatmap() alone",
    "overlay": "... Explanation.overlay() alone (colours the map itself)",
    "boxed": "... Explanation.boxed() alone",
    "save_png": "save_explanation (4 PNGs, cam.npy, manifest)",
    "explain": "Explainer.explain end to end",
}


def _rendering_report(rendering: dict[str, Any]) -> list[str]:
    med, best = rendering["medians_s"], rendering["best_s"]
    lines = [
        "",
        f"A {rendering['photo']} photo (network input {rendering['network_input']})"
        + (f"; {CONTENDED.strip(' ()').upper()}" if rendering["contended"] else "")
        + ":",
        "",
        "| step | median ms | best ms |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {med[name] * 1000:.1f} | {best[name] * 1000:.1f} |" for name, label in RENDERING_STEPS.items()
    ]
    lines.append(
        f"| rendering (panels + cam_to_boxes) / model | {rendering['render_over_model']:.1%} | "
        f"{rendering['render_over_model_best']:.1%} |"
    )
    return lines


def _compile_report(compiled: dict[str, Any]) -> list[str]:
    if not compiled.get("available"):
        return [
            "",
            (
                f"torch.compile: not available here ({compiled.get('error', 'every variant failed')}); "
                "the eager numbers stand."
            ),
        ]
    med, best = compiled["medians_s"], compiled["best_s"]
    lines = [
        "",
        "torch.compile (Grad-CAM top class, GradCAM.compute; speed-ups over eager, medians and best times)"
        + (f"; {CONTENDED.strip(' ()').upper()}" if compiled.get("contended") else "")
        + ":",
        "",
        (
            "| variant | first call s | Grad-CAM ms | speed-up | forward ms | speed-up | Grad-CAM / eager forward "
            "| max map difference |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| eager | - | {_ms(med['eager_top1'])} | 1.00 | {_ms(med['eager_forward'])} | 1.00 | "
            f"{med['eager_top1'] / med['eager_forward']:.2f} | - |"
        ),
    ]
    for variant, label in COMPILE_VARIANTS.items():
        info = compiled["variants"].get(variant, {})
        if not info.get("available"):
            lines.append(f"| {label} | failed: {info.get('error', '?')} | | | | | | |")
            continue
        top1 = f"{variant}_top1"
        speed = f"{med['eager_top1'] / med[top1]:.2f} ({best['eager_top1'] / best[top1]:.2f})"
        forward = f"{variant}_forward"
        if forward in med:
            fwd_ms = _ms(med[forward])
            fwd_speed = f"{med['eager_forward'] / med[forward]:.2f} ({best['eager_forward'] / best[forward]:.2f})"
        else:
            fwd_ms = fwd_speed = "-"
        lines.append(
            f"| {label} | {info['first_call_s']:.1f} | {_ms(med[top1])} | {speed} | {fwd_ms} | {fwd_speed} | "
            f"{med[top1] / med['eager_forward']:.2f} ({best[top1] / best['eager_forward']:.2f}) | "
            f"{info['max_abs_map_difference']:.1e}{'' if info['same_class'] else ', OTHER CLASS'} |"
        )
    return lines


def targets(
    timings: dict[str, Timing], memory: dict[str, dict[str, Any]], rendering: dict[str, Any] | None
) -> list[tuple[str, str, str]]:
    """Each target of issue 4: what it asks, what was measured, and whether it is met.

    Speed targets are judged on the medians and on the best times (this machine
    may be shared: the best times are the least disturbed); the verdict says
    where the two disagree.
    """
    med = {name: t.median for name, t in timings.items()}
    best = {name: t.best for name, t in timings.items()}
    rows: list[tuple[str, str, str]] = []

    def ratio(numerator: str, denominator: str, limit: float, at_most: bool, what: str, note: str = "") -> None:
        r_med, r_best = med[numerator] / med[denominator], best[numerator] / best[denominator]
        ok_med, ok_best = (r_med <= limit, r_best <= limit) if at_most else (r_med >= limit, r_best >= limit)
        verdict = _verdict(ok_med, ok_best)
        if timings[numerator].contended or timings[denominator].contended:
            verdict += CONTENDED
        rows.append((what, f"{r_med:.2f} x (best times: {r_best:.2f} x){note}", verdict))

    ratio(
        "project_top1",
        "forward_cl",
        MAX_TOP1_OVER_FORWARD,
        True,
        f"one class <= {MAX_TOP1_OVER_FORWARD:.2f} x plain forward",
    )
    ratio(
        "project_top5",
        "forward_cl",
        MAX_TOP5_OVER_FORWARD,
        True,
        f"top-5 <= {MAX_TOP5_OVER_FORWARD:.2f} x plain forward",
    )
    if "pgc_top1" in med:
        ratio(
            "pgc_top1",
            "project_top1",
            MIN_SPEEDUP_VS_PYTORCH_GRAD_CAM,
            False,
            f">= {MIN_SPEEDUP_VS_PYTORCH_GRAD_CAM:g} x faster than pytorch-grad-cam, one class",
        )
        for top, limit in ((1, MIN_SPEEDUP_VS_FASTEST_PEER_TOP1), (TOP, MIN_SPEEDUP_VS_FASTEST_PEER_TOP5)):
            peers = [f"{peer}_top{top}" for peer in ("pgc", "captum", "torchcam")]
            fastest = min(peers, key=med.__getitem__)
            what = f">= {limit:g} x faster than the fastest peer, {'one class' if top == 1 else f'top {top}'}"
            ratio(fastest, f"project_top{top}", limit, False, what, f", {BY_NAME[fastest].label}")
    else:
        rows.append(("speed against the peers", "peers not installed", "n/a"))
    delta = {name: m.get("delta_mib") for name, m in memory.items()}
    if delta.get("project_top1") is not None and delta.get("forward_cl"):
        fwd = memory["forward_cl"]
        for name in ("project_top1", "project_top5"):
            mine = memory[name]
            r = mine["delta_mib"] / fwd["delta_mib"]
            warm = mine["warm_delta_mib"] / fwd["warm_delta_mib"]
            whole = (mine["baseline_mib"] + mine["delta_mib"]) / (fwd["baseline_mib"] + fwd["delta_mib"])
            rows.append(
                (
                    f"peak memory growth, {BY_NAME[name].label} <= {MAX_MEMORY_OVER_FORWARD:g} x plain forward's",
                    (
                        f"+{mine['delta_mib']:.0f} vs +{fwd['delta_mib']:.0f} MiB = {r:.2f} x "
                        f"(warm: {warm:.2f} x; whole process: {whole:.2f} x)"
                    ),
                    _verdict(
                        r <= MAX_MEMORY_OVER_FORWARD, warm <= MAX_MEMORY_OVER_FORWARD, "first calls", "warm calls"
                    ),
                )
            )
        if delta.get("pgc_top1"):
            mine, theirs = memory["project_top1"], memory["pgc_top1"]
            r = mine["delta_mib"] / theirs["delta_mib"]
            warm = mine["warm_delta_mib"] / theirs["warm_delta_mib"]
            rows.append(
                (
                    "peak memory <= half of pytorch-grad-cam's, one class",
                    f"+{mine['delta_mib']:.0f} vs +{theirs['delta_mib']:.0f} MiB = {r:.2f} x (warm: {warm:.2f} x)",
                    _verdict(
                        r <= MAX_MEMORY_OVER_PYTORCH_GRAD_CAM,
                        warm <= MAX_MEMORY_OVER_PYTORCH_GRAD_CAM,
                        "first calls",
                        "warm calls",
                    ),
                )
            )
    else:
        rows.append(("peak memory", "not measured", "n/a"))
    if rendering is not None:
        share, share_best = rendering["render_over_model"], rendering["render_over_model_best"]
        rows.append(
            (
                f"rendering < {MAX_RENDER_OVER_MODEL:.0%} of model time, {rendering['photo']} photo",
                f"{share:.1%} (best times: {share_best:.1%})",
                _verdict(share < MAX_RENDER_OVER_MODEL, share_best < MAX_RENDER_OVER_MODEL)
                + (CONTENDED if rendering["contended"] else ""),
            )
        )
    return rows


# ----------------------------------------------------------------------------- main


def machine() -> str:
    """CPU model, cores, torch version and threads, for the report."""
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), model
        )
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, {torch.get_num_threads()} threads"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions of each method (default: %(default)s)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="untimed warm-up rounds besides the agreement check's call of each method (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-runs",
        type=int,
        default=2,
        help="calls per memory measurement: that many first calls, then as many warm ones (default: %(default)s)",
    )
    parser.add_argument("--quick", action="store_true", help="3 repetitions and no torch.compile (about 2 minutes)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-extras", action="store_true", help="skip rendering, CLI and torch.compile")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each timed part, wait up to this long for other processes to leave the CPUs (default: 0)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--markdown", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--json", type=Path, help="also write all measurements as JSON to this file")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--classes", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_memory or args.child_compile:
        classes = [int(c) for c in args.classes.split(",")]
        result = (
            memory_child(args.child_memory, classes, args.memory_runs)
            if args.child_memory
            else compile_child(classes, args.reps)
        )
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.reps, args.no_compile = 3, True
    threads = torch.get_num_threads()
    print(f"machine: {machine()}")
    print(f"torch.get_num_threads() = {threads} (every method and subprocess runs with it)")

    available, why = peers_available()
    if not available:
        log(f"peers not importable, timing the project alone: {why}")
    setup = Setup(classes=[])
    names = [m.name for m in METHODS if available or not m.library or m.library == "project"]

    if not torch.equal(setup.x, setup.explainer.preprocess(setup.image)):
        raise RuntimeError("preprocess() no longer matches Explainer.preprocess.")
    # Same weights for everyone: the project's HookedVGG19 and the peers' torchvision VGG19.
    for mine, theirs in zip(setup.backbone.model.parameters(), setup.vgg.parameters(), strict=True):
        if not torch.equal(mine, theirs):
            raise RuntimeError("The project's and the peers' VGG19 weights differ.")
    with torch.inference_mode():
        logits = setup.backbone.model(setup.x)
        difference = float((logits - setup.vgg(setup.x_nchw)).abs().max())
    setup.classes = logits.topk(TOP, dim=1).indices[0].tolist()
    print(
        f"same weights: yes; logits NCHW vs channels-last differ by at most {difference:.1e}; "
        f"top-5 classes {setup.classes}"
    )

    runs = {name: BY_NAME[name].make(setup) for name in names}
    agree = check_agreement(setup, runs)
    for name, (corr, diff) in agree.items():
        print(f"agreement with the project's maps: {name:24s} correlation {corr:.6f}, max |difference| {diff:.2e}")

    sections: dict[str, dict[str, float]] = {}

    @contextmanager
    def section(name: str, what: str) -> Iterator[None]:
        log(what)
        if args.wait_quiet and name != "memory":  # memory does not depend on speed
            wait_for_quiet(args.wait_quiet)
        with other_processes_share() as share:
            yield
        sections[name] = share
        log(f"  {share['seconds']:.0f} s; other processes used {share['others']:.0%} of the CPUs meanwhile")

    with section(
        "timing", f"timing {len(runs)} methods, {args.reps} interleaved rounds after {args.warmup} warm-up round(s) ..."
    ):
        timings = time_interleaved(runs, args.reps, args.warmup)
    rendering = cli = compiled = None
    if not args.no_extras:
        with section("rendering", "rendering a 1024 x 768 photo ..."):
            rendering = bench_rendering(setup, max(3, args.reps), 1)
        with section("CLI", "CLI throughput ..."):
            cli = bench_cli(setup, passes=1 if args.quick else 2)
        if not args.no_compile:
            with section("compile", "torch.compile (first calls compile; can take a minute or more) ..."):
                command = [sys.executable, __file__, "--child-compile", "--classes", ",".join(map(str, setup.classes))]
                command += ["--reps", str(max(3, args.reps)), "--threads", str(threads)]
                compiled = _run_child(command, "torch.compile", timeout=420)
            if "error" in compiled and "available" not in compiled:
                compiled = {"available": False, "error": compiled["error"]}

    memory: dict[str, dict[str, Any]] = {}
    if not args.no_memory:
        with section("memory", "peak memory, one fresh process per method ..."):
            memory = measure_memory(names, setup.classes, args.memory_runs, threads)

    markdown = report(args, timings, memory, agree, rendering, cli, compiled, sections)
    print()
    print(markdown)
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    if args.json:
        data = {
            "machine": machine(),
            "threads": threads,
            "classes": setup.classes,
            "sections": sections,
            "timings_s": {name: list(t.samples) for name, t in timings.items()},
            "memory": memory,
            "agreement": {name: {"correlation": c, "max_abs_difference": d} for name, (c, d) in agree.items()},
            "rendering": rendering,
            "cli": cli,
            "compile": compiled,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
