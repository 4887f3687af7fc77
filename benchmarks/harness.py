"""One timing method for every benchmark of this project: CPU, GPU and the web app.

The experiments (``bench_*.py``) only say *what* to compare; this module says
*how*, the same way everywhere:

* **Interleaved repetitions.** Every round runs each compared function once, in
  a new shuffled order (round-robin), so that drift of the machine (other
  processes, clock frequency, caches) hits all of them alike, after untimed
  warm-up rounds. Garbage is collected before each call, not during one.
* **Contention check.** Before each round a fixed reference workload (a small
  matrix product, the same every time) is timed, and the share of the CPUs that
  *other* processes used during the round is read from ``/proc/stat``; the
  1-minute load average is recorded too. A round is *quiet* when the reference
  ran within 25 % of its best time and others used under 10 % of the CPUs.
  Medians are taken over the quiet rounds when there are at least three, else
  over all rounds, and the result is marked contended.
* **CUDA events** replace the wall clock on a GPU (with a synchronisation after
  each call), so that asynchronous kernels are counted where they run.
* **Peak memory in a fresh process:** a child process builds and runs one
  function only; its peak RSS (``VmHWM``, reset after building) is read from
  ``/proc`` by ``peak_memory.py`` (``ru_maxrss`` would include the parent's peak).
* **Agreement of maps:** correlation and largest absolute difference after the
  same ReLU, bilinear upsampling and min-max scaling, so that equal work is compared.
* **Conditions stated:** every report starts with the CPU (or GPU), cores,
  torch threads, versions and load (``reporting.conditions``), and each
  experiment adds the model, weights, input size and memory layout.

``reporting.py`` prints the markdown and ``peak_memory.py`` runs the memory
children. The experiments call the public API of ``gradcam`` (what it exports,
its ``views`` and ``config``, and ``gradcam.evaluate`` for datasets); examples
come from ``demo/examples``. Three reach further and say so in their docstrings:
``bench_decode.py`` (the tests' many-scan JPEG), ``bench_flood.py`` (the tests'
TinyNet and app server) and ``app_probe.py`` (it wraps ``Explainer.explain`` and
``gradcam.encode.write_png`` to time them on the server).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "demo" / "examples"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: A round is quiet when the reference workload ran within this factor of its best time ...
PROBE_SLACK = 1.25
#: ... and other processes used less than this share of the CPUs.
QUIET_SHARE = 0.10
#: Medians are over quiet rounds only when there are at least this many.
MIN_QUIET_ROUNDS = 3
#: Maps agree when they correlate at least this much and differ at most this much (maps in [0, 1]).
MIN_CORRELATION = 0.999
MAX_ABS_DIFFERENCE = 0.02

Run = Callable[[], object]


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the results)."""
    print(message, file=sys.stderr, flush=True)


def load_average() -> float:
    """The machine's 1-minute load average (NaN where unknown)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# ----------------------------------------------------------------------------- inputs


def example_paths() -> list[Path]:
    """The example photos shipped in ``demo/examples``."""
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def example_photo(name: str = "astronaut.png", size: tuple[int, int] | None = None) -> np.ndarray:
    """An example photo as RGB uint8 ``(H, W, 3)``, resized to ``size`` = ``(height, width)`` if given."""
    import cv2

    from gradcam import load_image

    image = load_image(EXAMPLES / name)
    if size is None:
        return image
    height, width = size
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Rounds:
    """What each timed round saw of the machine.

    Attributes:
        probe_s: seconds of the reference workload before each round.
        others: share of the CPUs other processes used during each round.
        load: 1-minute load average at the end of each round.
    """

    probe_s: tuple[float, ...]
    others: tuple[float, ...]
    load: tuple[float, ...]

    @property
    def quiet(self) -> tuple[bool, ...]:
        """Whether each round was quiet (reference fast and others idle)."""
        best = min(self.probe_s)
        return tuple(p <= best * PROBE_SLACK and o < QUIET_SHARE for p, o in zip(self.probe_s, self.others))

    def summary(self) -> str:
        """A sentence on the contention, for the report."""
        quiet = sum(self.quiet)
        high = sum(load > (os.cpu_count() or 1) + 1 for load in self.load)
        return (
            f"{quiet} of {len(self.quiet)} rounds quiet (reference workload within {PROBE_SLACK:.2f} x its best and "
            f"other processes under {QUIET_SHARE:.0%} of the CPUs); others used {statistics.median(self.others):.0%} "
            f"(median, max {max(self.others):.0%}); load average {min(self.load):.1f}-{max(self.load):.1f}"
            + (f", above cores + 1 in {high} rounds" if high else "")
        )


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed repetition of one function, and the rounds they ran in."""

    samples: tuple[float, ...]
    rounds: Rounds

    @property
    def contended(self) -> bool:
        """True when too few rounds were quiet: the median then includes contended rounds."""
        return sum(self.rounds.quiet) < MIN_QUIET_ROUNDS

    @property
    def kept(self) -> tuple[float, ...]:
        """The samples summarised: those of quiet rounds when there are enough, else all."""
        if self.contended:
            return self.samples
        return tuple(s for s, q in zip(self.samples, self.rounds.quiet) if q)

    @property
    def median(self) -> float:
        return statistics.median(self.kept)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        kept = self.kept
        if len(kept) < 2:
            return kept[0], kept[0]
        q1, _, q3 = statistics.quantiles(kept, n=4, method="inclusive")
        return q1, q3

    def ms(self) -> str:
        """The median in milliseconds, marked * when contended."""
        return f"{self.median * 1000:.1f}{'*' if self.contended else ''}"


class CpuTimer:
    """Wall-clock seconds of one call."""

    def __call__(self, run: Run) -> float:
        started = time.perf_counter()
        output = run()
        elapsed = time.perf_counter() - started
        del output
        return elapsed


class CudaTimer:
    """Seconds of one call between two CUDA events, synchronised after the call."""

    def __init__(self) -> None:
        self.start = torch.cuda.Event(enable_timing=True)
        self.stop = torch.cuda.Event(enable_timing=True)

    def __call__(self, run: Run) -> float:
        torch.cuda.synchronize()
        self.start.record()
        output = run()
        self.stop.record()
        torch.cuda.synchronize()
        del output
        return self.start.elapsed_time(self.stop) / 1000


class ProcessTimer:
    """CPU seconds this process spent in one call (all its threads).

    On a shared machine this is far steadier than the wall clock, which also
    counts the time other processes held the cores; with one torch thread it is
    the call's own work. With several threads it also counts threads spinning
    while they wait for each other.
    """

    def __call__(self, run: Run) -> float:
        started = time.process_time()
        output = run()
        elapsed = time.process_time() - started
        del output
        return elapsed


def default_timer(clock: str = "wall") -> CpuTimer | CudaTimer | ProcessTimer:
    """CUDA events on a GPU machine; else the wall clock, or the process's CPU time for ``clock="cpu"``."""
    if torch.cuda.is_available():
        return CudaTimer()
    return ProcessTimer() if clock == "cpu" else CpuTimer()


_PROBE = torch.ones(192, 192)


def _reference_workload() -> float:
    """Seconds of a fixed small workload (matrix products at the current thread count)."""
    started = time.perf_counter()
    for _ in range(20):
        torch.mm(_PROBE, _PROBE)
    return time.perf_counter() - started


def _busy_seconds() -> tuple[float, float]:
    """(all processes', this process's and its children's) CPU seconds so far."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
        machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        machine = float("nan")
    t = os.times()
    return machine, t.user + t.system + t.children_user + t.children_system


def wait_for_quiet(max_wait_s: float, window_s: float = 0.5) -> None:
    """Waits (at most ``max_wait_s``) until other processes use less than ``QUIET_SHARE`` of the CPUs."""
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        machine0, ours0 = _busy_seconds()
        time.sleep(window_s)
        machine1, ours1 = _busy_seconds()
        if ((machine1 - machine0) - (ours1 - ours0)) / (window_s * (os.cpu_count() or 1)) < QUIET_SHARE:
            return


def time_interleaved(
    runs: dict[str, Run],
    reps: int,
    warmup: int = 1,
    *,
    timer: Callable[[Run], float] | None = None,
    seed: int = 0,
    wait_quiet_s: float = 0.0,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Times each function ``reps`` times after ``warmup`` untimed rounds, interleaved round by round.

    Args:
        runs: the compared functions, by name; each runs one complete call.
        reps: timed rounds.
        warmup: untimed rounds first (first-call costs, caches, allocators).
        timer: how one call is timed (when None: :func:`default_timer` of ``clock``).
        seed: of the shuffled order of each round.
        wait_quiet_s: before each round, wait up to this long for other processes to leave the CPUs.
        clock: "wall" (wall clock) or "cpu" (this process's CPU time), on CPUs.

    Returns:
        The timing of each function, with the contention of every round.
    """
    timer = timer or default_timer(clock)
    order = list(runs)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in order}
    probes: list[float] = []
    others: list[float] = []
    loads: list[float] = []
    gc.collect()
    gc.freeze()  # what exists now is never collected again: collections before each call stay cheap
    try:
        for index in range(warmup + reps):
            rng.shuffle(order)
            if wait_quiet_s:
                wait_for_quiet(wait_quiet_s)
            probe = _reference_workload()
            machine0, ours0 = _busy_seconds()
            started = time.perf_counter()
            for name in order:
                gc.collect()
                elapsed = timer(runs[name])
                if index >= warmup:
                    samples[name].append(elapsed)
            seconds = time.perf_counter() - started
            machine1, ours1 = _busy_seconds()
            share = max(0.0, ((machine1 - machine0) - (ours1 - ours0)) / (seconds * (os.cpu_count() or 1)))
            kind = "warm-up" if index < warmup else "round"
            log(f"  {kind} {index + 1 if index < warmup else index - warmup + 1}: {seconds:.1f} s, others {share:.0%}")
            if index >= warmup:
                probes.append(probe)
                others.append(share)
                loads.append(load_average())
    finally:
        gc.unfreeze()
    rounds = Rounds(tuple(probes), tuple(others), tuple(loads))
    return {name: Timing(tuple(values), rounds) for name, values in samples.items()}


# ----------------------------------------------------------------------------- agreement of maps


@dataclass(frozen=True)
class Agreement:
    """How closely two stacks of maps in [0, 1] agree."""

    correlation: float
    max_abs_difference: float

    @property
    def ok(self) -> bool:
        return self.correlation >= MIN_CORRELATION and self.max_abs_difference <= MAX_ABS_DIFFERENCE

    def __str__(self) -> str:
        return f"{'yes' if self.ok else 'NO'} ({self.correlation:.5f} / {self.max_abs_difference:.1e})"


def common_maps(raw: Tensor | np.ndarray, size: tuple[int, int]) -> Tensor:
    """Any method's maps ``(..., h, w)`` after the same ReLU, bilinear upsampling to ``size`` and min-max scaling."""
    maps = torch.as_tensor(np.asarray(raw) if isinstance(raw, np.ndarray) else raw.detach().cpu()).float()
    maps = F.relu(maps.reshape(-1, *maps.shape[-2:]))  # (K, h, w)
    if tuple(maps.shape[-2:]) != size:
        maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    low = maps.flatten(-2).amin(-1)[:, None, None]
    high = maps.flatten(-2).amax(-1)[:, None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


def agreement(reference: Tensor, other: Tensor) -> Agreement:
    """Pearson correlation and largest absolute difference of two equally shaped stacks of maps."""
    a, b = reference.flatten().double(), other.flatten().double()
    return Agreement(float(torch.corrcoef(torch.stack([a, b]))[0, 1]), float((a - b).abs().max()))


# ----------------------------------------------------------------------------- command line


def parser(description: str, reps: int = 7) -> argparse.ArgumentParser:
    """The options every experiment shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--reps", type=int, default=reps, help="timed rounds (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and cases: a few minutes on 2 cores")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each round, wait up to this long for other processes to leave the CPUs")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time calls by the wall clock or by this process's CPU time (steadier on a shared machine)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--markdown", type=Path, help="also write the report to this file")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    return p


def apply_threads(args: argparse.Namespace) -> None:
    """Sets torch's thread count from ``--threads``."""
    if args.threads:
        torch.set_num_threads(args.threads)


def layout_of(x: Tensor) -> str:
    """"channels_last" or "NCHW": how a 4-D tensor lies in memory."""
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return "channels_last"
    return "NCHW"


def ratios(timings: dict[str, Timing], numerator: str, denominator: str) -> tuple[float, float]:
    """(ratio of medians, ratio of best times) of two timed functions."""
    return (
        timings[numerator].median / timings[denominator].median,
        timings[numerator].best / timings[denominator].best,
    )
