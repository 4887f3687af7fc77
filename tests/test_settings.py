"""The app's settings come from the environment once, at the edge, and the command line overrides them."""

from __future__ import annotations

import pytest

import app
from demo.settings import DEFAULT_MODELS, ModelChoice, Settings, from_environment, parse_models
from gradcam.errors import SettingError


def specs(settings: Settings) -> tuple[str, ...]:
    return tuple(choice.spec for choice in settings.models)


def test_defaults_without_environment():
    settings = from_environment({})
    assert settings == Settings()
    assert specs(settings) == DEFAULT_MODELS and DEFAULT_MODELS[-3:] == (
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"  # three real models offline
    )
    assert not any(choice.configured for choice in settings.models)
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
    assert settings.models == (ModelChoice("timm:resnet50"), ModelChoice("efficientnet_lite0"))
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
    assert specs(settings) == ("efficientnet_lite0", "torchvision:convnext_tiny")
    assert settings.device == "cpu" and not settings.mcp and settings.port == 9000


def test_each_model_may_carry_its_weights_labels_head_and_input():
    models = parse_models(
        "torchvision:resnet18[weights=leaves.pth; labels=leaves.txt; title=Leaves],"
        "timm:resnet18[weights=xray.pth;labels=xray.txt;head=auto;size=384;mean=0.5;std=0.25;layer=layer3],"
        "hf:./my-vit[resize=exact;size=224x224;mean=0.5/0.5/0.5],efficientnet_lite0"
    )
    assert models[0] == ModelChoice("torchvision:resnet18", "Leaves", "leaves.pth", "leaves.txt")
    assert models[1].size == 384 and models[1].mean == (0.5,) and models[1].layer == "layer3"
    assert models[1].input_options() == {"head": "auto", "size": 384, "mean": (0.5,), "std": (0.25,)}
    assert models[2].spec == "hf:./my-vit" and models[2].size == (224, 224) and models[2].mean == (0.5,) * 3
    assert models[3] == ModelChoice("efficientnet_lite0") and not models[3].configured and models[0].configured


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("vgg19[colour=red]", "unknown option 'colour' for vgg19; use title, weights"),
        ("vgg19[head=tanh]", "head for vgg19 must be one of auto, softmax, sigmoid"),
        ("vgg19[size=big]", r"A size is a number of pixels"),
        ("vgg19[mean=a/b/c]", "The mean is one number per channel"),
        ("vgg19[weights]", "an option of vgg19 is key=value"),
        ("vgg19[weights=a.pth", "must end with one ']'"),
        ("vgg19[title=A],resnet50[title=A]", "two models have the same title"),
    ],
)
def test_a_model_list_that_cannot_be_read_is_one_sentence(text, says):
    with pytest.raises(SettingError, match=says):
        parse_models(text)


def test_the_command_line_sets_the_first_models_head_and_input_and_refuses_nonsense(monkeypatch, capsys):
    seen: list[Settings] = []
    monkeypatch.delenv("GRADCAM_MODELS", raising=False)
    monkeypatch.setattr(app, "launch", lambda settings: seen.append(settings) or 0)
    argv = ["--models", "timm:resnet18[weights=w.pth],efficientnet_lite0", "--head", "sigmoid", "--size", "320"]
    assert app.main([*argv, "--mean", "0.5", "0.5", "0.5"]) == 0
    first = seen[0].models[0]
    assert (first.weights, first.head, first.size, first.mean) == ("w.pth", "sigmoid", 320, (0.5,) * 3)
    assert seen[0].models[1] == ModelChoice("efficientnet_lite0")
    assert app.main(["--models", "vgg19[size=huge]"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: A size is a number of pixels (384) or height x width (384x320), not 'huge'."
    ]
    monkeypatch.setenv("GRADCAM_MODELS", "vgg19[nonsense=1]")
    assert app.main([]) == 2 and "unknown option 'nonsense'" in capsys.readouterr().err
