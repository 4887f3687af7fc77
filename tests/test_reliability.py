"""Hostile uploads, many users at once, overload, a long run, weights and serving safety (offline, local only)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from demo.request import TOP_PREDICTION
from demo.service import DemoService
from demo.settings import MAX_SIDE, QUEUE_PER_ADDRESS, QUEUE_SIZE
from gradcam import Explainer, WeightsError, load_backbone
from gradcam.config import MIN_IMAGE_SIDE

from .app_server import RunningApp, explain_index, gradio_workdir, join, running_app, served
from .helpers import ForwardCounter, hook_count, resident_mib
from .hostile import JARGON, hostile_cases, write_case

pytestmark = pytest.mark.slow  # servers, subprocesses, floods and a soak

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


def _answered(client: Client, tmp_path: Path, seed: int, classes: int = 5) -> None:
    *panels, label, sentence, archive = client.predict(
        _upload(tmp_path, f"fresh-{seed}.png", _photo(seed)), api_name="/explain"
    )
    assert "sure this is" in sentence and len(label["confidences"]) == classes


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def _fitted(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    height, width = shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    least = min(height, width, MIN_IMAGE_SIDE)
    return (max(least, round(height * scale)), max(least, round(width * scale)), 3) if scale < 1 else shape


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


@pytest.mark.slow
@pytest.mark.parametrize("frame", [0xC3, 0xC7, 0xCB, 0xCF], ids=["SOF3", "SOF7", "SOF11", "SOF15"])
def test_a_fifty_byte_lossless_jpeg_does_not_bring_the_server_down(tmp_path, frame):
    """It killed the process once (Pillow's reduced-scale decoding of a lossless frame): the app runs apart here."""
    from .app_server import free_port
    from .hostile import minimal_jpeg

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.serve_light_app", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "serving"
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        upload = _upload(tmp_path, "tiny.jpg", minimal_jpeg(4000, 16, frame))
        try:
            *_, sentence, _ = client.predict(upload, TOP_PREDICTION, api_name="/explain")
            assert "sure this is" in sentence
        except Exception as exc:  # a refusal in words is an answer too
            assert re.search("cannot be read|damaged|not an image", str(exc)), str(exc)
        assert server.poll() is None, f"the server died (exit {server.returncode})"
        _answered(client, tmp_path, seed=frame)
    finally:
        server.kill()
        server.wait()


def test_an_upload_over_the_size_limit_is_refused(app, client, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(_photo(1) + bytes(50 * 1024 * 1024))
    response = httpx.post(
        app.url + "gradio_api/upload", files={"files": ("huge.png", big.open("rb"), "image/png")}, timeout=60
    )
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
        [
            sys.executable,
            "-m",
            "gradcam",
            *files,
            "--model",
            "densenet121",
            "--weights",
            "random",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
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

    def user(u: int) -> list[tuple[np.ndarray, dict]]:
        own = Client(app.url, verbose=False)
        return [_result(own, tmp_path, i, requests[i]) for i in range(u * 5, u * 5 + 5)]

    counters = [ForwardCounter(e.backbone.model) for e in app.service.models.ready.values()]
    for counter in counters:
        counter.__enter__()
    try:
        with ThreadPoolExecutor(8) as pool:
            together = [r for results in pool.map(user, range(8)) for r in results]
    finally:
        for counter in counters:
            counter.__exit__()
    assert sum(c.count for c in counters) == 40, "the concurrent requests did not all run the model"
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
        except Exception as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    busy = [r for r in results if r != "ok"]
    assert busy, "no request was turned away"
    # Four visitors' tabs, each with its share of the queue: a full share is answered as a full queue (HTTP 429).
    assert all(re.search("(?i)queue is full|429 Too Many Requests", r) for r in busy), busy[:3]
    assert results.count("ok") >= 12
    _answered(Client(app.url, verbose=False), tmp_path, seed=3)


# 4. Soak ----------------------------------------------------------------------------------------


def test_soak_300_explanations(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples"))
    workdir = gradio_workdir()
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=workdir, cache_size=0)
    images = [_upload(tmp_path, f"s{i}.png", _photo(900 + i, (64, 64))) for i in range(3)]
    hooks = hook_count(tiny_backbone.model)
    with running_app(service) as running, ForwardCounter(tiny_backbone.model) as runs:
        client = Client(running.url, verbose=False, download_files=False)  # the server's side is what is soaked
        for i in range(50):  # warm-up
            client.predict(images[i % 3], TOP_PREDICTION, "TinyNet", api_name="/explain")
        before = resident_mib()
        for i in range(250):
            client.predict(images[i % 3], TOP_PREDICTION, "TinyNet", api_name="/explain")
        growth = resident_mib() - before
        folders = [p for p in workdir.iterdir() if p.is_dir()]
        used = service.store.used_bytes
    service.close()
    assert runs.count == 300
    assert growth < 50, f"resident memory grew by {growth:.1f} MB over 250 explanations"
    assert hook_count(tiny_backbone.model) == hooks
    assert len(folders) >= 300, "a result younger than 15 minutes was deleted"
    print(
        f"soak: RSS growth {growth:.1f} MB over 250 explanations after 50 warm-up; "
        f"{len(folders)} output folders kept, {used / 1e6:.1f} MB"
    )


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
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
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


# 7. Attack surface: the queue, bounded requests, results that stay, mistakes answered ----------


@pytest.fixture(scope="module")
def tiny_app(tiny_backbone, tmp_path_factory):
    """The app with the tiny model: cheap enough to flood on two cores."""
    examples = str(tmp_path_factory.mktemp("tiny-examples"))
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=gradio_workdir())
    with served(service, {"GRADIO_EXAMPLES_CACHE": examples}) as running:
        yield running


META = {"_type": "gradio.FileData"}


def _uploaded(app: RunningApp, seed: int) -> dict:
    response = httpx.post(
        app.url + "gradio_api/upload",
        files=[("files", (f"u{seed}.png", _photo(seed, (64, 64)), "image/png"))],
        timeout=30,
    )
    response.raise_for_status()
    return {"path": response.json()[0], "meta": META}


def _inputs(app: RunningApp, fn, image: dict) -> list:
    """Valid values for an event's inputs, by component."""
    values = []
    for block in fn.inputs:
        elem = getattr(block, "elem_id", None)
        if elem == "input-image":
            values.append(image)
        elif elem == "target":
            values.append(TOP_PREDICTION)
        elif elem == "model":
            values.append("TinyNet")
        elif elem == "colormap":
            values.append("jet")
        else:
            values.append(block.value)
    return values


def _model_fns(app: RunningApp) -> dict[int, object]:
    return {
        i: fn for i, fn in app.demo.fns.items() if any(getattr(b, "elem_id", None) == "input-image" for b in fn.inputs)
    }


def test_the_rest_routes_that_skip_the_queue_are_closed(tiny_app):
    counter = ForwardCounter(tiny_app.service.models.get(None).backbone.model).__enter__()
    data = [None, TOP_PREDICTION, "TinyNet", 0.15, 0.5, "jet", ""]
    for route in ("run/explain", "api/explain", "run/explain/", "api/explain/"):
        response = httpx.post(tiny_app.url + "gradio_api/" + route, json={"data": data}, timeout=10)
        assert response.status_code == 404 and "Not found" in response.text, route
    direct = []
    for index, fn in tiny_app.demo.fns.items():
        if fn.fn is None:
            continue  # a step that runs in the browser only (scrolling): nothing on the server
        response = httpx.post(
            tiny_app.url + "gradio_api/run/predict", json={"data": [0], "fn_index": index}, timeout=10
        )
        if response.status_code != 404:
            direct.append(fn.name)
    counter.__exit__()
    assert set(direct) <= {"load_example", "load_example_input"}, direct  # Gradio's own example lookup: no model
    assert counter.count == 0


def test_every_model_event_waits_for_the_one_model_slot(tiny_app):
    fns = _model_fns(tiny_app)
    assert len(fns) >= 12  # the page's six, the download, the API's explain, the Explore area's six
    for fn in fns.values():
        assert fn.queue and fn.concurrency_id == "model" and fn.concurrency_limit in (1, "default"), fn.name
    assert tiny_app.demo._queue.max_size == QUEUE_SIZE


def test_a_flood_of_every_endpoint_is_bounded_and_abandoned_requests_are_dropped(tiny_app, tmp_path):
    from demo.presence import LISTENERS

    image = _uploaded(tiny_app, 40)
    fns = list(_model_fns(tiny_app).items())
    dropped = LISTENERS.dropped
    runs = ForwardCounter(tiny_app.service.models.get(None).backbone.model).__enter__()

    def abandon(n: int) -> int:  # a visitor who never listens for the answer
        index, fn = fns[n % len(fns)]
        return join(tiny_app, index, _inputs(tiny_app, fn, image), f"flood{n}", listen=False)[0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(abandon, range(40)))
    assert set(answers) == {200, 429}, answers  # one address: its share of the queue, then "too many requests"
    assert answers.count(200) <= QUEUE_PER_ADDRESS + 2  # waiting, plus one running and one just dropped
    for _ in range(1200):  # the abandoned requests are dropped, none runs the model (bounded wait on the condition)
        if LISTENERS.dropped - dropped == answers.count(200):
            break
        time.sleep(0.1)
    assert LISTENERS.dropped - dropped == answers.count(200), "an abandoned request ran or was never dropped"
    _answered(Client(tiny_app.url, verbose=False), tmp_path, seed=41, classes=2)  # a normal visitor is served again
    runs.__exit__()
    assert runs.count == 1


def test_a_body_over_the_limit_is_refused_before_parsing(tiny_app):
    big = b"{" + b" " * (15 * 1024 * 1024) + b"}"
    response = httpx.post(
        tiny_app.url + "gradio_api/queue/join", content=big, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413 and "too large" in response.text

    def chunks():
        for _ in range(15):
            yield b" " * (1024 * 1024)

    response = httpx.post(
        tiny_app.url + "gradio_api/queue/join",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413


def test_twenty_files_in_one_upload_are_refused(tiny_app):
    files = [("files", (f"f{i}.png", _photo(i, (16, 16)), "image/png")) for i in range(20)]
    response = httpx.post(tiny_app.url + "gradio_api/upload", files=files, timeout=60)
    assert response.status_code == 413 and "Too many files" in response.text
    assert httpx.post(tiny_app.url + "gradio_api/upload", files=files[:1], timeout=60).status_code == 200


def test_a_data_url_over_the_upload_limit_is_refused(tiny_app):
    import base64

    image = _uploaded(tiny_app, 42)
    payload = base64.b64encode(_photo(43, (64, 64)) + bytes(10 * 1024 * 1024 + 100)).decode()
    image["url"] = "data:image/png;base64," + payload
    status, answer = join(
        tiny_app, explain_index(tiny_app), [image, TOP_PREDICTION, "TinyNet", 0.15, 0.5, "jet", ""], "dataurl"
    )
    assert status == 200
    if answer["success"]:  # Gradio replaced the URL by the uploaded file's: the data URL was never decoded
        with Image.open(answer["output"]["data"][0]["path"]) as original:
            assert original.size == (64, 64)
    else:
        assert "too large" in answer["output"]["error"]


def test_results_stay_downloadable_while_others_use_the_app(tiny_app, tmp_path):
    client = Client(tiny_app.url, verbose=False, download_files=False)
    *_, first = client.predict(_upload(tmp_path, "first.png", _photo(60, (64, 64))), api_name="/explain")
    for i in range(40):
        client.predict(_upload(tmp_path, f"n{i}.png", _photo(61 + i, (48, 48))), api_name="/explain")
    response = httpx.get(first["url"], timeout=30)
    assert response.status_code == 200 and response.content[:2] == b"PK"


BAD_SETTINGS = [
    ("nan-threshold", '[IMAGE, "Top prediction", "TinyNet", NaN, 0.5, "jet", ""]', "Box threshold must be a number"),
    (
        "inf-opacity",
        '[IMAGE, "Top prediction", "TinyNet", 0.15, Infinity, "jet", ""]',
        "Heatmap opacity must be a number",
    ),
    ("huge-number", '[IMAGE, "Top prediction", "TinyNet", 1e308, 0.5, "jet", ""]', "Box threshold must be a number"),
    (
        "digits",
        '[IMAGE, "Top prediction", "TinyNet", 1' + "0" * 5000 + ', 0.5, "jet", ""]',
        "Box threshold must be a number",
    ),
    ("long-target", '[IMAGE, "' + "9" * 5000 + '", "TinyNet", 0.15, 0.5, "jet", ""]', "Class to explain is too long"),
    (
        "huge-class-name",
        '[IMAGE, "' + "a" * 5_000_000 + '", "TinyNet", 0.15, 0.5, "jet", ""]',
        "Class to explain is too long",
    ),
    ("text-threshold", '[IMAGE, "Top prediction", "TinyNet", "abc", 0.5, "jet", ""]', "Box threshold must be a number"),
    ("number-target", '[IMAGE, 5, "TinyNet", 0.15, 0.5, "jet", ""]', "Class to explain must be text"),
    ("list-model", '[IMAGE, "Top prediction", ["x"], 0.15, 0.5, "jet", ""]', "Model must be one of: TinyNet"),
    (
        "unknown-colours",
        '[IMAGE, "Top prediction", "TinyNet", 0.15, 0.5, "' + "x" * 5000 + '", ""]',
        "Colours must be one of",
    ),
    (
        "unknown-class",
        '[IMAGE, "' + "zebra" * 1000 + '", "TinyNet", 0.15, 0.5, "jet", ""]',
        "Class to explain is too long",
    ),
    ("unknown-layer", '[IMAGE, "Top prediction", "TinyNet", 0.15, 0.5, "jet", "layer4"]', "Layer must be one of"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_mistaken_settings_get_a_clear_short_message_and_no_traceback(
    tiny_app, monkeypatch, tmp_path, name, data, message
):
    from demo.logs import LOG_LIMIT, TruncatingStream

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", TruncatingStream(log))
    image = json.dumps(_uploaded(tiny_app, 50))
    body = (
        f'{{"fn_index": {explain_index(tiny_app)}, "session_hash": "bad-{name}", "data": '
        + data.replace("IMAGE", image)
        + "}"
    )
    status, answer = join(tiny_app, explain_index(tiny_app), body, f"bad-{name}")
    if name == "digits":  # Python's JSON parser refuses numbers of over 4,300 digits: the guard says so first
        assert status == 400 and "could not be read as JSON" in str(answer)
    else:
        assert status == 200 and not answer["success"]
        error = answer["output"]["error"]
        assert error.startswith(message) and len(error) < 300, error
    assert "Traceback" not in log.getvalue() and all(
        len(line) <= LOG_LIMIT + 60 for line in log.getvalue().splitlines()
    )
    _answered(Client(tiny_app.url, verbose=False), tmp_path, seed=51, classes=2)


@pytest.mark.parametrize(
    ("target", "model", "colormap"),
    [(None, "TinyNet", "jet"), (TOP_PREDICTION, None, "jet"), (TOP_PREDICTION, "TinyNet", None)],
)
def test_missing_settings_take_their_defaults(tiny_app, tmp_path, target, model, colormap):
    client = Client(tiny_app.url, verbose=False)
    *_, label, sentence, _ = client.predict(
        _upload(tmp_path, "d.png", _photo(70)), target, model, 0.15, 0.5, colormap, api_name="/explain"
    )
    assert "sure this is" in sentence


def test_the_page_and_api_callers_get_the_same_clear_message(tiny_app, tmp_path):
    client = Client(tiny_app.url, verbose=False)
    with pytest.raises(
        Exception, match=r"Class to explain is too long \(5,000,000 characters; at most 200\): a{40}…"
    ) as info:
        client.predict(_upload(tmp_path, "c.png", _photo(71)), "a" * 5_000_000, api_name="/explain")
    assert len(str(info.value)) < 300
