"""Dataset evaluation benchmark: prints ratios from one run (no timed tests).

1. Local engine throughput against plain batched forward passes of the same
   model on the same images (decode, preprocess, forward; and forward alone).
2. The Ray engine on this machine against the local engine, the same images
   (Ray already started, as the CLI starts it; its actors start inside the timed
   run: they import torch and build the model there).
3. Peak memory (fresh processes, ``resource.getrusage`` maxrss) of the local
   engine on 1,000 and 10,000 tiny images: bounded by the batch, not the dataset.

Models are built untrained (throughput does not depend on the weights): the
``--model`` spec (default EfficientNet-Lite0, the offline default; ``vgg19`` is
the paper's protocol) for 1 and 2, a tiny CNN for 3.

    python benchmarks/bench_evaluate.py [--model SPEC] [--images 200] [--batch-size 16] [--skip-ray] [--skip-memory]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradcam import Backbone, Explainer, load_backbone, load_image
from gradcam.evaluate.annotations import read_annotations
from gradcam.evaluate.local import BatchEvaluator, ResultsWriter, plan_batches, run_local

CLASSES = tuple(f"class {i}" for i in range(1000))


def untrained(spec: str, device: str = "cpu") -> Backbone:
    """The spec's architecture with random weights, at its usual target layer, in channels-last layout."""
    return load_backbone(spec, weights="random", device=device)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def small() -> Backbone:
    torch.manual_seed(0)
    model = Small().eval().requires_grad_(False)
    return Backbone("small", "small CNN", model, "features", CLASSES[:10], (0.5,) * 3, (0.5,) * 3, "random", True)


def make_images(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` noisy JPEG images with one box each, and their CSV annotations."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    height, width = size
    for i in range(count):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        name = f"{i:05d}.jpg"
        Image.fromarray(image).save(folder / name, quality=90)
        rows.append([name, str(i % 10), width // 4, height // 4, width // 2, height // 2])
    annotations = folder / "annotations.csv"
    with annotations.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "label", "x0", "y0", "x1", "y1"])
        writer.writerows(rows)
    return annotations


def time_local(backbone: Backbone, folder: Path, annotations: Path, batch_size: int, out: Path) -> float:
    explainer = Explainer(backbone)
    samples = read_annotations(annotations, folder, backbone.categories).samples
    start = time.perf_counter()
    with ResultsWriter(out) as writer:
        run_local(BatchEvaluator(explainer, 0.15), plan_batches(samples, batch_size), writer, progress=False)
    return time.perf_counter() - start


def time_forward(backbone: Backbone, folder: Path, annotations: Path, batch_size: int) -> tuple[float, float]:
    """Plain batched inference: (decode + preprocess + forward, forward alone) seconds."""
    explainer = Explainer(backbone)
    samples = read_annotations(annotations, folder, backbone.categories).samples
    forward = 0.0
    start = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor

    from gradcam.evaluate.local import WORKERS

    pool = ThreadPoolExecutor(WORKERS)  # decoded with as many threads as the engine uses: like with like
    for batch in plan_batches(samples, batch_size):
        x = torch.cat(list(pool.map(lambda s: explainer.preprocess(load_image(s.path)), batch)))
        begin = time.perf_counter()
        with torch.no_grad():
            backbone.model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        forward += time.perf_counter() - begin
    pool.shutdown()
    return time.perf_counter() - start, forward


def throughput(args: argparse.Namespace, work: Path) -> None:
    folder = work / "photos"
    annotations = make_images(folder, args.images, (args.height, args.width))
    backbone = untrained(args.model, args.device)
    warm = make_images(work / "warm-up", args.batch_size, (args.height, args.width))
    time_forward(backbone, warm.parent, warm, args.batch_size)  # one batch warms both paths up
    time_local(backbone, warm.parent, warm, args.batch_size, work / "warm-up.csv")
    local = []
    plain = []
    forward_only = []
    for round_ in range(args.rounds):  # interleaved, medians
        total, forward = time_forward(backbone, folder, annotations, args.batch_size)
        plain.append(total)
        forward_only.append(forward)
        local.append(time_local(backbone, folder, annotations, args.batch_size, work / f"results-{round_}.csv"))
    n = args.images
    t_local, t_plain, t_forward = (float(np.median(v)) for v in (local, plain, forward_only))
    h, w = Explainer(backbone, warm_up=False).network_size(args.height, args.width)
    print(f"[1] {backbone.title} (untrained), {n} images {args.width}x{args.height} JPEG (input {w}x{h}), "
          f"batch {args.batch_size}, {torch.get_num_threads()} torch threads, {args.device}, median of {args.rounds}")
    print(f"    plain batched inference (decode+preprocess+forward): {n / t_plain:7.1f} images/s")
    print(f"    forward passes alone (pre-decoded):                  {n / t_forward:7.1f} images/s")
    print(f"    local engine (Grad-CAM + metrics):                   {n / t_local:7.1f} images/s")
    print(f"    ratio local / plain inference = {t_plain / t_local:.2f}x  (target >= 0.85)")
    print(f"    ratio local / forward alone   = {t_forward / t_local:.2f}x")
    print(f"    images/s/core (local)         = {n / t_local / (os.cpu_count() or 1):.2f}")
    if not args.skip_ray:
        ray_ratio(args, backbone, folder, annotations, t_local, work)


def ray_ratio(
    args: argparse.Namespace, backbone: Backbone, folder: Path, annotations: Path, t_local: float, work: Path
) -> None:
    import ray

    from gradcam.evaluate.ray_engine import run_ray, start_local_ray

    start_local_ray(os.cpu_count(), log_to_driver=False)  # as the CLI starts it; its actors start inside the timing
    try:
        samples = read_annotations(annotations, folder, backbone.categories).samples
        plan = plan_batches(samples, args.batch_size)
        times = []
        for round_ in range(2):
            start = time.perf_counter()
            with ResultsWriter(work / f"ray-{round_}.csv") as writer:
                run_ray(partial(untrained, args.model), plan, writer, threshold=0.15, progress=False)
            times.append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    t_ray = min(times)
    # Ray writes each batch's rows when it finishes: the same rows, perhaps in another order.
    rows = [sorted((work / name).read_text().splitlines()) for name in ("ray-0.csv", "results-0.csv")]
    same = rows[0] == rows[1]
    print(f"[2] Ray on this machine (2 actors x 0.5 CPU, {torch.get_num_threads()} torch threads each as the local "
          f"engine; actors start inside the timing), same {args.images} images")
    print(f"    ray {t_ray:.1f} s vs local {t_local:.1f} s: ratio {t_ray / t_local:.2f}x (target <= 1.3); "
          f"rows equal: {same}")


def memory_child(count: int, work: Path) -> None:
    folder = work / f"tiny-{count}"
    annotations = make_images(folder, count, (32, 32))
    backbone = small()
    explainer = Explainer(backbone, short_side=32)
    samples = read_annotations(annotations, folder, backbone.categories).samples
    # ru_maxrss would carry the parent's peak across fork and exec: read this process's own
    # high-water mark (VmHWM), reset once everything is built.
    Path("/proc/self/clear_refs").write_text("5")
    before = _vm_hwm_kb()
    with ResultsWriter(folder / "results.csv") as writer:
        run_local(BatchEvaluator(explainer, 0.15), plan_batches(samples, 32), writer, progress=False)
    peak = _vm_hwm_kb()
    print(json.dumps({"before_kb": before, "peak_kb": peak}))


def _vm_hwm_kb() -> int:
    """This process's peak resident memory since the last reset, in KiB (Linux)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def memory(args: argparse.Namespace, work: Path) -> None:
    peaks = {}
    for count in (1000, 10000):
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(count), "--work", str(work)],
                             capture_output=True, text=True, check=True)
        peaks[count] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = peaks[1000], peaks[10000]
    print("[3] Peak memory, local engine, small CNN, 32x32 JPEGs, batch 32, fresh processes "
          "(VmHWM; annotations held in memory)")
    print(f"    1,000 images: {a['peak_kb'] / 1024:.0f} MiB (before the run {a['before_kb'] / 1024:.0f} MiB); "
          f"10,000 images: {b['peak_kb'] / 1024:.0f} MiB (before {b['before_kb'] / 1024:.0f} MiB)")
    print(f"    ratio 10,000 / 1,000 = {b['peak_kb'] / a['peak_kb']:.3f}x; "
          f"growth during the run {(a['peak_kb'] - a['before_kb']) / 1024:.0f} MiB "
          f"vs {(b['peak_kb'] - b['before_kb']) / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="efficientnet_lite0", help="model spec, built untrained (default: efficientnet_lite0)"
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--height", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the model and Grad-CAM run there)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"CPU cores: {os.cpu_count()}, torch {torch.__version__}")
        if not args.skip_throughput:
            throughput(args, work)
        if not args.skip_memory:
            memory(args, work)


if __name__ == "__main__":
    main()
