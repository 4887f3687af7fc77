"""The local engine: batched maps equal single explanations, known answers, resumed runs."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradcam import Explainer
from gradcam.backbone import Backbone
from gradcam.errors import GradCAMError
from gradcam.evaluate.annotations import GroundTruth, Sample, read_annotations
from gradcam.evaluate.local import BatchEvaluator, ResultsWriter, plan_batches, read_results
from gradcam.evaluate.metrics import ImageResult
from gradcam.evaluate.run import evaluate_dataset

from .conftest import SHAPES, make_scene
from .evaluate_data import Dataset, make_dataset
from .helpers import in_child

HEADER = "image,label,x0,y0,x1,y1\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("scenes"))


def test_batched_maps_equal_single_explanations(dataset: Dataset, tiny_backbone: Backbone) -> None:
    explainer = Explainer(tiny_backbone)
    evaluator = BatchEvaluator(explainer, 0.15)
    samples = read_annotations(dataset.csv, dataset.images, SHAPES).samples[:12]
    decoded = [evaluator.decode(s) for s in samples]
    sizes = {d.size for d in decoded}
    assert len(sizes) == 2  # the dataset mixes 64 and 80 pixel images
    for size in sizes:
        group = [d for d in decoded if d.size == size]
        _, maps = evaluator.class_maps(group, [d.sample.objects for d in group])
        for item, by_class in zip(group, maps):
            assert set(by_class) == {o.label for o in item.sample.objects}  # the annotated classes only
            for label, cam in by_class.items():
                alone = explainer.explain(item.sample.path, label).cam
                np.testing.assert_allclose(cam, alone, atol=1e-5)


def test_images_with_several_classes_get_each_annotated_map(tiny_backbone: Backbone, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    evaluator = BatchEvaluator(Explainer(tiny_backbone), 0.15)
    samples = []
    for i, shapes in enumerate([(0, 1), (1,), (1, 0), (0,)]):  # two classes, one, two, one: padded to one width
        scene = make_scene(rng, shapes)
        path = tmp_path / f"two{i}.png"
        Image.fromarray(scene.image).save(path)
        samples.append(Sample(path.name, str(path), tuple(GroundTruth(c, scene.objects[c]) for c in shapes)))
    decoded = [evaluator.decode(s) for s in samples]
    _, maps = evaluator.class_maps(decoded, [s.objects for s in samples])
    for sample, by_class in zip(samples, maps):
        assert set(by_class) == {o.label for o in sample.objects}
        for label, cam in by_class.items():
            np.testing.assert_allclose(cam, evaluator.explainer.explain(sample.path, label).cam, atol=1e-5)


def test_known_answers_and_outputs(dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path) -> None:
    figures, found = evaluate_dataset(
        dataset.images, dataset.csv, tmp_path, lambda: tiny_backbone, batch_size=5, progress=False
    )
    assert found.problems == ()
    assert figures["images"] == 24 and figures["failed"] == 0
    assert figures["top1_accuracy"] >= 0.9 and figures["top5_accuracy"] == 1.0  # two classes: always in the top 5
    assert figures["pointing_accuracy"] >= 0.8  # the tiny model looks at its shapes
    assert figures["top5_localization_error"] <= figures["top1_localization_error"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in ("images", "failed", "top1_accuracy", "top5_accuracy", "top1_localization_error",
                "top5_localization_error", "pointing_accuracy", "energy_in_box", "model", "layer", "threshold",
                "engine", "seconds"):
        assert key in saved
    assert saved["model"] == "TinyNet" and saved["engine"] == "local" and saved["threshold"] == 0.15
    rows = read_results(tmp_path / "results.csv")
    assert sorted(r.image for r in rows) == sorted(dataset.boxes)
    for row in rows:
        label, box = dataset.boxes[row.image]
        assert row.labels == str(label) and row.truth_box == " ".join(map(str, box))
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 8  # four best, four worst
    assert "first guess was right for" in page and "green box" in page
    assert re.search(r"<td>mean_iou</td><td>0\.\d{1,4}</td>", page), "the figures table shows raw floats"


def test_csv_and_xml_runs_write_the_same_rows(dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path) -> None:
    for name, source in (("csv", dataset.csv), ("xml", dataset.xml)):
        evaluate_dataset(
            dataset.images, source, tmp_path / name, lambda: tiny_backbone, batch_size=8, progress=False, report=False
        )
    assert (tmp_path / "csv" / "results.csv").read_text() == (tmp_path / "xml" / "results.csv").read_text()


class Interrupted(Exception):
    pass


def test_a_killed_run_resumes_without_duplicates(dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path) -> None:
    def die_after_two(number: int, results: list[ImageResult]) -> None:
        if number == 1:
            raise Interrupted

    run = dict(batch_size=4, progress=False, report=False)
    with pytest.raises(Interrupted):
        evaluate_dataset(
            dataset.images, dataset.csv, tmp_path / "run", lambda: tiny_backbone, on_batch=die_after_two, **run
        )
    assert len(read_results(tmp_path / "run" / "results.csv")) == 8
    seen: list[str] = []
    figures, _ = evaluate_dataset(dataset.images, dataset.csv, tmp_path / "run", lambda: tiny_backbone,
                                  on_batch=lambda n, rows: seen.extend(r.image for r in rows), **run)
    assert len(seen) == 16  # only the images not done before
    resumed = read_results(tmp_path / "run" / "results.csv")
    assert len(resumed) == len({r.image for r in resumed}) == 24 == figures["images"]
    evaluate_dataset(dataset.images, dataset.csv, tmp_path / "whole", lambda: tiny_backbone, **run)
    whole = {r.image: r for r in read_results(tmp_path / "whole" / "results.csv")}
    assert {r.image: r for r in resumed} == whole


def test_a_line_cut_short_is_dropped_and_redone(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    with ResultsWriter(path) as writer:
        writer.write([ImageResult("a.png"), ImageResult("b.png")])
    path.write_bytes(path.read_bytes()[:-5])  # the process died in the middle of b's row
    with ResultsWriter(path) as writer:
        assert writer.done == {"a.png"}
        assert writer.write([ImageResult("a.png"), ImageResult("b.png")]) == 1
    assert [r.image for r in read_results(path)] == ["a.png", "b.png"]


def test_a_small_run_shows_its_better_half_as_the_best(
    dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path
) -> None:
    evaluate_dataset(
        dataset.images, dataset.csv, tmp_path, lambda: tiny_backbone, batch_size=4, progress=False, limit=4
    )
    page = (tmp_path / "report.html").read_text()
    best, worst = page.split("<h2>Where it found it worst</h2>")
    best = best.split("<h2>Where Grad-CAM found the object best</h2>")[1]
    worst = worst.split("<h2>Annotation problems")[0]
    assert best.count("data:image/png;base64,") == 2 and worst.count("data:image/png;base64,") == 2
    overlap = lambda part: [int(v) for v in re.findall(r"the boxes overlap (\d+)%", part)]  # noqa: E731
    assert min(overlap(best)) >= max(overlap(worst))


def test_another_run_in_the_folder_is_refused(dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path) -> None:
    run = dict(batch_size=8, progress=False, report=False, limit=2)
    evaluate_dataset(dataset.images, dataset.csv, tmp_path, lambda: tiny_backbone, **run)
    with pytest.raises(GradCAMError, match=r"holds a run with other settings \(threshold\)"):
        evaluate_dataset(dataset.images, dataset.csv, tmp_path, lambda: tiny_backbone, threshold=0.3, **run)


def test_bad_images_and_boxes_outside_are_rows_not_crashes(
    dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path
) -> None:
    (dataset.images / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    annotations = tmp_path / "ann.csv"
    annotations.write_text(
        HEADER + "img000.png,square,-10,-10,500,500\nimg001.png,disc,900,900,950,950\ndamaged.png,square,1,1,5,5\n"
    )
    figures, _ = evaluate_dataset(dataset.images, annotations, tmp_path / "out", lambda: tiny_backbone, progress=False)
    rows = {r.image: r for r in read_results(tmp_path / "out" / "results.csv")}
    assert rows["img000.png"].notes == "1 box(es) cut to the 80x80 image" and not rows["img000.png"].error
    assert rows["img000.png"].truth_box == "0 0 79 79"
    assert rows["img001.png"].error == "no annotated box lies inside the image"
    assert "not an image we can read" in rows["damaged.png"].error
    assert (figures["images"], figures["failed"]) == (1, 2)


def test_plan_groups_sizes_and_is_stable(dataset: Dataset) -> None:
    samples = read_annotations(dataset.csv, dataset.images, SHAPES).samples
    plan = plan_batches(samples, 8)
    assert [len(b) for b in plan] == [8, 8, 8]
    assert plan == plan_batches(tuple(reversed(samples)), 8)
    with open(dataset.csv) as file:
        assert sum(1 for _ in csv.reader(file)) == 25


# --- results.csv: no formulas for a spreadsheet, the same names read back -----------------------

FORMULAS = ['=HYPERLINK("http://example.com","click")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "'quoted"]


def test_text_cells_a_spreadsheet_would_run_are_escaped_and_read_back_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    rows = [ImageResult(f"{text}.png", label_names=text, top1_probability=0.25, error=text) for text in FORMULAS]
    with ResultsWriter(path) as writer:
        assert writer.write([*rows, ImageResult("plain.png", top1_probability=0.5)]) == len(FORMULAS) + 1
    with path.open(newline="", encoding="utf-8") as file:
        cells = [cell for row in list(csv.reader(file))[1:] for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))], "a formula is left"
    assert "'=HYPERLINK(\"http://example.com\",\"click\").png" in cells and "''quoted" in cells
    assert "0.250000" in cells and "plain.png" in cells  # numbers and plain text as they were
    assert read_results(path) == [*rows, ImageResult("plain.png", top1_probability=0.5)]
    with ResultsWriter(path) as again:  # the resume reader knows the original names
        assert again.done == {f"{text}.png" for text in FORMULAS} | {"plain.png"}
        assert again.write(rows) == 0


def test_a_resumed_run_skips_images_whose_names_start_like_formulas(
    dataset: Dataset, tiny_backbone: Backbone, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    names = ["=cmd.png", "-1.png", "@x.png", "+y.png", "ok.png"]
    for index, name in enumerate(names):
        (images / name).write_bytes((dataset.images / f"img00{index}.png").read_bytes())
    annotations = tmp_path / "ann.csv"
    annotations.write_text(HEADER + "".join(f"{name},square,1,1,20,20\n" for name in names))
    run = dict(batch_size=2, progress=False, report=False)
    evaluate_dataset(images, annotations, tmp_path / "out", lambda: tiny_backbone, **run)
    seen: list[str] = []
    figures, _ = evaluate_dataset(images, annotations, tmp_path / "out", lambda: tiny_backbone,
                                  on_batch=lambda n, rows: seen.extend(r.image for r in rows), **run)
    assert seen == [] and figures["images"] == 5
    assert sorted(r.image for r in read_results(tmp_path / "out" / "results.csv")) == sorted(names)


# --- files, not devices --------------------------------------------------------------------------


def _plan_and_decode(sample: Sample, evaluator: BatchEvaluator) -> tuple[list[list[str]], str]:
    plan = plan_batches([sample], 4)  # reads the image's header to order the work
    return [[s.image for s in batch] for batch in plan], evaluator.decode(sample).error


@pytest.mark.slow  # a child process
def test_an_image_that_became_a_pipe_or_a_device_is_a_row_error_not_a_hang(
    tiny_backbone: Backbone, tmp_path: Path
) -> None:
    # Annotations are read first; a file replaced afterwards is met by the planning and the decoding.
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    evaluator = BatchEvaluator(Explainer(tiny_backbone), 0.15)  # built here: torch's threads do not survive a fork
    for name, kind in (("pipe.png", "a pipe (FIFO)"), ("zero.png", "a device")):
        sample = Sample(name, str(tmp_path / name), (GroundTruth(0, (1, 1, 5, 5)),))
        child = in_child(_plan_and_decode, sample, evaluator, timeout=30, memory_mib=500)
        error = f"{name} is {kind}, not a regular file, so it is not read."
        assert child.returned == ("returned", ([[name]], error)), child


def test_planning_reads_sizes_through_the_same_gate_as_decoding(tmp_path: Path) -> None:
    from gradcam.evaluate.local import header_size
    from tests.hostile import case_named, write_case

    assert header_size(str(write_case(case_named("exif_orientation_6"), tmp_path))) == (48, 32)  # upright
    # Pillow decodes an icon as it opens it, and lays out every strip of a TIFF: both refused before.
    for name in ("ico_hidden_bomb", "tiff_many_strips", "eps_named_jpg", "jpeg2000"):
        assert header_size(str(write_case(case_named(name), tmp_path))) == (0, 0), name


def test_the_probabilities_follow_the_backbones_head_as_the_explainers_do(dataset: Dataset, tiny_backbone) -> None:
    """One rule everywhere: a multi-label backbone's rows come from its independent sigmoids."""
    import dataclasses

    import torch

    from gradcam.heads import Head

    tags = Explainer(dataclasses.replace(tiny_backbone, head=Head.SIGMOID))
    evaluator = BatchEvaluator(tags, 0.15)
    samples = read_annotations(dataset.csv, dataset.images, SHAPES).samples[:4]
    group = [d for d in (evaluator.decode(s) for s in samples) if d.size == (64, 64)]
    probabilities, _ = evaluator.class_maps(group, [d.sample.objects for d in group])
    with torch.no_grad():
        logits = tiny_backbone.model(torch.cat([d.x for d in group if d.x is not None])).double()
    np.testing.assert_allclose(probabilities, torch.sigmoid(logits).numpy(), atol=1e-12)
    explained = tags.explain(group[0].sample.path, top_k=2)
    assert [p.probability for p in explained.top_k] == pytest.approx(sorted(probabilities[0], reverse=True))
