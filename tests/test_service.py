"""The web app's service without Gradio: a request in, a remembered explanation and its files out."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demo import text
from demo.checks import InvalidInput
from demo.engine import Needs
from demo.errors import UserError
from demo.request import Look
from demo.service import DemoService
from gradcam import Explainer
from gradcam.boxes import box_iou
from gradcam.errors import UnknownClassError

from .conftest import TinyNet
from .helpers import ForwardCounter

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def service(tiny_backbone, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    yield service
    service.close()


@pytest.fixture
def runs(service):
    with ForwardCounter(service.models.get(None).backbone.model) as counter:
        yield counter


def _decoded(path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        return np.asarray(picture)


def _folders(service: DemoService) -> list[Path]:
    return [p for p in service.store.root.iterdir() if p.is_dir()]


def test_the_files_are_four_pictures_a_map_a_manifest_and_their_zip(service, upload, scene, runs):
    written = service.files(service.parse(upload))
    assert list(written.panels) == ["original", "heatmap", "overlay", "boxes"]
    for path in written.panels.values():
        assert path.is_file() and path.read_bytes().startswith(PNG)
        assert _decoded(path).shape == scene.image.shape
    assert np.array_equal(_decoded(written.panels["original"]), scene.image)
    assert written.archive.name == "gradcam-my-photo.zip"
    with zipfile.ZipFile(written.archive) as bundle:
        files = ("original.png", "heatmap.png", "overlay.png", "boxes.png", "cam.npy", "manifest.json")
        assert sorted(bundle.namelist()) == sorted(f"gradcam-my-photo/{name}" for name in files)
    assert runs.count == 1


def test_the_page_shows_light_copies_and_the_download_follows_without_a_model_run(service, upload, scene, runs):
    request = service.parse(upload, "square", alpha=0.4, colormap="viridis")
    shown = service.show(request)
    assert (
        set(shown.display) == {"original", "heatmap", "overlay", "boxes"} and shown.explanation.class_name == "square"
    )
    assert all(path.suffix == ".jpg" and path.stat().st_size > 0 for path in shown.display.values())
    archive = service.files(request).archive
    assert runs.count == 1
    with zipfile.ZipFile(archive) as bundle:
        overlay = next(n for n in bundle.namelist() if n.endswith("overlay.png"))
        with Image.open(bundle.open(overlay)) as full:
            assert full.size == scene.image.shape[1::-1]
        assert (
            '"colormap": "viridis"'
            in bundle.read(next(n for n in bundle.namelist() if n.endswith("manifest.json"))).decode()
        )


def test_a_named_class_is_explained(service, upload):
    assert service.explanation(service.parse(upload, "disc")).class_name == "disc"
    with pytest.raises(UnknownClassError, match="Unknown class 'dsic'. Closest: disc"):
        service.explanation(service.parse(upload, "dsic"))


def test_a_look_or_a_threshold_never_runs_the_model_again(service, upload, runs):
    first = service.show(service.parse(upload, threshold=0.15, alpha=0.5))
    second = service.show(service.parse(upload, threshold=0.6, alpha=0.2, colormap="magma"))
    assert runs.count == 1
    assert second.explanation.threshold == 0.6 and np.array_equal(second.explanation.cam, first.explanation.cam)
    assert first.display["overlay"].parent != second.display["overlay"].parent  # each request has its own folder
    service.show(service.parse(Path(upload).read_bytes()))  # the same file, as bytes
    assert runs.count == 1


def test_forget_makes_the_next_request_run_the_model(service, upload, runs):
    service.explanation(service.parse(upload))
    service.forget()
    service.explanation(service.parse(upload))
    assert runs.count == 2


def test_each_explore_view_adds_what_it_needs_to_the_same_pass_and_keeps_the_rest(service, upload, runs):
    request = service.parse(upload, "square")
    plain = service.explanation(request)
    assert plain.counter_cam is None and plain.classes == () and runs.count == 1
    service.explanation(request, Needs(counterfactual=True))
    assert runs.count == 2
    kept = service.explanation(request, Needs(guided=True))
    assert kept.counter_cam is not None and kept.guided is not None
    again = service.explanation(request, Needs(counterfactual=True, guided=True))
    assert again is kept and runs.count == 3 + 1  # the guided gradient has a forward pass of its own
    masked = service.explanation(request, Needs(masking=True))
    assert masked.masking is not None and masked.counter_cam is not None and masked.guided is not None


def test_compare_models_gives_the_overlap_of_the_boxes(tiny_backbone, upload, tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        untrained = dataclasses.replace(
            tiny_backbone, name="u", title="Untrained", model=TinyNet().eval(), untrained=True
        )
    twin = dataclasses.replace(tiny_backbone, name="tiny-twin", title="Twin")
    explainers = {"TinyNet": Explainer(tiny_backbone), "Twin": Explainer(twin), "Untrained": Explainer(untrained)}
    service = DemoService(explainers, workdir=tmp_path / "work")
    try:
        request = service.parse(upload, "square")
        pictures, words = service.compare_models(request)
        results = {title: service.explanation(dataclasses.replace(request, model=title)) for title in explainers}
    finally:
        service.close()
    assert [caption.split(":")[0] for _, caption in pictures] == ["TinyNet", "Twin", "Untrained"]
    assert words.startswith("How much the models' boxes overlap")
    assert "TinyNet and Twin: 100%" in words  # the same model twice
    other = box_iou(results["TinyNet"].boxes[0], results["Untrained"].boxes[0])
    assert other < 0.99 and f"TinyNet and Untrained: {other:.0%}" in words


def test_compare_models_with_one_model_says_there_is_nothing_to_compare(service, upload):
    pictures, words = service.compare_models(service.parse(upload))
    assert len(pictures) == 1 and words == "Only one model is loaded on this server, so there is nothing to compare."


def test_the_report_is_one_png(service, upload):
    path = service.report(service.parse(upload, "disc"))
    assert path.is_file() and path.name == "gradcam-report.png" and path.parent.parent == service.store.root
    picture = _decoded(path)
    assert picture.shape[1] == 1600 and picture.std() > 20


def test_unknown_and_unavailable_models_are_refused_clearly(tiny_backbone, upload, tmp_path):
    unavailable = {"VGG19": "its weights could not be loaded"}
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, unavailable, workdir=tmp_path / "w")
    try:
        assert service.model_titles == ["TinyNet", "VGG19"]
        with pytest.raises(InvalidInput, match=r"^Model must be one of: TinyNet, VGG19; got Nope\.$"):
            service.parse(upload, model="Nope")
        says = (
            r"^VGG19 is not available on this server right now \(its weights could not be loaded\)\. "
            r"Please pick another model\.$"
        )
        with pytest.raises(UserError, match=says):
            service.explanation(service.parse(upload, model="VGG19"))
    finally:
        service.close()


def test_each_visitor_has_a_share_of_the_disk_and_their_own_oldest_results_go_first(tiny_backbone, upload, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    service.store.share = 60_000  # a few light copies' worth
    try:
        other = service.show(service.parse(upload, visitor="10.0.0.2"))
        flood = [service.show(service.parse(upload, alpha=0.01 * i, visitor="10.0.0.1")) for i in range(50)]
        assert (
            service.store.owned_bytes("10.0.0.1")
            <= 60_000 + max(p.stat().st_size for p in flood[-1].display.values()) * 4
        )
        assert all(p.is_file() for p in flood[-1].display.values())  # the newest stays
        assert not flood[0].display["overlay"].exists()  # the flooder's oldest made room
        assert all(p.is_file() for p in other.display.values())  # nobody else's result went
    finally:
        service.close()


def test_results_stay_while_young(service, upload, runs):
    first = service.files(service.parse(upload))
    later = [service.show(service.parse(upload, alpha=0.1 + 0.01 * i)) for i in range(40)]
    report = service.report(service.parse(upload))
    assert len(_folders(service)) == 42
    assert first.archive.exists() and all(p.is_file() for p in first.panels.values())
    assert report.is_file() and all(p.is_file() for p in later[-1].display.values())
    assert runs.count == 1


def test_close_removes_every_file(tiny_backbone, upload, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    service.files(service.parse(upload))
    assert service.store.root.is_dir()
    service.close()
    assert not service.store.root.exists()


def test_the_sentence_of_an_asked_class_names_it(service, upload):
    request = service.parse(upload, "disc")
    explanation = service.explanation(request)
    from gradcam import words

    sentence = words.summary(explanation, True, request.look.colormap).markdown
    assert re.search(r"\*\*disc\*\*", sentence) and request.look == Look()


def test_a_picked_layer_is_explained_remembered_by_it_and_recorded_in_the_manifest(service, upload, runs):
    layers = service.layers()
    assert layers[0] == "features" and "features.3" in layers  # the automatic one first
    automatic = service.explanation(service.parse(upload))
    inner = service.explanation(service.parse(upload, layer="features.3"))
    assert (automatic.layer_name, inner.layer_name) == ("features", "features.3")
    assert not np.array_equal(automatic.cam, inner.cam) and runs.count == 2
    assert service.explanation(service.parse(upload, layer="features.3", alpha=0.2)) is inner  # remembered
    assert service.explanation(service.parse(upload, layer="features")) is automatic  # the automatic one, by name
    assert runs.count == 2
    written = service.files(service.parse(upload, layer="features.3"))
    with zipfile.ZipFile(written.archive) as bundle:
        manifest = next(name for name in bundle.namelist() if name.endswith("manifest.json"))
        assert '"layer": "features.3"' in bundle.read(manifest).decode()
    explainer = service.models.get(None)
    assert explainer.cam_for("features.3") is explainer.cam_for("features.3")  # one engine per layer, kept


def test_a_live_frame_takes_the_picked_cheap_method_and_score_cam_falls_back_to_grad_cam(service, upload):
    layercam = service.frame(service.parse(upload, method="LayerCAM"))
    assert layercam is not None and layercam.method == "layercam"
    slow = service.frame(service.parse(upload, method="Score-CAM"))  # one pass per channel: too slow for live
    assert slow is not None and slow.method == "gradcam"
    assert text.live_method("Score-CAM") == "*Score-CAM is too slow for the live camera: the live map is Grad-CAM's.*"
