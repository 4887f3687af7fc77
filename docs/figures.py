"""Makes the README's pictures: Run: source scripts/env.sh; python docs/figures.py [real localisation methods]

- docs/real-photos.png: EfficientNet-Lite0 (real ImageNet weights, shipped in a
  pip package) on the example photos, and the class switch on cat-and-coffee.jpg.
- docs/localisation.png: Grad-CAM on the tiny CNN the tests train, on two-object
  scenes: the picture with a known right answer (a red square and a green disc).
- docs/compare-methods.png: the page's "Compare methods" view for EfficientNet-Lite0
  (real weights) on chelsea.png, its top class: each cheap method's map with its
  deletion and insertion AUC; its numbers and the trust check are printed as Markdown.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradcam import Explainer, GradCAM, load_backbone, overlay, verdicts, views, words  # noqa: E402
from gradcam.methods import get_method  # noqa: E402
from tests.conftest import SHAPES, TinyNet, make_scene, to_tensor  # noqa: E402


def train() -> TinyNet:
    """The same seeded training as the tests' ``trained_tiny`` fixture."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [make_scene(rng, (i % 2,)) for i in range(512)]
    x, y = to_tensor([s.image for s in scenes]), torch.tensor([i % 2 for i in range(512)])
    model = TinyNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for batch in torch.randperm(len(x)).split(32):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.eval()


def real_photos() -> None:
    """EfficientNet-Lite0 on real photos: the top class of three, then two classes of one photo."""
    explainer = Explainer(load_backbone("efficientnet_lite0"))
    examples = ROOT / "demo" / "examples"
    rows = [("chelsea.png", None), ("coffee.png", None), ("rocket.jpg", None), ("cat-and-coffee.jpg", "tabby"),
            ("cat-and-coffee.jpg", "espresso")]
    figure = Figure(figsize=(11, 5.2), dpi=100, layout="constrained")
    axes = figure.subplots(2, 3 if len(rows) <= 6 else 4).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (name, target) in zip(axes, rows):
        explanation = explainer.explain(examples / name, target)
        ax.imshow(views.boxed_overlay(explanation, 0.5))
        asked = "" if target is None else "asked: "
        ax.set_title(f"{name}: {asked}{words.label(explanation.class_name, explanation.probability)}", fontsize=9)
    axes[-1].text(0.0, 0.5, "EfficientNet-Lite0, real ImageNet weights\n(embedded in a pip package), layer bn2.\n"
                  "Box: the map above 15% of its peak.", fontsize=9, va="center")
    FigureCanvasAgg(figure).print_png(ROOT / "docs" / "real-photos.png")


def compare_methods() -> None:
    """The "Compare methods" view of a real photo, with its numbers and the trust check printed as Markdown."""
    explainer = Explainer(load_backbone("efficientnet_lite0"))
    photo = ROOT / "demo" / "examples" / "chelsea.png"
    explanation = explainer.explain(photo, methods=True, trust=True)
    shown = views.methods(explanation, 0.5)
    figure = Figure(figsize=(9.6, 6.2), dpi=80, layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    for ax, (picture, caption) in zip(axes, shown):
        ax.imshow(picture)
        ax.set_title(caption.replace(": ", "\n", 1), fontsize=10)
        ax.axis("off")
    said = verdicts.methods_comparison(explanation.methods).plain
    figure.suptitle(
        f"chelsea.png, class {explanation.class_name} ({explanation.probability:.0%}), EfficientNet-Lite0 "
        f"(real weights), layer {explanation.layer_name}\n" + "\n".join(textwrap.wrap(said, 150)),
        fontsize=9,
    )
    FigureCanvasAgg(figure).print_png(ROOT / "docs" / "compare-methods.png")
    best = verdicts.most_faithful(explanation.methods)
    print("| method | deletion AUC (lower is better) | insertion AUC (higher is better) |")
    print("|---|---:|---:|")
    for k, m in enumerate(explanation.methods):
        mark = " **(most faithful)**" if k == best else ""
        print(f"| {m.title}{mark} | {m.deletion.area:.3f} | {m.insertion.area:.3f} |")
    check = explanation.trust
    assert check is not None
    print(f"\nTrust check of the {get_method(explanation.method).title} map ({check.forward_passes} passes):")
    print(f"> {verdicts.trust(check).plain} {verdicts.road(check).plain}")
    for name, value, how in verdicts.trust_figures(check):
        print(f"| {name} | {value} | {how} |")


def localisation() -> None:
    """Grad-CAM on the tiny CNN the tests train, both classes of two-object scenes."""
    torch.set_num_threads(1)
    model = train()
    scenes = [make_scene(np.random.default_rng(seed), (0, 1)) for seed in (3, 5, 8, 13)]
    maps = GradCAM(model, "features").compute(to_tensor([s.image for s in scenes]), [[0, 1]] * len(scenes)).maps
    figure = Figure(figsize=(7.5, 2 * len(scenes) * 0.95), dpi=110, layout="constrained")
    axes = figure.subplots(len(scenes), 3)
    for row, (scene, cams) in enumerate(zip(scenes, maps)):
        axes[row, 0].imshow(scene.image)
        for k in range(2):
            axes[row, k + 1].imshow(overlay(scene.image, cams[k].numpy(), 0.55))
        for column, title in enumerate(("image", f"map for '{SHAPES[0]}'", f"map for '{SHAPES[1]}'")):
            axes[row, column].axis("off")
            if row == 0:
                axes[row, column].set_title(title, fontsize=10)
    canvas = FigureCanvasAgg(figure)
    canvas.print_png(ROOT / "docs" / "localisation.png")


FIGURES = {"real": real_photos, "localisation": localisation, "methods": compare_methods}


def main() -> None:
    for name in sys.argv[1:] or FIGURES:
        FIGURES[name]()


if __name__ == "__main__":
    main()
