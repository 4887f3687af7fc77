"""The command line, run in-process (and once as ``python -m gradcam``), offline, with untrained weights."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from gradcam import Explainer, cli
from gradcam.checkpoints import cached_weights_path
from gradcam.cli import main
from gradcam.config import MAX_IMAGE_FILE_BYTES

from .helpers import release_pipe_after

ROOT = Path(__file__).resolve().parent.parent
FILES = {"original.png", "heatmap.png", "overlay.png", "boxes.png", "cam.npy", "manifest.json"}
# DenseNet-121 builds in a fraction of VGG19's time and has the same ImageNet classes.
FAST = ["--weights", "random", "--model", "densenet121"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may download: an empty torch cache, GRADCAM_WEIGHTS unset, downloads failing."""

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("GRADCAM_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (64, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    """Runs the CLI; returns the exit code and the non-empty lines of stdout and stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), [line for line in captured.err.splitlines() if line.strip()]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.slow
def test_explains_an_image(tmp_path, capsys):
    image = write_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    code, stdout, stderr = run([image, *FAST, "--out", out], capsys)
    assert code == 0
    assert {p.name for p in (out / "photo").iterdir()} == FILES
    (line,) = [line for line in stdout if line.startswith(str(image))]
    assert "(untrained)" in line and "top-5:" in line and line.endswith(f"-> {out / 'photo'}/")
    data = manifest(out / "photo")
    assert data["class"]["name"] in line and data["model"] == "DenseNet-121"
    assert not {"masking_test", "compare_classes", "more_files", "counter_empty"} & set(data), "a view nobody asked for"
    assert data["image"]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert any("untrained" in line for line in stderr), "no warning that the weights are random"
    assert not any("Traceback" in line for line in stderr)


@pytest.mark.slow
def test_top_k_and_threshold(tmp_path, capsys):
    image = write_image(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    code, stdout, _ = run([image, *FAST, "--out", out, "--top-k", "3", "--threshold", "0.4"], capsys)
    assert code == 0
    data = manifest(out / "photo")
    assert len(data["top_k"]) == 3 and data["threshold"] == 0.4
    assert "top-3:" in stdout[-1]


@pytest.mark.slow
def test_a_bad_file_in_a_folder_is_one_line_and_the_others_are_written(tmp_path, capsys, caplog):
    folder = tmp_path / "images"
    write_image(folder / "a.png", seed=1)
    bad = folder / "b.png"
    bad.write_text("this is not a picture\n")
    write_image(folder / "c.jpg", seed=2)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        code, stdout, stderr = run([folder, *FAST, "--out", out], capsys)
    assert code == 1
    errors = [line for line in stderr if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: ") and "not an image" in errors[0]
    assert "1 of 3 images failed" in stderr[-1]
    assert not any("Traceback" in line for line in stderr) and not caplog.records
    assert sorted(p.name for p in out.iterdir()) == ["a", "c"]
    assert all({p.name for p in (out / name).iterdir()} == FILES for name in ("a", "c"))
    assert [line.split(":")[0] for line in stdout] == [str(folder / "a.png"), str(folder / "c.jpg")]


@pytest.mark.slow
def test_files_that_are_not_images_are_skipped_with_a_note(tmp_path, capsys):
    folder = tmp_path / "images"
    write_image(folder / "x.png")
    (folder / "notes.txt").write_text("hello")
    (folder / "data.csv").write_text("1,2\n")
    write_image(folder / ".hidden.png")
    out = tmp_path / "out"
    code, _, stderr = run([folder, *FAST, "--out", out], capsys)
    assert code == 0
    assert any("skipping 2 files that are not images: data.csv, notes.txt" in line for line in stderr)
    assert [p.name for p in out.iterdir()] == ["x"]


@pytest.mark.slow
def test_target_by_name(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    out = tmp_path / "out"
    code, stdout, _ = run([image, *FAST, "--target", "tabby", "--out", out], capsys)
    assert code == 0
    assert manifest(out / "cat")["class"] == {"index": 281, "name": "tabby"}
    assert f"{image}: tabby " in stdout[-1]


@pytest.mark.slow
def test_target_by_index(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, _ = run([image, *FAST, "--target", "282", "--out", tmp_path / "out"], capsys)
    assert code == 0
    assert manifest(tmp_path / "out" / "cat")["class"]["name"] == "tiger cat"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("nosuchclass", "Closest: sunglass"),
        ("tabbby", "Closest: tabby"),
        ("1000", "out of range"),
        ("²", "Unknown class"),  # a digit that int() refuses
    ],
)
def test_unknown_target_is_one_line_and_exit_2(tmp_path, capsys, target, says):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--target", target, "--out", tmp_path / "out"], capsys)
    assert code == 2
    errors = [line for line in stderr if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], stderr
    assert not any("Traceback" in line for line in stderr)
    assert not (tmp_path / "out").exists(), "nothing is written before the target is known"


@pytest.mark.parametrize(
    "option", [["--threshold", "1.5"], ["--threshold", "-0.1"], ["--threshold", "nan"], ["--alpha", "2"]]
)
def test_threshold_and_alpha_out_of_range(tmp_path, capsys, option):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, *option, "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert stderr == ["error: --threshold and --alpha must be between 0 and 1"]


def test_unknown_colormap(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--colormap", "nosuchmap", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert len(stderr) == 1 and stderr[0].startswith("error: unknown --colormap 'nosuchmap'")


@pytest.mark.slow
def test_other_colormap_is_used(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, _ = run([image, *FAST, "--colormap", "viridis", "--alpha", "0.2", "--out", tmp_path / "out"], capsys)
    assert code == 0
    data = manifest(tmp_path / "out" / "cat")
    assert data["colormap"] == "viridis" and data["overlay_alpha"] == 0.2


def test_offline_without_weights_says_what_to_do(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, "--model", "densenet121", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert len(stderr) == 1, stderr
    line = stderr[0]
    assert line.startswith("error: Could not download the DenseNet-121 weights")
    assert str(cached_weights_path("densenet121")) in line and "GRADCAM_WEIGHTS=" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_images_with_the_same_stem_get_their_own_folders(tmp_path, capsys):
    first = write_image(tmp_path / "a" / "cat.png", seed=1)
    second = write_image(tmp_path / "b" / "cat.png", seed=2)
    third = write_image(tmp_path / "b" / "cat.jpg", seed=3)
    out = tmp_path / "out"
    code, stdout, _ = run([first, tmp_path / "b", *FAST, "--out", out], capsys)
    assert code == 0 and len(stdout) == 3
    assert sorted(p.name for p in out.iterdir()) == ["cat", "cat-2", "cat-3"]
    hashes = {manifest(folder)["image"]["sha256"] for folder in out.iterdir()}
    assert hashes == {hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second, third)}


@pytest.mark.slow
def test_missing_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.png"
    code, _, stderr = run([missing, *FAST, "--out", tmp_path / "out"], capsys)
    assert code == 1
    (error,) = [line for line in stderr if line.startswith("error:")]
    assert error.startswith(f"error: {missing}: ") and "not a file" in error


@pytest.mark.slow
def test_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys, caplog):
    image = write_image(tmp_path / "cat.png")
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should go")
    with caplog.at_level(logging.ERROR):
        code, _, stderr = run([image, *FAST, "--out", blocker], capsys)
    assert code == 1
    (error,) = [line for line in stderr if line.startswith("error:")]
    assert error.startswith(f"error: {image}: cannot write the results")
    assert not any("Traceback" in line for line in stderr) and not caplog.records


@pytest.mark.slow
def test_python_dash_m_gradcam(tmp_path):
    image = write_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "GRADCAM_WEIGHTS"}
    env["TORCH_HOME"] = str(tmp_path / "torch-home")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "gradcam", str(image), "--weights", "random", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (out / "photo").iterdir()} == FILES
    assert manifest(out / "photo")["model"] == "VGG19"  # the default model
    assert result.stdout.startswith(f"{image}: ") and "(untrained)" in result.stdout


# More views: --counterfactual, --masking-test, --guided, --report, --compare-classes -----------

VIEWS = {"counter_heatmap.png", "counter_overlay.png", "deletion.png", "guided_gradcam.png", "report.png"}


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        return np.asarray(picture)


@pytest.mark.slow
def test_every_view_is_written_and_the_masking_numbers_are_in_the_manifest(tmp_path, capsys, monkeypatch):
    # The views run the network 15 times (11 of them for the masking test): a 64-pixel input
    # instead of 224 takes this test from about 15 s to 5 s on two CPU cores.
    monkeypatch.setattr(cli, "Explainer", functools.partial(Explainer, short_side=64))
    image = write_image(tmp_path / "photo.png", size=(64, 64))
    out = tmp_path / "out"
    views = ["--counterfactual", "--masking-test", "--guided", "--report", "--compare-classes", "2"]
    code, stdout, stderr = run([image, *FAST, "--out", out, *views], capsys)
    assert code == 0, stderr
    folder = out / "photo"
    data = manifest(folder)
    classes = data["compare_classes"]
    assert [(c["rank"], c["name"]) for c in classes] == [(1, data["top_k"][0]["name"]), (2, data["top_k"][1]["name"])]
    for c in classes:
        assert c["file"] == f"class-{c['rank']}-{re.sub(r'[^A-Za-z0-9_-]+', '-', c['name']).strip('-')}.png"
    assert classes[0]["probability"] >= classes[1]["probability"]
    class_files = {c["file"] for c in classes}
    assert {p.name for p in folder.iterdir()} == FILES | VIEWS | class_files
    assert set(data["more_files"]) == VIEWS | class_files
    for name in {"counter_heatmap.png", "counter_overlay.png", "guided_gradcam.png"} | class_files:
        assert decoded(folder / name).shape == (64, 64, 3), name
    assert decoded(folder / "deletion.png").shape == (288, 480, 3)
    assert decoded(folder / "report.png").shape[1] == 1600
    assert not np.array_equal(decoded(folder / "counter_overlay.png"), decoded(folder / "overlay.png"))
    # the best class's overlay is the main overlay (up to rounding: two passes, one per call)
    first = decoded(folder / classes[0]["file"]).astype(int)
    assert np.abs(first - decoded(folder / "overlay.png")).max() <= 1
    assert not np.array_equal(first, decoded(folder / classes[1]["file"]))
    masking = data["masking_test"]
    assert masking["class"] == data["class"]["name"]
    assert masking["before"] == pytest.approx(data["probability"], rel=1e-3)
    assert 0.0 <= masking["highlighted_hidden"] <= 1.0 and 0.0 <= masking["only_highlighted_kept"] <= 1.0
    curve = masking["deletion_curve"]
    assert curve["fraction_removed"] == pytest.approx(list(np.linspace(0, 1, 9)))
    assert len(curve["probability"]) == 9 and curve["probability"][0] == masking["before"]
    assert masking["sentence"].startswith("Hiding the highlighted area ")
    assert f"  masking test: {masking['sentence']}" in stdout
    assert isinstance(data["counter_empty"], bool)


def test_compare_classes_must_be_at_least_one(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--compare-classes", "0", "--out", tmp_path / "out"], capsys)
    assert code == 2 and stderr == ["error: --compare-classes must be at least 1"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compare_classes_cannot_exceed_the_classes_of_the_model(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--compare-classes", "1001", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert stderr[-1] == "error: --compare-classes must be at most 1000, the classes the model knows"
    assert not (tmp_path / "out").exists()


def test_help_names_the_files_each_view_writes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--counterfactual", "counter_heatmap.png, counter_overlay.png", "--masking-test", "deletion.png",
                  '"masking_test" in manifest.json', "--guided", "guided_gradcam.png", "--report", "report.png",
                  "--compare-classes N", "class-<rank>-<name>.png (rank 1 = most likely)"):
        assert words in text, words


@pytest.mark.slow
def test_without_the_default_weights_offline_it_falls_back_to_the_embedded_model_in_one_line(tmp_path, capsys):
    image = write_image(tmp_path / "in" / "photo.png")
    assert cli.main([str(image), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: the vgg19 weights cannot be had here (no internet); using the embedded efficientnet_lite0 instead"
    ]
    manifest = json.loads((tmp_path / "out" / "photo" / "manifest.json").read_text())
    assert manifest["model"] == "EfficientNet-Lite0" and manifest["layer"] == "bn2"


def test_an_asked_model_that_cannot_be_had_fails_clearly_without_falling_back(tmp_path, capsys):
    image = write_image(tmp_path / "photo.png")
    assert cli.main([str(image), "--model", "resnet50", "--out", str(tmp_path / "out")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ResNet-50" in err and "efficientnet_lite0" not in err


@pytest.mark.slow
def test_a_fine_tuned_model_with_its_labels_file(tmp_path, capsys):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    weights = tmp_path / "finetuned.pth"
    torch.save(model.state_dict(), weights)
    labels = tmp_path / "labels.txt"
    labels.write_text("healthy leaf\nrust\nblight\n")
    image = write_image(tmp_path / "leaf.png")
    args = [str(image), "--model", "torchvision:resnet18", "--weights", str(weights), "--labels", str(labels)]
    args += ["--out", str(tmp_path / "out")]
    assert cli.main(args) == 0
    manifest = json.loads((tmp_path / "out" / "leaf" / "manifest.json").read_text())
    assert {p["name"] for p in manifest["top_k"]} == {"healthy leaf", "rust", "blight"}
    assert manifest["layer"] == "layer4"
    assert cli.main([*args, "--layer", "layer5"]) == cli.EXIT_USAGE
    assert "layer5" in capsys.readouterr().err


def test_an_unknown_method_is_one_line_listing_the_real_ones_and_nothing_is_written(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--method", "gradcam+", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert stderr == ["error: Unknown method 'gradcam+'; the methods are: gradcam, gradcam++, xgradcam, hirescam, "
                      "layercam, eigencam, scorecam."]
    assert not (tmp_path / "out").exists()


def test_a_method_without_a_counterfactual_is_refused_with_counterfactual(tmp_path, capsys):
    image = write_image(tmp_path / "cat.png")
    code, _, stderr = run([image, *FAST, "--method", "Eigen-CAM", "--counterfactual", "--out", tmp_path / "out"],
                          capsys)
    assert code == 2 and len(stderr) == 1 and stderr[0].startswith("error: Eigen-CAM has no counterfactual map")
    assert not (tmp_path / "out").exists()


# Video clips -------------------------------------------------------------------------------------


def _clip(path: Path, frames: int = 6) -> Path:
    from .videos import walking_cat, write_clip

    return write_clip(path, walking_cat(frames, (400, 240))[0], fps=10)


@pytest.mark.slow
def test_a_clip_becomes_an_explained_video_and_a_table(tmp_path, capsys):
    clip = _clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    code, stdout, _ = run([clip, "--model", "efficientnet_lite0", "--out", out], capsys)
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"overlay.mp4", "frames.csv"}
    assert stdout == [f"{clip}: 6 frames explained; {stdout[0].split('; ', 1)[1].split(' -> ')[0]} -> {out}/"]
    assert "cat" in stdout[0]
    rows = (out / "frames.csv").read_text().splitlines()
    assert rows[0] == "frame,time_s,class,probability,x0,y0,x1,y1" and len(rows) == 7


@pytest.mark.slow
def test_every_n_samples_the_frames(tmp_path, capsys):
    clip = _clip(tmp_path / "clip.mp4", frames=7)
    code, stdout, _ = run([clip, *FAST, "--every", "3", "--out", tmp_path / "out"], capsys)
    assert code == 0 and "3 of 7 frames explained" in stdout[0]
    assert [r.split(",")[0] for r in (tmp_path / "out" / "frames.csv").read_text().splitlines()[1:]] == ["0", "3", "6"]


def test_a_clip_that_cannot_be_explained_is_one_line_and_nothing_is_written(tmp_path, capsys):
    from .videos import ten_hours_of_one_frame

    clip = ten_hours_of_one_frame(tmp_path / "long.mp4")
    code, stdout, stderr = run([clip, *FAST, "--out", tmp_path / "out"], capsys)
    assert code == cli.EXIT_FAILED_IMAGES and stdout == []
    refused = "This clip lasts 10 hours; we explain clips of up to 30 seconds. Please cut it shorter."
    assert stderr == [f"error: {clip}: {refused}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--every", "0"], "--every N takes a whole number of at least 1"),
        (["--masking-test"], "--masking-test explain one image"),
        (["--report", "--guided"], "--guided, --report explain one image"),
    ],
)
def test_options_a_clip_cannot_take_are_one_line_and_exit_2(tmp_path, capsys, extra, says):
    clip = _clip(tmp_path / "clip.mp4", frames=2)
    code, _, stderr = run([clip, *FAST, *extra, "--out", tmp_path / "out"], capsys)
    assert code == cli.EXIT_USAGE and len(stderr) == 1 and says in stderr[0]
    assert not (tmp_path / "out").exists()


def test_a_clip_with_images_or_every_without_a_clip_is_a_usage_error(tmp_path, capsys):
    clip, image = _clip(tmp_path / "clip.mp4", frames=2), write_image(tmp_path / "photo.png")
    code, _, stderr = run([clip, image, *FAST, "--out", tmp_path / "out"], capsys)
    assert code == cli.EXIT_USAGE
    assert stderr == [f"error: explain one video clip at a time, without images ({clip} is a clip)"]
    code, _, stderr = run([image, *FAST, "--every", "2", "--out", tmp_path / "out"], capsys)
    assert code == cli.EXIT_USAGE and "for one video clip" in stderr[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a model and a CLI run
def test_inputs_that_are_not_regular_files_or_too_large_are_one_line_each_and_names_stay_inside_out(tmp_path, capsys):
    folder = tmp_path / "in"
    write_image(folder / "my photo (1).png", seed=2)
    dots = folder / "...png"  # named on the command line (a folder's hidden files are skipped): its stem is ".."
    dots.write_bytes((folder / "my photo (1).png").read_bytes())
    pipe = folder / "pipe.png"
    os.mkfifo(pipe)
    release_pipe_after(pipe, 20)  # should it be read after all, the test fails instead of hanging
    big = folder / "big.png"
    with big.open("wb") as file:  # sparse: no disk used
        file.truncate(MAX_IMAGE_FILE_BYTES + 1)
    out = tmp_path / "out"
    code, stdout, stderr = run([folder, dots, *FAST, "--out", out], capsys)
    assert code == 1
    errors = sorted(line for line in stderr if line.startswith("error:"))
    assert errors == [
        f"error: {big}: big.png is {MAX_IMAGE_FILE_BYTES + 1:,} bytes, over the {MAX_IMAGE_FILE_BYTES:,} byte limit "
        "for an image file, so it is not read.",
        f"error: {pipe}: pipe.png is a pipe (FIFO), not a regular file, so it is not read.",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["image", "my-photo-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"], "nothing written beside --out"
    assert all({p.name for p in (out / name).iterdir()} == FILES for name in ("image", "my-photo-1"))


@pytest.mark.parametrize(
    ("stem", "folder"),
    [("..", "image"), (".", "image"), ("", "image"), ("cat", "cat"), ("a/b", "a-b"), ("été", "t"), ("-_-", "_"),
     ("tiger cat.final", "tiger-cat-final"), ("x" * 300, "x" * 100)],
)
def test_folder_names_are_made_of_letters_digits_dashes_and_underscores(stem, folder, tmp_path):
    assert cli._unique_folder(tmp_path, stem, set()) == tmp_path / folder


def _one_logit_mobilenet(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    weights = tmp_path / "binary.pth"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=1).state_dict(), weights)
    return weights


@pytest.mark.slow
def test_a_binary_model_explains_its_negative_class(tmp_path, capsys):
    weights = _one_logit_mobilenet(tmp_path)
    labels = tmp_path / "labels.txt"
    labels.write_text("normal\npneumonia\n")
    image = write_image(tmp_path / "xray.png")
    args = [image, "--model", "torchvision:mobilenet_v3_small", "--weights", weights, "--labels", labels]
    code, stdout, _ = run([*args, "--target", "normal", "--out", tmp_path / "out"], capsys)
    assert code == 0
    data = manifest(tmp_path / "out" / "xray")
    assert data["head"] == "binary" and data["class"] == {"index": 0, "name": "normal"}
    assert {p["name"] for p in data["top_k"]} == {"normal", "pneumonia"}
    assert sum(p["probability"] for p in data["top_k"]) == pytest.approx(1.0)
    assert stdout[-1].startswith(f"{image}: normal ")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--labels", "three"], "has a head of 1 output but the labels file .* names 3 classes .*binary model"),
        (["--mean", "0.5", "0.5"], r"The mean has 2 values but mobilenet_v3_small \(torchvision\) takes 3 channels"),
        (["--head", "softmax"], "A softmax over a single logit is always 100%"),
        (["--size", "huge"], r"A size is a number of pixels \(384\) or height x width"),
        (["--size", "8"], "The size must be a whole number of pixels from 32 to 896"),
        (["--std", "58", "57", "57"], r"\[0, 1\] scale .*divide by 255"),
    ],
)
def test_every_wrong_combination_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, options, says):
    weights = _one_logit_mobilenet(tmp_path)
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    options = [str(tmp_path / "three.txt") if option == "three" else option for option in options]
    image = write_image(tmp_path / "photo.png")
    args = [image, "--model", "torchvision:mobilenet_v3_small", "--weights", weights, *options]
    code, _, stderr = run([*args, "--out", tmp_path / "out"], capsys)
    assert code == cli.EXIT_USAGE
    assert len(stderr) == 1 and stderr[0].startswith("error: ") and re.search(says, stderr[0]), stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_method_and_the_trust_check_are_in_the_manifest_with_the_curves_as_a_picture(tmp_path, capsys,
                                                                                         monkeypatch):
    monkeypatch.setattr(cli, "Explainer", functools.partial(Explainer, short_side=64))
    image = write_image(tmp_path / "photo.png", size=(64, 64))
    code, stdout, stderr = run([image, *FAST, "--method", "layercam", "--trust", "--out", tmp_path / "out"], capsys)
    assert code == 0, stderr
    folder = tmp_path / "out" / "photo"
    data = manifest(folder)
    assert data["method"] == "layercam" and data["trust"]["method"] == "layercam"
    assert {"trust.png", "trust_scrambled.png"} <= set(data["more_files"])
    assert decoded(folder / "trust.png").shape[1] == 720
    assert f"  trust: {data['trust']['sentence']}" in stdout


def test_a_multi_label_head_says_likely_to_contain(tmp_path, capsys):
    image = write_image(tmp_path / "photo.png")
    code, stdout, _ = run([image, *FAST, "--head", "sigmoid", "--out", tmp_path / "out"], capsys)
    assert code == 0
    (line,) = [line for line in stdout if line.startswith(str(image))]
    assert " likely to contain " in line and "(each on its own)" in line
    data = manifest(tmp_path / "out" / "photo")
    assert data["head"] == "sigmoid" and "likely to contain" in data["sentence"]
    assert sum(p["probability"] for p in data["top_k"]) > 1.0  # untrained sigmoids near 50% each
