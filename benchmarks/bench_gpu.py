"""The peers comparison of ``bench_peers.py`` on a GPU: CUDA events, CUDA peak memory, batch 1 or more.

The same models, input, classes, layouts and map-agreement check as
``bench_peers.py``, on CUDA in float32, timed by the same harness with CUDA
events (interleaved rounds, warm-up, medians). Peak memory is
``torch.cuda.max_memory_allocated`` during one call of each method, above what the
models and the input already hold. ``torch.backends.cudnn.benchmark`` is on; cuDNN
may use TF32 for convolutions, so maps of the two layouts differ slightly.

Needs a CUDA machine (this project does not); ``--dry-run-on-cpu`` checks the
script on a CPU, where its times mean nothing.

Run: ``bash benchmarks/run.sh gpu [--quick] [--batch 16]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import reporting
from bench_peers import SIZE, Setup, catalogue, maps_of, peers_available, prepare, tables
from harness import Run


def cuda_peak_mib(run: Run) -> tuple[float, float]:
    """(peak allocated MiB during one call, the same above what was allocated before it)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    held = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    output = run()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del output
    return peak / 2**20, (peak - held) / 2**20


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0], reps=50)
    p.add_argument("--batch", type=int, default=1, help="images per call (default: %(default)s)")
    p.add_argument("--dry-run-on-cpu", action="store_true", help="check the script on a CPU (times mean nothing)")
    args = p.parse_args()
    harness.apply_threads(args)
    if not torch.cuda.is_available() and not args.dry_run_on_cpu:
        sys.exit("No CUDA device: this benchmark is for a GPU machine (bench_peers.py measures the CPU).")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    why = peers_available()
    if why:
        sys.exit(f"The peers are needed: {why}")
    reps = min(args.reps, 2 if args.dry_run_on_cpu else 20) if args.quick or args.dry_run_on_cpu else args.reps
    names = catalogue(args.quick)
    setup = Setup(device, args.batch)
    gap = prepare(setup)
    runs = {name: build(setup) for name, (_, _, _, build) in names.items()}
    reference = {top: harness.common_maps(maps_of(runs[f"ours_top{top}_nchw"]), SIZE) for top in (1, 5)}
    agree = {
        name: harness.agreement(reference[top], harness.common_maps(maps_of(runs[name]), SIZE))
        for name, (_, _, top, _) in names.items()
        if top
    }
    warmup = max(args.warmup, 3)
    harness.log(f"timing {len(runs)} methods on {device}, {reps} interleaved rounds after {warmup} warm-up ...")
    timings = harness.time_interleaved(runs, reps, max(args.warmup, 3), wait_quiet_s=args.wait_quiet)
    memory = {name: cuda_peak_mib(run) for name, run in runs.items()} if device == "cuda" else {}

    table, lines = tables(names, timings, agree, memory)
    report = reporting.Report(f"On a GPU, like with like (bench_gpu.py, batch {args.batch})")
    report.add(
        reporting.conditions(
            torchvision=torchvision.__version__,
            timer="CUDA events" if device == "cuda" else "wall clock (DRY RUN ON A CPU: times mean nothing)",
            model="torchvision VGG19, seeded untrained weights (seed 0), identical for all (checked), float32",
            input=f"{args.batch} x 3 x 224 x 224 (demo/examples/astronaut.png), classes {setup.classes}",
            logits_gap_between_layouts=f"{gap:.1e}",
            rounds=f"{reps} interleaved after {max(args.warmup, 3)} warm-up",
        ),
        table,
        "Speed-ups over the fastest peer, each within one layout:\n" + "\n".join(lines),
        "Memory: torch.cuda.max_memory_allocated during one call (peak), "
        "and above what was allocated before it (growth).",
    )
    report.emit(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
