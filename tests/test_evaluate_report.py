"""What an evaluation says: summary.json for machines, report.html for people (sentences, cases, problems)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from gradcam import Backbone, Explainer
from gradcam.evaluate import words as evaluation_words
from gradcam.evaluate.annotations import GroundTruth, Problem, Sample
from gradcam.evaluate.metrics import IOU_THRESHOLD, POINTING_TOLERANCE, ImageResult
from gradcam.evaluate.report import summary, write_report

from .conftest import make_scene

SETTINGS = {"model": "TinyNet <b>", "layer": "features", "threshold": 0.15}


def _rows() -> list[ImageResult]:
    return [
        ImageResult("good.png", labels="0", label_names="square", top5="0;1", top5_names="square;disc",
                    top1_probability=0.9, top1_correct=1, top5_correct=1, top1_localized=1, top5_localized=1,
                    pointing=1.0, energy_in_box=0.8, iou=0.7, gradcam_box="1 1 20 20", truth_box="2 2 22 22"),
        ImageResult("bad.png", labels="1", label_names="disc", top5="0;1", top5_names="square;disc",
                    top1_probability=0.6, top5_correct=1, iou=0.1, gradcam_box="30 30 40 40", truth_box="2 2 12 12"),
        ImageResult("broken.png", error="cannot be read"),
    ]


def test_the_summary_counts_failures_and_writes_nothing_evaluated_as_null():
    figures = summary(_rows(), SETTINGS, 12.3456, problems=2)
    assert (figures["images"], figures["failed"], figures["annotation_problems"]) == (2, 1, 2)
    assert figures["top1_accuracy"] == 0.5 and figures["pointing_accuracy"] == 0.5 and figures["seconds"] == 12.346
    assert figures["model"] == "TinyNet <b>"
    empty = summary([], SETTINGS, 0.0, problems=0)
    assert empty["images"] == 0 and empty["top1_accuracy"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in empty.values())
    json.dumps(empty, allow_nan=False)


def test_the_report_says_the_figures_and_lists_the_problems_escaped(tmp_path: Path):
    figures = summary(_rows(), SETTINGS, 1.0, problems=60)
    problems = [Problem("a.csv", f"line {i}", "<script>.png", "no usable box; image skipped") for i in range(60)]
    write_report(tmp_path, _rows(), figures, problems, {}, explainer=None)
    assert json.loads((tmp_path / "summary.json").read_text()) == figures
    assert (tmp_path / "problems.txt").read_text().count("\n") == 60
    page = (tmp_path / "report.html").read_text()
    for sentence in evaluation_words.evaluation(figures, POINTING_TOLERANCE, IOU_THRESHOLD):
        assert sentence.html in page
    assert "Does TinyNet &lt;b&gt; look at the object?" in page and "<script>" not in page
    assert "... and 10 more in problems.txt." in page and "No pictures." in page


def test_the_best_and_worst_cases_are_pictures_of_their_own(tiny_backbone: Backbone, tmp_path: Path):
    rng = np.random.default_rng(4)
    samples = {}
    for name in ("good.png", "bad.png"):
        Image.fromarray(make_scene(rng, (0,)).image).save(tmp_path / name)
        samples[name] = Sample(name, str(tmp_path / name), (GroundTruth(0, (2, 2, 22, 22)),))
    figures = summary(_rows(), SETTINGS, 1.0, problems=0)
    write_report(tmp_path, _rows(), figures, [], samples, Explainer(tiny_backbone))
    page = (tmp_path / "report.html").read_text()
    best, worst = page.split("<h2>Where it found it worst</h2>")
    assert best.count("data:image/png;base64,") == 1 and "good.png" in best.split("<h2>Where Grad-CAM")[1]
    assert worst.count("data:image/png;base64,") == 1 and "bad.png" in worst and "broken.png" not in page
