"""One evaluation run: its settings are checked before any work, and a folder holds one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradcam import Backbone
from gradcam.errors import GradCAMError
from gradcam.evaluate.run import evaluate_dataset

from .evaluate_data import make_dataset


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ({"engine": "spark"}, "Unknown engine 'spark'; use local or ray."),
        ({"threshold": 1.5}, r"--threshold must be in \[0, 1\], got 1.5."),
        ({"batch_size": 0}, "--batch-size must be at least 1, got 0."),
    ],
)
def test_bad_settings_are_refused_before_the_model_is_built(tmp_path: Path, setting, says):
    built: list[int] = []

    def factory() -> Backbone:
        built.append(1)
        raise AssertionError("the model was built")

    with pytest.raises(GradCAMError, match=says):
        evaluate_dataset(tmp_path, tmp_path / "a.csv", tmp_path / "out", factory, progress=False, **setting)
    assert built == [] and not (tmp_path / "out").exists()


def test_a_run_remembers_its_settings_and_a_limited_run_covers_its_first_images(
    tiny_backbone: Backbone, tmp_path: Path
):
    data = make_dataset(tmp_path / "data", count=6)
    figures, found = evaluate_dataset(
        data.images, data.csv, tmp_path / "out", lambda: tiny_backbone, limit=3, progress=False, report=False
    )
    assert figures["images"] == 3 and len(found.samples) == 6
    settings = json.loads((tmp_path / "out" / "run.json").read_text())
    assert settings["model"] == "TinyNet" and settings["threshold"] == 0.15 and settings["engine"] == "local"
    assert settings["annotations"] == str(data.csv.resolve())
