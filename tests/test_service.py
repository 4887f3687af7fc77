"""The web app's service without Gradio: requests, remembered explanations, the extra views, files on disk."""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from demo.service import DemoService, UserError
from gradcam import Explainer, words
from gradcam.boxes import box_iou
from gradcam.faithfulness import MaskingTest

from .conftest import SignedNet, TinyNet, make_scene

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scene():
    return make_scene(np.random.default_rng(31), (0, 1))


@pytest.fixture
def upload(tmp_path, scene) -> str:
    """A 64 x 64 PNG with a red square and a green disc, as Gradio hands it over: a path."""
    path = tmp_path / "my photo.png"
    Image.fromarray(scene.image).save(path)
    return str(path)


@pytest.fixture
def service(tiny_backbone, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    yield service
    service.close()


def _decoded(path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        return np.asarray(picture)


def _folders(service: DemoService) -> list:
    return [p for p in service.workdir.iterdir() if p.is_dir()]


def test_explain_writes_four_pictures_and_a_zip(service, upload, scene):
    rendered = service.explain(upload, name="my photo.png")
    assert list(rendered.panels) == ["original", "heatmap", "overlay", "boxes"]
    for path in rendered.panels.values():
        assert path.is_file() and path.read_bytes().startswith(PNG)
        assert _decoded(path).shape == scene.image.shape
    assert np.array_equal(_decoded(rendered.panels["original"]), scene.image)
    assert rendered.archive.name == "gradcam-my-photo.zip"
    with zipfile.ZipFile(rendered.archive) as bundle:
        files = ("original.png", "heatmap.png", "overlay.png", "boxes.png", "cam.npy", "manifest.json")
        assert sorted(bundle.namelist()) == sorted(f"gradcam-my-photo/{name}" for name in files)
    assert re.match(r"The model is \d+% sure this is \*\*(square|disc)\*\*\.", rendered.sentence), rendered.sentence
    assert set(rendered.label) == {"square", "disc"} and sum(rendered.label.values()) == pytest.approx(1.0)
    assert service.model_runs == 1


def test_a_named_class_is_explained(service, upload):
    rendered = service.explain(upload, target="disc")
    assert rendered.explanation.class_name == "disc" and "disc" in rendered.sentence


def test_changing_only_the_sliders_does_not_run_the_model_again(service, upload):
    first = service.explain(upload, threshold=0.15, alpha=0.5)
    second = service.explain(upload, threshold=0.6, alpha=0.2)
    assert service.model_runs == 1
    assert second.explanation.threshold == 0.6 and np.array_equal(second.explanation.cam, first.explanation.cam)
    assert not np.array_equal(_decoded(first.panels["overlay"]), _decoded(second.panels["overlay"]))
    assert first.panels["overlay"].parent != second.panels["overlay"].parent  # each request has its own folder
    service.explain(Path(upload).read_bytes())  # the same file, as bytes
    assert service.model_runs == 1


def test_forget_makes_the_next_request_run_the_model(service, upload):
    service.explain(upload)
    service.forget()
    service.explain(upload)
    assert service.model_runs == 2


def test_masking(service, upload, scene):
    test, hidden, kept, plot = service.masking(upload, target="square")
    assert isinstance(test, MaskingTest) and test.class_name == "square"
    assert "Hiding the highlighted area" in words.masking(test).plain
    assert hidden.shape == kept.shape == scene.image.shape and hidden.dtype == kept.dtype == np.uint8
    x0, y0, x1, y1 = scene.objects[0]
    square = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    assert not np.array_equal(hidden[square], scene.image[square]), "the square was not hidden"
    assert np.array_equal(kept[square][2:-2, 2:-2], scene.image[square][2:-2, 2:-2]), "the square was not kept"
    assert plot.dtype == np.uint8 and plot.ndim == 3 and plot.std() > 20
    assert service.model_runs == 1


def _peak(cam: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(cam.argmax()), cam.shape)
    return int(x), int(y)


def test_counterfactual_points_at_what_speaks_against_the_class(service, upload, scene):
    colours, overlay, words = service.counterfactual(upload, target="square")
    assert colours.shape == overlay.shape == scene.image.shape and colours.dtype == np.uint8
    assert "**against** square" in words
    explanation, _ = service.explanation(upload, "square")
    x, y = _peak(explanation.counter_cam)
    x0, y0, x1, y1 = scene.objects[1]  # the disc
    assert x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2
    assert service.model_runs == 1


def test_counterfactual_says_when_nothing_speaks_against_the_class(tiny_backbone, upload, tmp_path):
    signed = dataclasses.replace(tiny_backbone, name="all-for", title="Signed", model=SignedNet().eval())
    service = DemoService({"Signed": Explainer(signed)}, workdir=tmp_path / "work")
    try:
        colours, _, words = service.counterfactual(upload, target="square")
    finally:
        service.close()
    assert words == "Nothing in this image speaks against square: the model found no contrary evidence."
    assert (colours == colours[0, 0]).all(), "an empty map is drawn in one colour"


def test_guided(service, upload, scene):
    picture = service.guided(upload)
    assert picture.shape == scene.image.shape and picture.dtype == np.uint8 and picture.std() > 5


def test_compare_classes(service, upload, scene):
    pictures = service.compare_classes(upload, top=2)
    assert len(pictures) == 2
    captions = [caption for _, caption in pictures]
    assert {c.split(":")[0] for c in captions} == {"square", "disc"}
    assert all(re.fullmatch(r"(square|disc): (<0\.1|\d+(\.\d)?)%", c) for c in captions), captions
    percents = [float(c.split(": ")[1].strip("<%")) for c in captions]
    assert percents == sorted(percents, reverse=True) and sum(percents) == pytest.approx(100, abs=1.5)
    assert all(p.shape == scene.image.shape and p.dtype == np.uint8 for p, _ in pictures)
    assert not np.array_equal(pictures[0][0], pictures[1][0])


@pytest.fixture
def untrained_tiny(tiny_backbone):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = TinyNet().eval()
    return dataclasses.replace(tiny_backbone, name="tiny-untrained", title="Untrained", model=model, untrained=True)


def test_compare_models_gives_the_overlap_of_the_boxes(tiny_backbone, untrained_tiny, upload, tmp_path):
    twin = dataclasses.replace(tiny_backbone, name="tiny-twin", title="Twin")
    explainers = {"TinyNet": Explainer(tiny_backbone), "Twin": Explainer(twin), "Untrained": Explainer(untrained_tiny)}
    service = DemoService(explainers, workdir=tmp_path / "work")
    try:
        pictures, words = service.compare_models(upload, target="square")
        results = {title: service.explanation(upload, "square", title)[0] for title in explainers}
    finally:
        service.close()
    assert [caption.split(":")[0] for _, caption in pictures] == ["TinyNet", "Twin", "Untrained"]
    assert words.startswith("How much the models' boxes overlap")
    assert "TinyNet and Twin: 100%" in words  # the same model twice
    other = box_iou(results["TinyNet"].boxes[0], results["Untrained"].boxes[0])
    assert other < 0.99
    assert f"TinyNet and Untrained: {other:.0%}" in words and f"Twin and Untrained: {other:.0%}" in words
    assert service.model_runs == 3


def test_compare_models_with_one_model_says_there_is_nothing_to_compare(service, upload):
    pictures, words = service.compare_models(upload)
    assert len(pictures) == 1
    assert words == "Only one model is loaded on this server, so there is nothing to compare."


def test_report_writes_one_png(service, upload):
    path = service.report(upload, target="disc")
    assert path.is_file() and path.name == "gradcam-report.png" and path.parent.parent == service.workdir
    picture = _decoded(path)
    assert picture.shape[1] == 1600 and picture.std() > 20


def test_unknown_and_unavailable_models_are_refused_clearly(tiny_backbone, upload, tmp_path):
    unavailable = {"VGG19": "its weights could not be loaded"}
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, unavailable, workdir=tmp_path / "w")
    try:
        assert service.model_titles == ["TinyNet", "VGG19"]
        with pytest.raises(UserError, match=r"^Unknown model 'Nope'; choose one of: TinyNet\.$"):
            service.explain(upload, model="Nope")
        says = r"^VGG19 is not available on this server right now \(its weights could not be loaded\)\. Please pick another model\.$"
        with pytest.raises(UserError, match=says):
            service.masking(upload, model="VGG19")
    finally:
        service.close()
    assert service.model_runs == 0


@pytest.mark.parametrize("image", [None, "", b""])
@pytest.mark.parametrize(
    "call", ["explain", "masking", "counterfactual", "guided", "compare_classes", "compare_models", "report"]
)
def test_no_image_is_refused_clearly(service, image, call):
    with pytest.raises(UserError, match="Please add an image first"):
        getattr(service, call)(image)


def test_request_folders_stay_while_young(service, upload):
    first = service.explain(upload)
    later = [service.explain(upload, alpha=0.1 + 0.01 * i) for i in range(40)]
    report = service.report(upload)
    assert len(_folders(service)) == 42
    assert first.archive.exists() and all(p.is_file() for p in first.panels.values())
    assert report.is_file() and all(p.is_file() for p in later[-1].panels.values())
    assert service.model_runs == 1


def test_close_removes_every_file(tiny_backbone, upload, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    service.explain(upload)
    service.report(upload)
    assert service.workdir.is_dir()
    service.close()
    assert not service.workdir.exists()


def test_the_page_shows_light_copies_first_and_the_download_follows_without_a_model_run(service, upload, scene):
    shown = service.show(upload, "square", alpha=0.4, colormap="viridis")
    assert set(shown.display) == {"original", "heatmap", "overlay", "boxes"} and shown.asked
    assert all(path.suffix == ".jpg" and path.stat().st_size > 0 for path in shown.display.values())
    archive = service.files(shown.key, 0.15, 0.4, "viridis", "scene.png")
    assert archive is not None and archive.name == "gradcam-scene.zip"
    assert service.model_runs == 1
    with zipfile.ZipFile(archive) as bundle:
        names = sorted(Path(n).name for n in bundle.namelist())
    assert names == ["boxes.png", "cam.npy", "heatmap.png", "manifest.json", "original.png", "overlay.png"]
    assert Image.open(shown.display["overlay"]).size == Image.open(io.BytesIO(zipfile.ZipFile(archive).read(
        next(n for n in zipfile.ZipFile(archive).namelist() if n.endswith("overlay.png"))))).size == scene.image.shape[1::-1]


def test_the_page_pays_only_for_the_map_and_each_explore_view_adds_what_it_needs(service, upload):
    explanation, _ = service.explanation(upload, "square")
    assert explanation.counter_cam is None and explanation.classes == () and service.model_runs == 1
    service.counterfactual(upload, "square")
    assert service.model_runs == 2
    service.guided(upload, "square")
    kept, _ = service.explanation(upload, "square")
    assert kept.counter_cam is not None and kept.guided is not None and service.model_runs == 3  # nothing lost
    service.counterfactual(upload, "square")
    service.explain(upload, "square", alpha=0.2)
    assert service.model_runs == 3
