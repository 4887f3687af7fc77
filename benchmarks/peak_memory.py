"""Peak memory of one function, each measured in a fresh process (shared by the benchmarks).

An experiment runs itself again as a child (``--memory-child NAME``); the child
builds only what that function needs, calls it, and prints its peak RSS, read
from ``/proc`` (see :func:`memory_child` for why not ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from harness import Run, log

RESULT_PREFIX = "RESULT "


@dataclass(frozen=True)
class Memory:
    """Peak resident memory of a fresh process that built and ran one function.

    Attributes:
        built_mib: peak RSS while building what the function needs.
        peak_mib: the process's whole peak RSS.
        growth_mib: how far the calls raised the RSS above what the process held before them.
    """

    built_mib: float
    peak_mib: float
    growth_mib: float


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> bool:
    """Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_child(make: Callable[[], Run], runs: int = 2) -> None:
    """In the child process: builds one function, calls it ``runs`` times, prints a :class:`Memory`.

    ``resource.getrusage().ru_maxrss`` cannot be used: Linux carries the parent's
    peak over into a child through fork and exec, so every child would report the
    benchmark's own peak. The peak of this process alone is ``VmHWM``, reset after
    building so that the calls' own peak is not hidden by a higher one while building.
    """
    run = make()
    gc.collect()
    built = _status_mib("VmHWM")
    reset = _reset_peak()
    before = _status_mib("VmRSS")
    for _ in range(runs):
        output = run()
        del output
    after = _status_mib("VmHWM")
    growth = after - before if reset else max(0.0, after - built)  # without a reset: a lower bound
    result = {"built_mib": built, "peak_mib": max(built, after), "growth_mib": growth}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def measure_memory(
    script: Path, names: Sequence[str], extra: Sequence[str] = (), timeout: float = 300
) -> dict[str, Memory]:
    """Runs ``script --memory-child NAME [extra]`` once per name, each in a fresh process.

    The children fix glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_``): otherwise
    freed tensors may stay resident and the peak would depend on allocation history.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    results: dict[str, Memory] = {}
    for name in names:
        threads = str(torch.get_num_threads())
        command = [sys.executable, str(script), "--memory-child", name, "--threads", threads, *extra]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        except subprocess.TimeoutExpired:
            log(f"  memory of {name}: gave up after {timeout:.0f} s")
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            log(f"  memory of {name} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
            continue
        results[name] = Memory(**json.loads(lines[-1][len(RESULT_PREFIX) :]))
        found = results[name]
        log(f"  memory of {name}: peak {found.peak_mib:.0f} MiB, +{found.growth_mib:.0f} MiB over building")
    return results


def child_or(args: argparse.Namespace, factories: dict[str, Callable[[], Run]]) -> bool:
    """In a ``--memory-child`` process runs the asked factory's memory measurement; True if it did."""
    if not args.memory_child:
        return False
    memory_child(factories[args.memory_child])
    return True
