"""One evaluation run: annotations in, ``results.csv``, ``summary.json`` and ``report.html`` out.

A run's folder remembers its settings (``run.json``); the same command run again
resumes it: images already in ``results.csv`` are skipped, and the summary and
report cover every row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradcam.backbone import Backbone
from gradcam.errors import GradCAMError
from gradcam.evaluate.annotations import Annotations, read_annotations
from gradcam.evaluate.local import BatchEvaluator, BatchHook, ResultsWriter, plan_batches, read_results, run_local
from gradcam.evaluate.report import summary, write_report
from gradcam.explainer import Explainer

ENGINES = ("local", "ray")
#: Settings that must match for a run to resume in the same folder.
_SAME = ("model", "layer", "weights", "head", "input", "threshold", "annotations")


def evaluate_dataset(
    images: str | os.PathLike[str],
    annotations: str | os.PathLike[str],
    out: str | os.PathLike[str],
    factory: Callable[[], Backbone],
    *,
    threshold: float = 0.15,
    batch_size: int = 16,
    device: str = "cpu",
    engine: str = "local",
    ray_address: str | None = None,
    ray_options: dict[str, Any] | None = None,
    limit: int | None = None,
    progress: bool = True,
    report: bool = True,
    on_batch: BatchHook | None = None,
) -> tuple[dict[str, Any], Annotations]:
    """Evaluates a dataset and writes its results into ``out``; resumes a run left there.

    Args:
        images: the folder the annotations' image names are relative to.
        annotations: a CSV file, an XML file or a folder of XML files.
        out: the output folder (created).
        factory: builds the backbone (in this process, and in each Ray actor).
        threshold: box threshold, a fraction of the map's maximum.
        batch_size: images per planned batch.
        device: "cpu" or "cuda".
        engine: "local" or "ray".
        ray_address: the Ray cluster to join; None starts a local Ray.
        ray_options: extra keyword arguments of :func:`gradcam.evaluate.ray_engine.run_ray`.
        limit: evaluate only the first ``limit`` annotated images.
        progress: show a progress bar.
        report: write ``report.html`` with pictures (explains a few images again).
        on_batch: called after each batch of the local engine is written.

    Returns:
        The summary (as in ``summary.json``) and the annotations read.

    Raises:
        GradCAMError: bad settings, or a folder holding another run.
    """
    if engine not in ENGINES:
        raise GradCAMError(f"Unknown engine {engine!r}; use local or ray.")
    if not 0.0 <= threshold <= 1.0:
        raise GradCAMError(f"--threshold must be in [0, 1], got {threshold}.")
    if batch_size < 1:
        raise GradCAMError(f"--batch-size must be at least 1, got {batch_size}.")
    if engine == "ray":
        from gradcam.evaluate.ray_engine import import_ray

        import_ray()  # fails in one line, before any work, when Ray is missing
    start = time.perf_counter()
    backbone = factory()
    found = read_annotations(annotations, images, backbone.categories)
    samples = list(found.samples[:limit] if limit is not None else found.samples)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": backbone.title,
        "layer": backbone.target_layer,
        "weights": backbone.weights,
        "head": backbone.head.value,
        "input": {
            "short_side": backbone.short_side,
            "size": list(backbone.fixed_size) if backbone.fixed_size else None,
            "channels": backbone.channels,
            "mean": list(backbone.mean),
            "std": list(backbone.std),
        },
        "threshold": threshold,
        "annotations": str(Path(annotations).resolve()),
        "engine": engine,
        "batch_size": batch_size,
        "device": device,
    }
    _check_same_run(folder / "run.json", settings)
    explainer = Explainer(backbone)
    with ResultsWriter(folder / "results.csv") as writer:
        batches = plan_batches([s for s in samples if s.image not in writer.done], batch_size)
        if engine == "local":
            run_local(BatchEvaluator(explainer, threshold), batches, writer, progress=progress, on_batch=on_batch)
        else:
            from gradcam.evaluate.ray_engine import run_ray

            options = {"device": device, "address": ray_address, "progress": progress, **(ray_options or {})}
            run_ray(factory, batches, writer, threshold=threshold, **options)
    wanted = {s.image for s in samples}
    results = [r for r in read_results(folder / "results.csv") if r.image in wanted]
    figures = summary(results, settings, time.perf_counter() - start, len(found.problems))
    write_report(folder, results, figures, found.problems, {s.image: s for s in samples}, explainer if report else None)
    return figures, found


def _check_same_run(path: Path, settings: dict[str, Any]) -> None:
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in _SAME if before.get(k) != settings[k]]
        if changed:
            raise GradCAMError(
                f"{path.parent} holds a run with other settings ({', '.join(changed)}); use another --out or delete it."
            )
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
