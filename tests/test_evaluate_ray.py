"""The Ray engine on a local two-CPU Ray: the local engine's rows, and a worker that dies is retried."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gradcam.backbone import Backbone
from gradcam.evaluate.local import read_results
from gradcam.evaluate.ray_engine import start_local_ray
from gradcam.evaluate.run import evaluate_dataset

from .conftest import TinyNet
from .evaluate_data import Dataset, make_dataset

pytestmark = pytest.mark.slow  # a local Ray

ray = pytest.importorskip("ray", reason="Ray is installed by requirements-test.txt")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    start_local_ray(num_cpus=2, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("scenes"), count=16)


class CrashOnce(TinyNet):
    """TinyNet whose worker process dies on its first real batch outside the test process (once: a marker file)."""

    def __init__(self, marker: str, parent: int) -> None:
        super().__init__()
        self.marker, self.parent = marker, parent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.parent and x.shape[-1] != 64 and not os.path.exists(self.marker):  # 64: the warm-up
            Path(self.marker).touch()
            os._exit(1)
        return super().forward(x)


def tiny(state: dict[str, torch.Tensor], like: Backbone, marker: str | None = None, parent: int = 0) -> Backbone:
    """The tiny backbone rebuilt from its weights (optionally the crashing kind), in any process."""
    model = CrashOnce(marker, parent) if marker else TinyNet()
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return Backbone(
        like.name, like.title, model, like.target_layer, like.categories, like.mean, like.std, like.weights, False
    )


def test_ray_rows_equal_local_rows(
    local_ray: None, dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = functools.partial(tiny, tiny_backbone.model.state_dict(), tiny_backbone)
    run = dict(batch_size=4, progress=False, report=False)
    evaluate_dataset(dataset.images, dataset.csv, tmp_path / "local", factory, **run)
    ray_data = logging.getLogger("ray.data")  # Ray Data's handlers print to the terminal; this one listens beside them
    ray_data.addHandler(caplog.handler)
    try:
        figures, _ = evaluate_dataset(dataset.images, dataset.csv, tmp_path / "ray", factory, engine="ray", **run)
    finally:
        ray_data.removeHandler(caplog.handler)
    # Ray Data's own progress lines and notes would bury ours (the progress bar, the figures).
    printed = " ".join(r.getMessage() for r in caplog.records)
    assert "Starting execution" not in printed and "Progress" not in printed and "execution finished" not in printed
    assert figures["engine"] == "ray" and figures["images"] == 16
    local = {r.image: r for r in read_results(tmp_path / "local" / "results.csv")}
    distributed = read_results(tmp_path / "ray" / "results.csv")
    assert len(distributed) == 16
    assert {r.image: r for r in distributed} == local


def counting_threads(record: str, state: dict[str, torch.Tensor], like: Backbone) -> Backbone:
    """The tiny backbone, after noting the torch threads its actor computes with."""
    Path(record, str(os.getpid())).write_text(str(torch.get_num_threads()))
    return tiny(state, like)


def test_actors_compute_with_the_local_engines_threads(
    local_ray: None, dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path
) -> None:
    # The CPU kernels' sums depend on the thread count (Ray would give an actor of half a CPU one thread):
    # with other threads than the local engine's, real models' rows differ in their last digits.
    record = tmp_path / "threads"
    record.mkdir()
    factory = functools.partial(counting_threads, str(record), tiny_backbone.model.state_dict(), tiny_backbone)
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        run = dict(engine="ray", batch_size=4, progress=False, report=False)
        options = {"actors": 1, "cpus_per_actor": 1.0}  # a pool of one, as asked
        evaluate_dataset(dataset.images, dataset.csv, tmp_path / "out", factory, ray_options=options, **run)
    finally:
        torch.set_num_threads(previous)
    actors = [f for f in record.iterdir() if f.name != str(os.getpid())]  # the driver builds the model too
    assert [int(f.read_text()) for f in actors] == [3]
    assert len(read_results(tmp_path / "out" / "results.csv")) == 16


def test_a_dead_worker_is_retried_without_lost_or_duplicated_rows(
    local_ray: None, dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed"
    factory = functools.partial(tiny, tiny_backbone.model.state_dict(), tiny_backbone, str(marker), os.getpid())
    figures, _ = evaluate_dataset(
        dataset.images, dataset.csv, tmp_path / "out", factory, engine="ray", batch_size=4, progress=False, report=False
    )
    assert marker.exists()  # a worker did die
    rows = read_results(tmp_path / "out" / "results.csv")
    assert sorted(r.image for r in rows) == sorted(dataset.boxes)
    assert figures["images"] == 16 and figures["failed"] == 0
