"""Shared fixtures: tiny seeded models, synthetic images with known object positions."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gradcam.backbone import Backbone

from .app_server import RunningApp

SHAPES = ("square", "disc")
SIZE = 64
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class Scene:
    """A synthetic RGB image and where its objects are: {class index: (x0, y0, x1, y1)}."""

    image: np.ndarray
    objects: dict[int, tuple[int, int, int, int]]


#: The objects' colours: a red square and a green disc.
COLOURS = ((220, 40, 40), (40, 200, 60))
#: In grayscale those are as bright as the background (the square's luma is 94, the background's 100 on average),
#: so the grayscale model's scenes draw them as an X-ray shows things: a dark square and a light disc.
GRAY_COLOURS = ((30, 30, 30), (230, 230, 230))


def _draw(
    image: np.ndarray, shape: int, x: int, y: int, size: int, colours: tuple[tuple[int, int, int], ...] = COLOURS
) -> tuple[int, int, int, int]:
    if shape == 0:  # a square
        image[y : y + size, x : x + size] = colours[0]
    else:  # a disc
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        r = size / 2
        inside = (yy - (y + r - 0.5)) ** 2 + (xx - (x + r - 0.5)) ** 2 <= r * r
        image[inside] = colours[1]
    return x, y, x + size - 1, y + size - 1


def make_scene(
    rng: np.random.Generator,
    shapes: tuple[int, ...],
    size: int = SIZE,
    colours: tuple[tuple[int, int, int], ...] = COLOURS,
) -> Scene:
    """Noisy background with non-overlapping objects of the given classes at random places."""
    image = rng.integers(60, 140, (size, size, 3), dtype=np.uint8)
    objects: dict[int, tuple[int, int, int, int]] = {}
    while len(objects) < len(shapes):
        shape = shapes[len(objects)]
        side = int(rng.integers(12, 18))
        x, y = (int(v) for v in rng.integers(0, size - side, 2))
        x0, y0, x1, y1 = x, y, x + side - 1, y + side - 1
        if not all(x1 + 4 < o[0] or o[2] + 4 < x0 or y1 + 4 < o[1] or o[3] + 4 < y0 for o in objects.values()):
            continue
        objects[shape] = _draw(image, shape, x, y, side, colours)
    return Scene(image, objects)


class TinyNet(nn.Module):
    """A small CNN: three conv layers (the last is the Grad-CAM target), global pooling, a linear head."""

    def __init__(self, num_classes: int = len(SHAPES), channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class SignedNet(nn.Module):
    """conv -> ReLU (the target, "features") -> mean -> linear with weights +1 for class 0, -1 for class 1.

    Every activation is >= 0, so all evidence for class 0 is positive and all of it
    speaks against class 1: nothing speaks against class 0, nothing for class 1.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


#: ITU-R BT.601 luma, the grayscale the explainer gives a one-channel model.
LUMA = (0.299, 0.587, 0.114)


def to_tensor(images: list[np.ndarray], channels: int = 3) -> torch.Tensor:
    batch = torch.from_numpy(np.stack(images)).float().permute(0, 3, 1, 2) / 255.0
    if channels == 1:
        batch = (batch * torch.tensor(LUMA)[:, None, None]).sum(1, keepdim=True)
        return (batch - MEAN[0]) / STD[0]
    return (batch - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _trained(outputs: int, channels: int = 3) -> TinyNet:
    """TinyNet trained (seeded, a few seconds) to tell a red square (0) from a green disc (1).

    With one output it is a binary model (its logit says "disc", trained with a sigmoid); with one
    channel it sees the images in grayscale, drawn in :data:`GRAY_COLOURS`.
    """
    colours = GRAY_COLOURS if channels == 1 else COLOURS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train much faster without thread contention
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            rng = np.random.default_rng(0)
            scenes = [make_scene(rng, (i % 2,), colours=colours) for i in range(512)]
            x = to_tensor([s.image for s in scenes], channels)
            y = torch.tensor([i % 2 for i in range(512)])
            model = TinyNet(outputs, channels)
            optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
            for _ in range(6):
                for batch in torch.randperm(len(x)).split(32):
                    optimiser.zero_grad()
                    scores = model(x[batch])
                    if outputs == 1:
                        loss = nn.functional.binary_cross_entropy_with_logits(scores[:, 0], y[batch].float())
                    else:
                        loss = nn.functional.cross_entropy(scores, y[batch])
                    loss.backward()
                    optimiser.step()
            model.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        test = [make_scene(np.random.default_rng(1), (i % 2,), colours=colours) for i in range(64)]
        scores = model(to_tensor([s.image for s in test], channels))
        guesses = (scores[:, 0] > 0).long() if outputs == 1 else scores.argmax(1)
        accuracy = (guesses == torch.tensor([i % 2 for i in range(64)])).float().mean()
    assert accuracy > 0.95, f"the tiny model did not learn the task (accuracy {accuracy:.2f})"
    return model


@pytest.fixture(scope="session")
def trained_tiny() -> TinyNet:
    """TinyNet trained (seeded, a few seconds) to tell a red square from a green disc."""
    return _trained(len(SHAPES))


@pytest.fixture(scope="session")
def trained_binary() -> TinyNet:
    """The same task as a one-logit binary model: the logit says "disc" (class 1), its negation "square"."""
    return _trained(1)


@pytest.fixture(scope="session")
def trained_gray() -> TinyNet:
    """The same task for a one-channel model that sees the images in grayscale."""
    return _trained(len(SHAPES), channels=1)


@pytest.fixture(scope="session")
def tiny_backbone(trained_tiny: TinyNet) -> Backbone:
    """The trained tiny model as a backbone the Explainer and the app can use."""
    return Backbone(
        name="tiny",
        title="TinyNet",
        model=trained_tiny,
        target_layer="features",
        categories=SHAPES,
        mean=MEAN,
        std=STD,
        weights="trained in the test",
        untrained=False,
    )


@pytest.fixture(scope="session")
def vgg19_random() -> Backbone:
    """Untrained VGG19 (seeded): the real architecture, built once per session."""
    from gradcam.registry import load_backbone

    return load_backbone("vgg19", "random")


@pytest.fixture(scope="session")
def lite0() -> Backbone:
    """EfficientNet-Lite0 with its real, embedded ImageNet weights (no download), built once per session."""
    from gradcam.registry import load_backbone

    return load_backbone("efficientnet_lite0")


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The web app with untrained weights, served on a free local port for the whole session."""
    from demo.service import load_service

    from .app_server import gradio_workdir, served

    examples = str(tmp_path_factory.mktemp("examples-cache"))
    with served(load_service("random", workdir=gradio_workdir()), {"GRADIO_EXAMPLES_CACHE": examples}) as running:
        yield running


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Empty torch and Hugging Face caches in tmp_path, hub offline, torchvision downloads failing."""
    import huggingface_hub.constants

    tried: list[str] = []

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        tried.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from gradcam.checkpoints import cached_weights_path

    assert cached_weights_path("vgg19").is_relative_to(tmp_path), "TORCH_HOME is not honoured"
    return tried


@pytest.fixture
def scene() -> Scene:
    """A 64 x 64 scene with a red square (class 0) and a green disc (class 1)."""
    return make_scene(np.random.default_rng(31), (0, 1))


@pytest.fixture
def upload(tmp_path: Path, scene: Scene) -> str:
    """The scene as a PNG file, as Gradio hands an upload over: a path (the name has a space)."""
    from PIL import Image

    path = tmp_path / "my photo.png"
    Image.fromarray(scene.image).save(path)
    return str(path)


#: The picture the rendering and result tests draw on (``image``, ``cam``).
HEIGHT, WIDTH = 60, 90  # not square, so a swapped height / width shows


@pytest.fixture
def image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(40, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture
def cam() -> np.ndarray:
    """A float32 map in [0, 1]: a horizontal ramp with a bright blob."""
    ramp = np.tile(np.linspace(0.0, 0.6, WIDTH, dtype=np.float32), (HEIGHT, 1))
    ramp[20:40, 50:70] = 1.0
    return ramp


@pytest.fixture
def rng() -> Iterator[np.random.Generator]:
    yield np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test draws the same random inputs on every run."""
    torch.manual_seed(0)
