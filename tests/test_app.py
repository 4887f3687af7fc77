"""The web app through its API, as gradio_client sees it, against a server on a free local port."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demo import text
from demo.request import TOP_PREDICTION

from .app_server import RunningApp
from .helpers import ForwardCounter

pytestmark = pytest.mark.slow  # a server with three random ImageNet models

EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
PAIR = EXAMPLES / "cat-and-coffee.jpg"


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def _png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_explain_returns_four_pngs_the_top5_a_sentence_and_a_zip(client):
    *panels, label, sentence, archive = client.predict(
        handle_file(str(EXAMPLES / "chelsea.png")), TOP_PREDICTION, api_name="/explain"
    )
    original = np.asarray(Image.open(EXAMPLES / "chelsea.png").convert("RGB"))
    pictures = [_png(p) for p in panels]
    assert all(p.shape == original.shape for p in pictures), "every panel shows the whole image at its size"
    assert np.array_equal(pictures[0], original)
    assert not np.array_equal(pictures[1], pictures[2]) and not np.array_equal(pictures[0], pictures[3])
    assert len(label["confidences"]) == 5
    assert label["label"] == label["confidences"][0]["label"]
    assert f"**{label['label']}**" in sentence and "untrained" in sentence.lower()
    with zipfile.ZipFile(archive) as bundle:
        names = sorted(Path(n).name for n in bundle.namelist())
    assert names == ["boxes.png", "cam.npy", "heatmap.png", "manifest.json", "original.png", "overlay.png"]


def test_a_named_class_changes_the_result(client):
    image = handle_file(str(PAIR))
    *top_panels, top_label, top_sentence, _ = client.predict(image, TOP_PREDICTION, api_name="/explain")
    *panels, label, sentence, _ = client.predict(image, "espresso", api_name="/explain")
    assert "You asked about **espresso**" in sentence
    assert not np.array_equal(_png(top_panels[1]), _png(panels[1])), "the heatmap did not change with the class"
    assert top_label == label, "the top-5 is the same whatever class is explained"


def test_changing_the_sliders_does_not_run_the_model_again(app, client):
    image = handle_file(str(EXAMPLES / "coffee.png"))
    client.predict(image, TOP_PREDICTION, "VGG19", 0.15, 0.5, api_name="/explain")
    with ForwardCounter(app.service.models.get("VGG19").backbone.model) as runs:
        *panels, _, _, _ = client.predict(image, TOP_PREDICTION, "VGG19", 0.6, 0.9, "magma", api_name="/explain")
    assert runs.count == 0
    *again, _, _, _ = client.predict(image, TOP_PREDICTION, "VGG19", 0.15, 0.5, api_name="/explain")
    assert not np.array_equal(_png(panels[2]), _png(again[2])), "the opacity did not change the overlay"


@pytest.mark.parametrize("model", ["ResNet-50", "DenseNet-121"])
def test_other_models(client, model):
    *panels, label, sentence, _ = client.predict(
        handle_file(str(EXAMPLES / "rocket.jpg")), TOP_PREDICTION, model, api_name="/explain"
    )
    assert _png(panels[1]).shape == np.asarray(Image.open(EXAMPLES / "rocket.jpg")).shape


def _png_bomb() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"this is not an image", "not an image we can read"),
        ("empty.png", b"", "empty"),
        ("half.jpg", _truncated_jpeg(), "damaged"),
        ("bomb.png", _png_bomb(), "megapixel limit"),
    ],
)
def test_bad_uploads_get_a_clear_message_and_the_server_keeps_serving(client, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(path)), TOP_PREDICTION, api_name="/explain")
    *panels, _, sentence, _ = client.predict(
        handle_file(str(EXAMPLES / "chelsea.png")), TOP_PREDICTION, api_name="/explain"
    )
    assert "sure this is" in sentence


def test_unknown_class_gets_a_clear_message(client):
    # The page explains the top prediction and says so; an API caller asked for a class and gets no other.
    with pytest.raises(Exception, match="Unknown class 'tabbby'. Closest: tabby"):
        client.predict(handle_file(str(EXAMPLES / "chelsea.png")), "tabbby", api_name="/explain")


def test_a_link_is_refused_in_a_sentence_and_never_fetched(client):
    with pytest.raises(Exception, match="This app does not fetch links. Please send the photo itself"):
        client.predict(handle_file("http://127.0.0.1:9/cat.png"), api_name="/explain")


def test_the_page_says_the_model_is_untrained(app):
    config = httpx.get(app.url + "config", timeout=10).text
    assert "this model is untrained" in config


def test_the_api_documents_explain(client):
    info = client.view_api(return_format="dict", print_info=False)
    assert list(info["named_endpoints"]) == ["/explain", "/explain_video"], "the page's own events are in the API"
    parameters = [p["parameter_name"] for p in info["named_endpoints"]["/explain"]["parameters"]]
    assert parameters[:2] == ["image", "target"]
    returns = [r["label"] for r in info["named_endpoints"]["/explain"]["returns"]]
    assert returns[:6] == ["Original", "Heatmap", "Overlay", "Boxes", "Top 5 guesses", "Sentence"]
    assert not any(name.startswith("value_") for name in returns)
    video = info["named_endpoints"]["/explain_video"]
    parameters = [p["parameter_name"] for p in video["parameters"]]
    assert parameters[:7] == ["video", "target", "model", "threshold", "alpha", "colormap", "every"]
    assert parameters[7:] == [p["parameter_name"] for p in info["named_endpoints"]["/explain"]["parameters"]][6:]
    assert [r["label"] for r in video["returns"]] == [text.CLIP_RESULT, text.CLIP_TABLE, "What the model saw"]


def test_the_banner_speaks_to_visitors_not_to_the_operator(app):
    config = httpx.get(app.url + "config", timeout=10).text
    assert "GRADCAM_WEIGHTS" not in config and "Start the app" not in config


def test_a_shared_link_previews_the_page(app):
    page = httpx.get(app.url, timeout=10).text
    assert f'property="og:title" content="{text.TITLE}"' in page
    description = re.findall(r'property="og:description"\s+content="([^"]*)"', page)
    assert text.DESCRIPTION in description, description


def test_the_footer_links_to_the_api(app):
    config = httpx.get(app.url + "config", timeout=10).json()
    assert "api" in config["footer_links"]
    assert "footer" not in str(config.get("css") or ""), "CSS hides the footer"
