"""The Ray engine: the same planned batches, evaluated by a pool of Ray Data actors.

Each row of the Ray dataset is one planned batch (see
:func:`gradcam.evaluate.local.plan_batches`); ``map_batches`` hands one row at a
time to an actor that built the model once (:class:`EvaluatorActor`) and runs
the same :class:`gradcam.evaluate.local.BatchEvaluator` as the local engine, with
as many torch threads as the local engine uses here (on CPUs), so the rows are
the same (the CPU kernels' sums depend on the thread count: EfficientNet-Lite0's
activations differ by up to 7e-5 between one thread and two). The driver writes
the rows of each batch to ``results.csv`` as Ray streams them back; a rerun skips the images already
written. An actor whose process dies is restarted by Ray and its batch retried
(Ray Data's actor pools set ``max_restarts`` and ``max_task_retries`` to
unlimited by default; passing them through ``ray_remote_args`` is deprecated
from Ray 2.60); the rows of a batch reach the driver
only once, when the batch has finished.

Ray is optional: it is imported only here, when this engine is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import site
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gradcam.backbone import Backbone
from gradcam.errors import GradCAMError
from gradcam.evaluate.annotations import Sample
from gradcam.evaluate.local import BatchEvaluator, ResultsWriter, as_arrays
from gradcam.evaluate.metrics import ImageResult
from gradcam.explainer import Explainer

INSTALL_HINT = "The Ray engine needs Ray: pip install -r requirements-ray.txt"

BackboneFactory = Callable[[], Backbone]


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise GradCAMError(INSTALL_HINT) from exc
    return ray


_PACKAGE = Path(__file__).resolve().parents[1]


def start_local_ray(num_cpus: int | None = None, *, log_to_driver: bool = True) -> None:
    """Starts a Ray on this machine whose workers import ``gradcam`` from where this process does.

    Workers inherit this process's environment, and Ray adds the working
    directory to their ``sys.path``: when ``gradcam`` is found through either
    (or is installed), no job-wide ``runtime_env`` is set. That matters for
    start-up: the workers Ray starts ahead of time, with Ray itself, serve only
    jobs without one, so the actors do not wait for new processes (about
    1.5 s less on 2 cores). Otherwise ``PYTHONPATH`` is extended for the workers.

    Args:
        num_cpus: CPUs Ray may use (default: all).
        log_to_driver: print the workers' output here.
    """
    ray = import_ray()
    root = _PACKAGE.parent
    inherited = [Path.cwd(), *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    inherited += [Path(p) for p in site.getsitepackages()]
    options: dict[str, Any] = {}
    if not any(p.resolve() == root for p in inherited):
        paths = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": paths}}
    quiet = logging.WARNING  # Ray's INFO lines would bury our progress bar
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver, logging_level=quiet, **options)


def _quiet_ray_data(ray: Any) -> None:
    """Ray Data without its progress bars and notes (ours counts the images done); its warnings stay."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.util.debug.log_once("ray_data_progress_manager_disabled")  # spends the one notice that they are off
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class EvaluatorActor:
    """A Ray Data actor: builds the model once, then evaluates one planned batch per call.

    Args:
        factory: builds the backbone (for example a ``functools.partial`` of
            :func:`gradcam.load_backbone`); called once, in the actor.
        threshold: box threshold, a fraction of the map's maximum.
        decoders: threads decoding the images of a batch.
        threads: torch threads the model computes with (default: as Ray set them up).
        methods: the methods compared (see :class:`gradcam.evaluate.local.BatchEvaluator`).
        trust: also run the trust check of each row's map.
    """

    def __init__(
        self,
        factory: BackboneFactory,
        threshold: float,
        decoders: int = 2,
        threads: int | None = None,
        methods: Sequence[str] = ("gradcam",),
        trust: bool = False,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.evaluator = BatchEvaluator(Explainer(factory(), method=methods[0]), threshold, methods, trust)
        self.pool = ThreadPoolExecutor(max(1, decoders), thread_name_prefix="decode")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results: list[ImageResult] = []
        for text in batch["samples"]:
            samples = [Sample.from_json(s) for s in json.loads(str(text))]
            results += self.evaluator.evaluate(list(self.pool.map(self.evaluator.decode, samples)))
        return as_arrays(results)


def run_ray(
    factory: BackboneFactory,
    batches: Sequence[Sequence[Sample]],
    writer: ResultsWriter,
    *,
    threshold: float,
    device: str = "cpu",
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    ray_init: bool = True,
    methods: Sequence[str] = ("gradcam",),
    trust: bool = False,
) -> int:
    """Evaluates planned batches with Ray Data, writing each batch's rows as they arrive.

    Args:
        factory: builds the backbone in each actor.
        batches: the plan; images whose rows are all in ``writer.done`` are skipped.
        writer: where rows go.
        threshold: box threshold.
        device: "cpu", or "cuda" for one GPU per actor.
        actors: actor pool size (default: one per GPU with cuda, else 2).
        cpus_per_actor: CPUs reserved per actor (default 1 with cuda; 0.5 on CPUs,
            so that Ray's read tasks still find a CPU on a small machine).
        address: a cluster to join ("auto", "ray://host:10001"); None starts a local Ray.
        num_cpus: CPUs of a local Ray (default: all).
        threads: torch threads of each actor's model (default on CPUs: this
            process's, those the local engine uses, so that the rows are equal;
            with cuda, Ray's: the model is on the GPU).
        progress: show a progress bar.
        ray_init: connect to Ray here (and shut the local one down after);
            False when the caller already did.
        methods: the methods compared, one row each per image.
        trust: also run the trust check of each row's map.

    Returns:
        How many rows were written.
    """
    ray = import_ray()
    todo = [[s for s in batch if not writer.finished(s, methods)] for batch in batches]
    todo = [batch for batch in todo if batch]
    if not todo:
        return 0
    started = False
    if ray_init and not ray.is_initialized():
        if address is None:
            start_local_ray(num_cpus)
        else:
            ships = {"py_modules": [str(_PACKAGE)]}  # gradcam, to the cluster's workers
            ray.init(address=address, runtime_env=ships, logging_level=logging.WARNING)
        started = True
    try:
        gpus = 1.0 if device.startswith("cuda") else 0.0
        if actors is None:
            actors = max(1, int(ray.cluster_resources().get("GPU", 0))) if gpus else 2
        if threads is None and not gpus:
            threads = torch.get_num_threads()
        if cpus_per_actor is None:
            cpus_per_actor = 1.0 if gpus else 0.5
        _quiet_ray_data(ray)
        rows = [{"samples": json.dumps([s.to_json() for s in batch])} for batch in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EvaluatorActor,
            batch_size=1,  # one planned batch per call: the same groups as the local engine
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "factory": factory, "threshold": threshold, "threads": threads, "methods": tuple(methods),
                "trust": trust,
            },
            num_cpus=cpus_per_actor,
            num_gpus=gpus,
        )
        written = 0
        with tqdm(total=sum(map(len, todo)), unit="image", disable=not progress, desc="evaluate (ray)") as bar:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                columns = ImageResult.columns()
                results = [
                    ImageResult.from_row({c: str(batch[c][i]) for c in columns}) for i in range(len(batch["image"]))
                ]
                written += writer.write(results)
                bar.update(len({r.image for r in results}))
        return written
    finally:
        if started:
            ray.shutdown()
