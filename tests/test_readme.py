"""The README's "Bring your own model" works as written: its snippets run, in order, in a fresh folder, offline.

The Python blocks run as they are, except the Hugging Face one, which saves a model "after fine-tuning": it gets a
tiny transformers ViT classifier as its ``model`` and ``processor``. The command lines run in-process
(``python -m gradcam`` is :func:`gradcam.cli.main`); the app lines load the models their ``GRADCAM_MODELS`` names, as
the app would, without serving them. The hub id is answered from a Hugging Face cache made in the test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from demo.service import load_service
from demo.settings import parse_models
from gradcam.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(title)
    return text[start : text.index("\n## ", start)]


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def _tiny_vit() -> tuple[Any, Any]:
    import torch
    import transformers as T

    labels = {0: "healthy", 1: "rust", 2: "scab"}
    config = T.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=12, hidden_size=16, num_attention_heads=2,
                         intermediate_size=32, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    return T.ViTForImageClassification(config).eval(), T.ViTImageProcessor(size={"height": 32, "width": 32})


def _cache_hub_model(root: Path, repo: str, folder: Path) -> None:
    """A save_pretrained folder as the Hugging Face cache keeps a downloaded repo."""
    revision = "0" * 40
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(revision)
    snapshot = base / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())


def _run_command(line: str, workdir: Path, models: list[Any]) -> None:
    words = shlex.split(line.split("#")[0])
    if words[:3] == ["python", "-m", "gradcam"]:
        assert main([*words[3:], "--out", "readme-out"]) == 0, line
        return
    assignments = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
    assert words[-2:] == ["bash", "scripts/app.sh"] and "GRADCAM_MODELS" in assignments, line
    service = load_service(None, parse_models(assignments["GRADCAM_MODELS"]), workdir, background=False)
    try:
        models.append(service.model_titles)
        assert set(service.models.status().values()) == {"ready"}, service.models.status()
    finally:
        service.close()


@pytest.mark.slow
def test_bring_your_own_model_runs_as_written(tmp_path, monkeypatch, offline):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for name in ("leaf.jpg", "chest.png"):
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(name)
    hub = Path(huggingface_hub.constants.HF_HUB_CACHE)  # the offline fixture's empty cache
    namespace: dict[str, Any] = {}
    titles: list[Any] = []
    ran = {"python": 0, "bash": 0}
    for language, code in blocks(section("### Bring your own model")):
        if language == "python":
            if "save_pretrained" in code:
                namespace["model"], namespace["processor"] = _tiny_vit()  # "after fine-tuning"
            exec(compile(code, "README.md", "exec"), namespace)
            if Path("vit-leaves").is_dir() and not (hub / "models--google--vit-base-patch16-224").exists():
                _cache_hub_model(hub, "google/vit-base-patch16-224", Path("vit-leaves"))
        else:
            for line in filter(str.strip, code.splitlines()):
                _run_command(line, tmp_path / "app", titles)
        ran[language] += 1
    assert ran == {"python": 5, "bash": 3}, ran
    assert titles == [["Leaves"], ["Leaves", "EfficientNet-Lite0"]]
    explanation = namespace["explanation"]
    assert explanation.layer_name == "vit.layers.11.layernorm_before"  # as the README says
    assert explanation.class_name in ("healthy", "rust", "scab")
    binary = Path("readme-out")
    assert (binary / "chest" / "manifest.json").is_file()
    assert offline == []  # nothing tried the network
