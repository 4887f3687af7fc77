"""``hf:PATH_OR_ID``: transformers image classifiers from save_pretrained folders, offline.

Tiny ViT, Swin, ConvNeXt and ResNet models are built from their configs and saved with an image processor into a
temporary folder; nothing is downloaded. Every test here imports transformers (seconds): all are slow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gradcam import Explainer, GradCAM, WeightsError, load_backbone
from gradcam.cli import main
from gradcam.heads import Head
from gradcam.layout import Layout
from gradcam.registry import available_offline

from .helpers import by_definition, correlation

pytestmark = pytest.mark.slow

NAMES = {0: "cat", 1: "dog", 2: "bird"}


def _save(folder: Path, config: Any, processor: Any) -> Path:
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForImageClassification.from_config(config).eval()
    with torch.no_grad():  # as if trained: a head that is not near zero, layer norms that are not all 1 and 0
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
        torch.nn.init.normal_(model.classifier.weight if hasattr(model.classifier, "weight") else
                              model.classifier[-1].weight, std=0.5)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny transformers classifiers, each in its save_pretrained folder with its image processor."""
    import transformers as T

    root = tmp_path_factory.mktemp("hf")
    labels = {"id2label": NAMES, "label2id": {v: k for k, v in NAMES.items()}}
    square = T.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    short = T.ConvNextImageProcessor(size={"shortest_edge": 64}, image_mean=[0.4] * 3, image_std=[0.2] * 3)
    configs = {
        "vit": (T.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                            intermediate_size=64, **labels), square),
        "swin": (T.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                              window_size=2, **labels), square),
        "convnext": (T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, **labels), short),
        "resnet": (T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], **labels), short),
        "binary": (T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=1,
                                  id2label={0: "defect"}, label2id={"defect": 0}), short),
        "tags": (T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                problem_type="multi_label_classification", **labels), short),
    }
    return {name: _save(root / name, config, processor) for name, (config, processor) in configs.items()}


@pytest.mark.parametrize(
    ("kind", "layer", "layout", "prefix"),
    [
        ("vit", "vit.layers.1.layernorm_before", Layout.TOKENS, 1),  # the norm before the last attention
        ("swin", "swin.layernorm", Layout.TOKENS, 0),  # after the last stage: its tokens, 4 x 4 at 32 x 32
        ("convnext", "convnext.encoder.stages.1", Layout.CHANNELS_FIRST, 0),
        ("resnet", "resnet.encoder.stages.1", Layout.CHANNELS_FIRST, 0),
    ],
)
def test_the_layer_labels_and_preprocessing_come_from_the_folder(folders, kind, layer, layout, prefix):
    backbone = load_backbone(f"hf:{folders[kind]}")
    assert (backbone.target_layer, backbone.layout, backbone.prefix_tokens) == (layer, layout, prefix)
    assert backbone.categories == ("cat", "dog", "bird") and backbone.head is Head.SOFTMAX
    assert backbone.title == f"{kind} (Hugging Face)" and not backbone.untrained
    if kind in ("vit", "swin"):  # the processor stretches to 32 x 32; only the ViT refuses other sizes
        assert (backbone.fixed_size, backbone.strict_size, backbone.mean) == ((32, 32), kind == "vit", (0.5,) * 3)
    else:  # shortest edge 64, the aspect ratio kept
        assert (backbone.fixed_size, backbone.short_side, backbone.mean) == (None, 64, (0.4,) * 3)
    explanation = Explainer(backbone).explain(np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8))
    assert explanation.cam.shape == (48, 80) and explanation.class_name in NAMES.values()
    assert explanation.layer_name == layer


def _tokens_to_maps(prefix: int, side: int) -> Any:
    return lambda t: t[:, prefix:].reshape(1, side, side, t.shape[-1]).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("kind", "prefix", "side"), [("vit", 1, 4), ("swin", 0, 4)])
def test_vit_and_swin_maps_equal_a_by_definition_reference(folders, kind, prefix, side):
    backbone = load_backbone(f"hf:{folders[kind]}")
    x = torch.randn(1, 3, 32, 32)
    cam = GradCAM(backbone.model, backbone.target_layer, prefix_tokens=backbone.prefix_tokens, layout=backbone.layout)
    result = cam.compute(x, [[0, 1, 2]])
    compared = 0
    for target in range(3):
        expected = by_definition(backbone.model, backbone.target_layer, x, target, _tokens_to_maps(prefix, side))
        if result.empty[0, target] or np.ptp(expected) == 0:
            continue
        assert correlation(result.maps[0, target].numpy(), expected) >= 0.9999
        compared += 1
    assert compared >= 1


def test_a_binary_and_a_multi_label_config_set_the_head(folders):
    binary = load_backbone(f"hf:{folders['binary']}")
    assert (binary.categories, binary.head) == (("not defect", "defect"), Head.BINARY)
    explanation = Explainer(binary).explain(np.full((64, 64, 3), 90, np.uint8), target="not defect", top_k=2)
    assert sum(p.probability for p in explanation.top_k) == pytest.approx(1.0)
    tags = load_backbone(f"hf:{folders['tags']}")
    assert tags.head is Head.SIGMOID
    assert load_backbone(f"hf:{folders['tags']}", head="softmax").head is Head.SOFTMAX  # asked for: kept


def test_labels_weights_and_random_follow_the_other_sources(folders, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("tabby\nbeagle\nrobin\n")
    assert load_backbone(f"hf:{folders['resnet']}", labels=labels).categories == ("tabby", "beagle", "robin")
    labels.write_text("a\nb\n")
    with pytest.raises(WeightsError, match="names 2 classes but hf:.* has a head of 3 outputs"):
        load_backbone(f"hf:{folders['resnet']}", labels=labels)
    random = load_backbone(f"hf:{folders['resnet']}", "random")
    assert random.untrained and random.weights == "random (untrained)"
    saved = load_backbone(f"hf:{folders['resnet']}")
    state = tmp_path / "state.pth"
    torch.save(saved.model.state_dict(), state)
    again = load_backbone(f"hf:{folders['resnet']}", state)
    assert all(torch.equal(a, b) for a, b in zip(saved.model.state_dict().values(), again.model.state_dict().values()))


def test_what_is_not_there_or_not_a_classifier_is_one_sentence(folders, tmp_path, offline):
    import transformers

    plain = tmp_path / "plain-vit"
    transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, num_hidden_layers=1, hidden_size=16,
                                                 num_attention_heads=2, intermediate_size=32)).save_pretrained(plain)
    with pytest.raises(WeightsError, match=r"is not an image classifier \(it holds ViTModel\)"):
        load_backbone(f"hf:{plain}")
    with pytest.raises(WeightsError, match="folder .*nowhere does not exist"):
        load_backbone(f"hf:{tmp_path / 'nowhere'}")
    with pytest.raises(WeightsError, match="not in the Hugging Face cache .* never downloaded here"):
        load_backbone("hf:someone/some-vit")
    assert available_offline(f"hf:{folders['vit']}") == (True, "")
    assert available_offline("hf:someone/some-vit")[0] is False
    assert offline == []  # nothing tried the network


def test_without_transformers_the_line_says_how_to_install_it(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(WeightsError, match=r"need the transformers package: pip install -r requirements-hf\.txt"):
        load_backbone(f"hf:{folders['vit']}")


def test_the_command_line_explains_an_hf_folder_and_refuses_a_non_classifier(folders, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)).save(image)
    assert main([str(image), "--model", f"hf:{folders['swin']}", "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "photo" / "manifest.json").read_text())
    assert data["layer"] == "swin.layernorm" and data["class"]["name"] in NAMES.values()
    bert = tmp_path / "bert"
    import transformers

    transformers.BertModel(transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=32, vocab_size=50)).save_pretrained(bert)
    capsys.readouterr()  # what saving the folder printed
    assert main([str(image), "--model", f"hf:{bert}", "--out", str(tmp_path / "refused")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: hf:") and "is not an image classifier" in err[0], err
    assert not (tmp_path / "refused").exists()
