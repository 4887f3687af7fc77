"""Markdown for the benchmarks' reports: conditions, tables, verdicts (printed on stdout)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from harness import load_average


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def conditions(**details: object) -> str:
    """One paragraph of the conditions of a run: machine, threads, versions, plus ``details``."""
    cpu = f"{cpu_model()}, {os.cpu_count()} logical CPUs"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu
    parts = [
        f"device: {device}",
        f"torch {torch.__version__} with {torch.get_num_threads()} threads",
        f"Python {platform.python_version()}",
        f"load average at start {load_average():.2f}",
    ]
    parts += [f"{key.replace('_', ' ')}: {value}" for key, value in details.items()]
    return "; ".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; columns of numbers (a header ending in a unit, or starting "x ") are right-aligned."""
    numeric = [h.startswith("x ") or h.endswith(("ms", "MiB", " s", " x", "%")) for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, limit: float, *, at_most: bool = True, contended: bool = False) -> str:
    """"met" or "MISSED" for a target, noting contention."""
    ok = value <= limit if at_most else value >= limit
    return ("met" if ok else "MISSED") + (" (contended: rerun on a quiet machine)" if contended else "")


@dataclass
class Report:
    """The markdown an experiment prints (stdout) and may also write to a file."""

    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def emit(self, path: Path | None = None) -> str:
        text = "\n\n".join([f"### {self.title}", *self.parts]) + "\n"
        print(text, flush=True)
        if path is not None:
            path.write_text(text)
        return text
