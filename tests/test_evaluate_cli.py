"""``python -m gradcam evaluate``: outputs, one-line errors, and EfficientNet-Lite0 on real photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gradcam import Backbone
from gradcam.evaluate.cli import main

from .evaluate_data import make_dataset, voc_xml

EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
ROOT = Path(__file__).resolve().parents[1]
# Our own boxes around the objects of the example photos, corners inclusive.
PHOTOS = {
    "chelsea.png": ("tabby", "n02123045", (0, 0, 400, 299)),
    "coffee.png": ("espresso", "n07920052", (170, 16, 430, 300)),
}


def test_ray_missing_is_one_line_saying_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(
        [str(tmp_path), "--annotations", str(tmp_path / "a.csv"), "--out", str(tmp_path / "out"), "--engine", "ray"]
    )
    assert code == 2
    assert capsys.readouterr().err == "error: The Ray engine needs Ray: pip install -r requirements-ray.txt\n"


@pytest.mark.slow
def test_the_ray_pool_flags_reach_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="Ray is installed by requirements-test.txt")
    import gradcam.evaluate.ray_engine as ray_engine

    asked: dict[str, object] = {}
    monkeypatch.setattr(ray_engine, "run_ray", lambda *args, **options: asked.update(options) or 0)
    data = make_dataset(tmp_path, count=2)
    annotations = tmp_path / "indices.csv"
    annotations.write_text(data.csv.read_text().replace(",square,", ",0,").replace(",disc,", ",1,"))
    code = main([
        str(data.images), "--annotations", str(annotations), "--out", str(tmp_path / "out"), "--model", "resnet50",
        "--weights", "random", "--engine", "ray", "--ray-actors", "6", "--ray-cpus-per-actor", "4", "--no-pictures",
    ])
    assert code == 0
    assert asked["actors"] == 6 and asked["cpus_per_actor"] == 4.0 and asked["address"] is None


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--ray-actors", "0", "must be above 0, got 0"),
    ("--ray-actors", "two", "expected a number, got 'two'"),
    ("--ray-cpus-per-actor", "-1", "must be above 0, got -1"),
])
def test_a_ray_pool_of_nothing_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, words: str
) -> None:
    args = [str(tmp_path), "--annotations", str(tmp_path / "a.csv"), "--out", str(tmp_path / "out"), "--engine", "ray"]
    with pytest.raises(SystemExit) as ended:
        main([*args, flag, value])
    assert ended.value.code == 2
    assert f"argument {flag}: {words}" in capsys.readouterr().err


@pytest.mark.slow
def test_missing_annotations_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path), "--annotations", str(tmp_path / "none.csv"), "--out", str(tmp_path / "out")]
    code = main([*args, "--model", "resnet50", "--weights", "random"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: Annotations {tmp_path / 'none.csv'} not found."


@pytest.mark.slow
def test_the_command_writes_its_outputs(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, count=3)
    annotations = tmp_path / "indices.csv"
    annotations.write_text(data.csv.read_text().replace(",square,", ",0,").replace(",disc,", ",1,"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "gradcam", "evaluate", str(data.images), "--annotations", str(annotations),
         "--out", str(out), "--model", "resnet50", "--weights", "random", "--batch-size", "2", "--limit", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "2 images (0 failed) with ResNet-50 at layer4" in done.stdout
    assert "pointing game" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["engine"] == "local" and summary["model"] == "ResNet-50"
    assert len((out / "results.csv").read_text().splitlines()) == 3
    assert (out / "report.html").stat().st_size > 0


@pytest.mark.slow
def test_efficientnet_lite0_on_the_example_photos_in_both_formats(tmp_path: Path) -> None:
    from gradcam import load_backbone

    backbone = load_backbone("efficientnet_lite0")
    (tmp_path / "xml").mkdir()
    rows = ["image,label,x0,y0,x1,y1"]
    for name, (label, wnid, box) in PHOTOS.items():
        rows.append(f"{name},{label},{','.join(map(str, box))}")
        (tmp_path / "xml" / f"{Path(name).stem}.xml").write_text(voc_xml(name, 0, 0, [(wnid, box)]))
    (tmp_path / "photos.csv").write_text("\n".join(rows) + "\n")
    from gradcam.evaluate.run import evaluate_dataset

    def factory() -> Backbone:
        return backbone

    figures, found = evaluate_dataset(EXAMPLES, tmp_path / "photos.csv", tmp_path / "csv", factory, progress=False)
    again, _ = evaluate_dataset(EXAMPLES, tmp_path / "xml", tmp_path / "xml-out", factory, progress=False, report=False)
    assert found.problems == ()
    assert figures["images"] == again["images"] == 2
    assert figures["top5_accuracy"] == 1.0  # a tabby cat and an espresso
    assert figures["pointing_accuracy"] == 1.0  # the map's peak is on the cat and on the cup
    assert (tmp_path / "csv" / "results.csv").read_text() == (tmp_path / "xml-out" / "results.csv").read_text()


@pytest.mark.slow
def test_a_head_or_input_that_contradicts_the_model_is_one_line_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_dataset(tmp_path / "data", count=2)
    args = [str(data.images), "--annotations", str(data.csv), "--model", "torchvision:mobilenet_v3_small",
            "--weights", "random"]
    assert main([*args, "--out", str(tmp_path / "out"), "--mean", "0.5", "0.5"]) == 2
    assert capsys.readouterr().err.startswith("error: The mean has 2 values but mobilenet_v3_small")
    assert not (tmp_path / "out").exists()
    assert main([*args, "--out", str(tmp_path / "tags"), "--head", "sigmoid", "--size", "96", "--no-pictures"]) == 0
    run = json.loads((tmp_path / "tags" / "run.json").read_text())
    assert run["head"] == "sigmoid" and run["input"]["short_side"] == 96 and run["input"]["channels"] == 3
