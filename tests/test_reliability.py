"""Hostile uploads, many users at once, overload, a long run, weights and serving safety (offline, local only)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from demo.service import KEEP_OUTPUTS, MAX_SIDE, DemoService
from demo.text import TOP_PREDICTION
from gradcam import Explainer, WeightsError, load_backbone

from .app_server import RunningApp, gradio_workdir, running_app
from .hostile import JARGON, hostile_cases, write_case

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "demo" / "examples"


def _photo(seed: int, size: tuple[int, int] = (96, 128)) -> bytes:
    """A small PNG no request has sent before: the model must run for it."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _upload(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return handle_file(str(path))


def _answered(client: Client, tmp_path: Path, seed: int) -> None:
    *panels, label, sentence, archive = client.predict(_upload(tmp_path, f"fresh-{seed}.png", _photo(seed)), api_name="/explain")
    assert "sure this is" in sentence and len(label["confidences"]) == 5


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def _fitted(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    height, width = shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    return (max(1, round(height * scale)), max(1, round(width * scale)), 3) if scale < 1 else shape


# 1. Hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", hostile_cases(), ids=lambda case: case.name)
def test_hostile_upload_through_the_app(client, tmp_path, case):
    upload = _upload(tmp_path, case.filename, case.data)
    if case.outcome == "ok":
        *panels, _, sentence, _ = client.predict(upload, TOP_PREDICTION, api_name="/explain")
        with Image.open(panels[0]) as original:
            assert np.asarray(original.convert("RGB")).shape == _fitted(case.shape)
        assert "sure this is" in sentence
    else:
        with pytest.raises(Exception) as info:
            client.predict(upload, TOP_PREDICTION, api_name="/explain")
        message = str(info.value)
        assert re.search(case.message, message), message
        assert not JARGON.search(message.replace("Error", "")), f"jargon reached the user: {message}"
    _answered(client, tmp_path, seed=hash(case.name) % 10_000)


def test_an_upload_over_the_size_limit_is_refused(app, client, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(_photo(1) + bytes(50 * 1024 * 1024))
    response = httpx.post(app.url + "gradio_api/upload", files={"files": ("huge.png", big.open("rb"), "image/png")}, timeout=60)
    assert response.status_code == 413, response.text[:200]
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(big)), TOP_PREDICTION, api_name="/explain")
    _answered(client, tmp_path, seed=2)


def test_the_cli_reports_each_bad_file_in_one_line_and_explains_the_rest(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    cases = hostile_cases()
    for case in cases:
        write_case(case, folder)
    good = [c for c in cases if c.outcome == "ok"]
    bad = [c for c in cases if c.outcome == "error"]
    files = [str(folder / c.filename) for c in cases]
    run = subprocess.run(
        [sys.executable, "-m", "gradcam", *files, "--model", "densenet121", "--weights", "random", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad), run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    for case in bad:
        line = next(line for line in errors if f"/{case.filename}:" in line)
        assert re.search(case.message, line), line
    written = [p for p in (tmp_path / "out").iterdir() if (p / "manifest.json").exists()]
    assert len(written) == len(good)


# 2. Isolation under load ------------------------------------------------------------------------


def _requests() -> list[tuple[bytes, str, str]]:
    models = ["VGG19", "ResNet-50", "DenseNet-121"]
    classes = [TOP_PREDICTION, "tabby", "espresso", "missile", "7"]
    return [(_photo(100 + i), classes[i % 5], models[(i // 5 + i) % 3]) for i in range(40)]


def _result(client: Client, tmp_path: Path, index: int, request: tuple[bytes, str, str]) -> tuple[np.ndarray, dict]:
    data, target, model = request
    *_, archive = client.predict(_upload(tmp_path, f"r{index}.png", data), target, model, api_name="/explain")
    with zipfile.ZipFile(archive) as bundle:
        cam = next(n for n in bundle.namelist() if n.endswith("cam.npy"))
        manifest = next(n for n in bundle.namelist() if n.endswith("manifest.json"))
        return np.load(io.BytesIO(bundle.read(cam))), json.loads(bundle.read(manifest))


def test_eight_clients_at_once_get_what_each_would_get_alone(app, client, tmp_path):
    requests = _requests()
    app.service.forget()
    alone = []
    for i, request in enumerate(requests):
        app.service.forget()  # nothing remembered: each reference is computed fresh
        alone.append(_result(client, tmp_path, i, request))
    app.service.forget()
    runs = app.service.model_runs

    def user(u: int) -> list[tuple[np.ndarray, dict]]:
        own = Client(app.url, verbose=False)
        return [_result(own, tmp_path, i, requests[i]) for i in range(u * 5, u * 5 + 5)]

    with ThreadPoolExecutor(8) as pool:
        together = [r for results in pool.map(user, range(8)) for r in results]
    assert app.service.model_runs - runs == 40, "the concurrent requests did not all run the model"
    for (cam_alone, m_alone), (cam_together, m_together) in zip(alone, together):
        assert np.abs(cam_alone - cam_together).max() <= 1e-6
        assert m_alone["class"] == m_together["class"] and m_alone["model"] == m_together["model"]
        assert m_alone["boxes"] == m_together["boxes"] and m_alone["top_k"] == m_together["top_k"]


# 3. Overload ------------------------------------------------------------------------------------


def test_more_requests_than_the_queue_holds_get_a_busy_answer_then_service_resumes(app, tmp_path):
    uploads = [_upload(tmp_path, f"o{i}.png", _photo(500 + i, (320, 320))) for i in range(40)]
    clients = [Client(app.url, verbose=False) for _ in range(4)]
    results: list[str] = [""] * len(uploads)

    def send(i: int) -> None:
        try:
            clients[i % 4].predict(uploads[i], TOP_PREDICTION, "VGG19", api_name="/explain")
            results[i] = "ok"
        except Exception as exc:  # noqa: BLE001 - the message is what we check
            results[i] = str(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    busy = [r for r in results if r != "ok"]
    assert busy, "no request was turned away"
    assert all(re.search("(?i)queue is full", r) for r in busy), busy[:3]
    assert results.count("ok") >= 16
    _answered(Client(app.url, verbose=False), tmp_path, seed=3)


# 4. Soak ----------------------------------------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_soak_300_explanations(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples"))
    workdir = gradio_workdir()
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=workdir, cache_size=0)
    images = [_upload(tmp_path, f"s{i}.png", _photo(900 + i, (64, 64))) for i in range(3)]
    hooks = _hooks(tiny_backbone.model)
    with running_app(service) as running:
        client = Client(running.url, verbose=False, download_files=False)  # the server's side is what is soaked
        runs = -service.model_runs  # the cached examples ran the model too
        for i in range(50):  # warm-up
            client.predict(images[i % 3], TOP_PREDICTION, "TinyNet", api_name="/explain")
        before = _rss_mb()
        for i in range(250):
            client.predict(images[i % 3], TOP_PREDICTION, "TinyNet", api_name="/explain")
        growth = _rss_mb() - before
        runs += service.model_runs
        folders = [p for p in workdir.iterdir() if p.is_dir()]
    service.close()
    assert runs == 300
    assert growth < 50, f"resident memory grew by {growth:.1f} MB over 250 explanations"
    assert _hooks(tiny_backbone.model) == hooks
    assert len(folders) <= KEEP_OUTPUTS
    print(f"soak: RSS growth {growth:.1f} MB over 250 explanations after 50 warm-up; {len(folders)} output folders kept")


# 5. Weights safety ------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"\x00not a state dict at all", "wrong-architecture"])
def test_bad_weights_stop_the_app_at_start_with_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "wrong-architecture":
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    else:
        path.write_bytes(content)
    run = subprocess.run(
        [sys.executable, "app.py", "--port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**_env(), "GRADCAM_WEIGHTS": str(path)},
    )
    assert run.returncode == 2
    assert str(path) in run.stderr and "Traceback" not in run.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GRADCAM_")}


class _FakeResponse(io.BytesIO):
    def info(self):
        from email.message import Message

        meta = Message()
        meta["Content-Length"] = str(len(self.getvalue()))
        return meta


def test_a_download_that_fails_the_published_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("GRADCAM_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "urlopen", lambda request: _FakeResponse(b"tampered weights"))
    with pytest.raises(WeightsError, match="hash check"):
        load_backbone("densenet121")
    assert not list(tmp_path.rglob("*.pth")), "a file that failed its hash check was kept"


# 6. Serving safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "gradio_api/file=/etc/passwd",
        "file=/etc/passwd",
        "gradio_api/file=../../../../../../etc/passwd",
        "gradio_api/file=%2Fetc%2Fpasswd",
        "gradio_api/file=" + str(ROOT / "app.py"),
        "gradio_api/file=" + str(EXAMPLES / ".." / ".." / "app.py"),
        "gradio_api/file=" + str(ROOT / "gradcam" / "models.py"),
        "static/../../../../etc/passwd",
        "assets/../../../../etc/passwd",
    ],
)
def test_files_outside_the_examples_and_outputs_are_refused(app, path):
    response = httpx.get(app.url + path, timeout=10)
    assert response.status_code in (400, 403, 404), f"{path}: {response.status_code}"
    assert "root:" not in response.text and "import torch" not in response.text


def test_the_examples_and_the_outputs_are_served(app, client, tmp_path):
    *panels, _, _, _ = client.predict(_upload(tmp_path, "x.png", _photo(7)), api_name="/explain")
    relative = Path(panels[0]).name
    assert relative.endswith(".png")
    config = httpx.get(app.url + "config", timeout=10).json()
    assert config.get("share_url") in (None, ""), "a share link was opened without --share"


def test_no_share_link_unless_asked(app):
    assert app.demo.share_url is None
    assert app.demo.share is False
