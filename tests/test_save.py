"""Saving an explanation: the four pictures, the raw map and the manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform

import numpy as np
import PIL
import pytest
import torch
import torchvision
from PIL import Image

from gradcam import PANELS, Explainer, save_explanation, views
from gradcam.explanation import Explanation

from .conftest import make_scene

FILES = {"original.png", "heatmap.png", "overlay.png", "boxes.png", "cam.npy", "manifest.json"}


@pytest.fixture
def source(tmp_path):
    """A PNG of a 64 x 96 scene with a red square."""
    rng = np.random.default_rng(21)
    image = np.concatenate([make_scene(rng, (0,)).image, rng.integers(60, 140, (64, 32, 3), dtype=np.uint8)], axis=1)
    path = tmp_path / "in" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def explanation(tiny_backbone, source) -> Explanation:
    return Explainer(tiny_backbone).explain(source, top_k=2)


def decoded(path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        return np.asarray(picture)


def test_writes_the_six_files_into_a_new_folder(explanation, source, tmp_path):
    folder = tmp_path / "out" / "deep" / "scene"
    written = save_explanation(explanation, folder, source=source)
    assert {p.name for p in folder.iterdir()} == FILES
    assert set(written) == set(PANELS) | {"cam", "manifest"}
    assert all(path.parent == folder and path.is_file() for path in written.values())


def test_pictures_decode_to_the_panels(explanation, source, tmp_path):
    written = save_explanation(explanation, tmp_path / "out", source=source)
    panels = views.panels(explanation)
    assert np.array_equal(decoded(written["original"]), explanation.image)
    for name in PANELS:
        assert np.array_equal(decoded(written[name]), panels[name]), name
    assert not np.array_equal(panels["boxes"], panels["original"]), "no box was drawn"


def test_one_encoding_thread_writes_the_same_files(explanation, tmp_path):
    together = save_explanation(explanation, tmp_path / "together")
    alone = save_explanation(explanation, tmp_path / "alone", workers=1)
    for name in PANELS:
        assert alone[name].read_bytes() == together[name].read_bytes()


def test_pictures_drawn_already_are_written_as_given(explanation, tmp_path):
    drawn = {name: np.full_like(picture, 7) for name, picture in views.panels(explanation).items()}
    written = save_explanation(explanation, tmp_path / "out", panels=drawn)
    for name in PANELS:
        assert np.array_equal(decoded(written[name]), drawn[name])


def test_cam_npy_is_the_map(explanation, tmp_path):
    written = save_explanation(explanation, tmp_path / "out")
    cam = np.load(written["cam"])
    assert cam.dtype == np.float32 and cam.shape == (64, 96)
    assert np.array_equal(cam, explanation.cam)


def test_manifest_describes_the_result(explanation, source, tmp_path):
    written = save_explanation(explanation, tmp_path / "out", source=source)
    manifest = json.loads(written["manifest"].read_text())
    assert manifest["model"] == "TinyNet" and manifest["layer"] == "features"
    assert manifest["weights"] == "trained in the test" and manifest["untrained"] is False
    assert manifest["class"] == {"index": explanation.class_index, "name": explanation.class_name}
    assert manifest["probability"] == explanation.probability
    assert manifest["top_k"] == [
        {"index": p.index, "name": p.name, "probability": p.probability} for p in explanation.top_k
    ]
    assert len(manifest["top_k"]) == 2
    assert manifest["boxes"] == [list(box) for box in explanation.boxes] and manifest["boxes"]
    assert manifest["threshold"] == explanation.threshold == 0.15
    assert manifest["cam_empty"] is False
    image = manifest["image"]
    assert image["file"] == "scene.png"
    assert image["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert image["pixels_sha256"] == hashlib.sha256(explanation.image.tobytes()).hexdigest()
    assert (image["width"], image["height"]) == (96, 64)
    versions = manifest["versions"]
    # The installed distribution's version; torch.__version__ may add the build ("+cu130").
    assert versions["torch"] and torch.__version__.startswith(versions["torch"])
    assert versions["torchvision"] and torchvision.__version__.startswith(versions["torchvision"])
    assert versions["numpy"] == np.__version__ and versions["pillow"] == PIL.__version__
    assert versions["python"] == platform.python_version()
    assert manifest["files"] == {key: path.name for key, path in written.items()}


def test_alpha_and_colormap_are_used_and_recorded(explanation, tmp_path):
    written = save_explanation(explanation, tmp_path / "out", alpha=0.3, colormap="viridis")
    assert np.array_equal(decoded(written["heatmap"]), views.heatmap(explanation, "viridis"))
    assert np.array_equal(decoded(written["overlay"]), views.overlay(explanation, 0.3, "viridis"))
    assert not np.array_equal(decoded(written["heatmap"]), views.heatmap(explanation, "jet"))
    manifest = json.loads(written["manifest"].read_text())
    assert manifest["overlay_alpha"] == 0.3 and manifest["colormap"] == "viridis"


def test_without_a_source_file_no_file_hash(explanation, tmp_path):
    manifest = json.loads(save_explanation(explanation, tmp_path / "out")["manifest"].read_text())
    assert "sha256" not in manifest["image"] and "file" not in manifest["image"]
    assert manifest["image"]["pixels_sha256"] == hashlib.sha256(explanation.image.tobytes()).hexdigest()


def test_untrained_result_says_so(explanation, tmp_path):
    untrained = dataclasses.replace(explanation, untrained=True)
    written = save_explanation(untrained, tmp_path / "out")
    assert json.loads(written["manifest"].read_text())["untrained"] is True
    assert np.array_equal(decoded(written["boxes"]), views.boxed(untrained))  # the label says "(untrained)"
    assert not np.array_equal(decoded(written["boxes"]), views.boxed(explanation))


def test_saving_again_replaces_the_files(explanation, tiny_backbone, source, tmp_path):
    folder = tmp_path / "out"
    save_explanation(explanation, folder, source=source)
    other = Explainer(tiny_backbone).explain(source, target="disc")
    save_explanation(other, folder, source=source)
    assert {p.name for p in folder.iterdir()} == FILES
    assert np.array_equal(np.load(folder / "cam.npy"), other.cam)
    assert json.loads((folder / "manifest.json").read_text())["class"]["name"] == "disc"


def test_extra_entries_are_merged_into_the_manifest(explanation, tmp_path):
    curve = {"fraction_removed": [0.0, 1.0], "probability": [0.9, 0.1]}
    extra = {"masking_test": {"before": 0.9, "deletion_curve": curve}}
    written = save_explanation(explanation, tmp_path / "out", extra=extra)
    manifest = json.loads(written["manifest"].read_text())
    assert manifest["masking_test"] == extra["masking_test"]
    assert manifest["class"]["name"] == explanation.class_name and manifest["files"]["manifest"] == "manifest.json"
    plain = json.loads(save_explanation(explanation, tmp_path / "plain")["manifest"].read_text())
    assert set(manifest) - set(plain) == {"masking_test"}


@pytest.mark.parametrize("key", ["class", "files", "colormap"])
def test_extra_entries_cannot_replace_the_manifest_s_own(explanation, tmp_path, key):
    with pytest.raises(ValueError, match=f"extra cannot replace the manifest's own entries: {key}"):
        save_explanation(explanation, tmp_path / "out", extra={key: "mine", "mine": 1})
    assert not (tmp_path / "out").exists(), "nothing is written when extra is refused"


def test_the_manifest_records_the_method_and_the_trust_check(tiny_backbone, source, tmp_path):
    from gradcam.save import trust_manifest

    explainer = Explainer(dataclasses.replace(tiny_backbone, short_side=64))
    explanation = explainer.explain(source, method="layercam", trust=True)
    written = save_explanation(explanation, tmp_path / "out", extra={"trust": trust_manifest(explanation.trust)})
    data = json.loads(written["manifest"].read_text())
    assert data["method"] == "layercam" and data["method_title"] == "LayerCAM"
    trust = data["trust"]
    check = explanation.trust
    assert trust["method"] == "layercam" and trust["deletion_auc"] == check.deletion_auc
    assert trust["road_morf"] == check.road_morf
    assert trust["randomisation_correlation"] == check.randomisation_correlation
    assert trust["randomisation"]["seeds"] == [0, 1, 2] and trust["randomisation"]["reinitialised_layers"]
    assert len(trust["curves"]["deletion"]["fraction_hidden"]) == 21 and trust["curves"]["road_lerf"]["probability"]
    assert trust["forward_passes"] == check.forward_passes > 57
    assert trust["sentence"].startswith("Hiding the highlighted fifth of the photo")
