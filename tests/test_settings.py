"""The app's settings come from the environment once, at the edge, and the command line overrides them."""

from __future__ import annotations

import app
from demo.settings import DEFAULT_MODELS, Settings, from_environment


def test_defaults_without_environment():
    settings = from_environment({})
    assert settings == Settings()
    assert settings.models == DEFAULT_MODELS and settings.models[-1] == "efficientnet_lite0"
    assert settings.mcp and not settings.on_spaces and settings.device == "auto"
    assert settings.proxy_hops == 0  # no proxy: X-Forwarded-For is whatever the client wrote


def test_the_environment_names_models_weights_device_and_spaces():
    settings = from_environment(
        {
            "GRADCAM_MODELS": " timm:resnet50 , efficientnet_lite0,,",
            "GRADCAM_WEIGHTS": "random",
            "GRADCAM_DEVICE": "cuda",
            "GRADCAM_MCP": "0",
            "GRADIO_SERVER_PORT": "8000",
            "SPACE_ID": "someone/gradcam",
        }
    )
    assert settings.models == ("timm:resnet50", "efficientnet_lite0")
    assert settings.weights == "random" and settings.device == "cuda" and settings.port == 8000
    assert not settings.mcp and settings.on_spaces and settings.proxy_hops == 1  # the Space's proxy appends an address
    assert settings.preview_image == "https://huggingface.co/spaces/someone/gradcam/resolve/main/docs/real-photos.png"


def test_the_command_line_overrides_the_environment(monkeypatch):
    seen: list[Settings] = []
    monkeypatch.setenv("GRADCAM_MODELS", "vgg19")
    monkeypatch.setattr(app, "launch", lambda settings: seen.append(settings) or 0)
    assert (
        app.main(
            [
                "--models",
                "efficientnet_lite0,torchvision:convnext_tiny",
                "--device",
                "cpu",
                "--no-mcp",
                "--port",
                "9000",
            ]
        )
        == 0
    )
    (settings,) = seen
    assert settings.models == ("efficientnet_lite0", "torchvision:convnext_tiny")
    assert settings.device == "cpu" and not settings.mcp and settings.port == 9000
