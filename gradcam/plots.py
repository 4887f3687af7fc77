"""Figures drawn with matplotlib: the deletion curve, the trust check's curves and the one-picture report.

Each function returns an RGB uint8 image ``(height, width, 3)``. Figures are
built with matplotlib's object API on their own Agg canvas (no pyplot state), so
several threads can draw at once.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradcam.config import COLORMAP
from gradcam.explanation import Explanation, MaskingTest, TrustCheck
from gradcam.methods import METHODS
from gradcam.render import heatmap
from gradcam.words import percent

DPI = 100


def _pixels(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _scale(axes: Axes, colormap: str, labels: tuple[str, ...], fontsize: float = 9) -> None:
    axes.imshow(heatmap(np.linspace(0.0, 1.0, 256)[None, :], colormap), aspect="auto")
    axes.set_yticks([])
    axes.set_xticks(np.linspace(0, 255, len(labels)), labels, fontsize=fontsize)
    ticks = axes.get_xticklabels()
    ticks[0].set_horizontalalignment("left")
    ticks[-1].set_horizontalalignment("right")
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)


def deletion_plot(test: MaskingTest, width: int = 480) -> np.ndarray:
    """The deletion curve: the class probability as the most important pixels are hidden."""
    figure = Figure(figsize=(width / DPI, width * 0.6 / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    percent_removed = [100 * f for f in test.fractions]
    axes.plot(percent_removed, [100 * p for p in test.curve], marker="o", color="#d9480f", label="most important first")
    axes.axhline(100 * test.before, color="grey", linestyle=":", linewidth=1, label="whole image")
    axes.set_xlabel("share of the image hidden (%)")
    axes.set_ylabel(f"confidence in {test.class_name} (%)")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, max(1.0, 105 * max(test.curve)))
    # The title sits in the figure, above the axes, so a viewer's label or buttons over the
    # picture's top corners do not hide it; the legend goes where the curve is not.
    figure.suptitle("Hiding the most important pixels first", fontsize=12)
    axes.legend(fontsize=8, loc="best")
    axes.grid(alpha=0.3)
    return _pixels(figure)


def trust_plot(check: TrustCheck, width: int = 720) -> np.ndarray:
    """The trust check's curves: deletion and insertion, and ROAD's two orders when it ran."""
    panels = 2 if check.morf is not None and check.lerf is not None else 1
    figure = Figure(figsize=(width / DPI, width * 0.42 / DPI), dpi=DPI, layout="constrained")
    grid = figure.subplots(1, panels, squeeze=False)[0]
    axes = grid[0]
    shares = [100 * f for f in check.deletion.fractions]
    axes.plot(shares, [100 * p for p in check.deletion.probabilities], color="#d9480f",
              label=f"hidden, most important first (AUC {check.deletion_auc:.2f})")
    axes.plot(shares, [100 * p for p in check.insertion.probabilities], color="#1971c2",
              label=f"only these shown (AUC {check.insertion_auc:.2f})")
    axes.set_title("Hiding and showing the map's pixels", fontsize=11)
    axes.set_xlabel("share of the image (%)")
    axes.set_ylabel(f"confidence in {check.class_name} (%)")
    if panels == 2:
        assert check.morf is not None and check.lerf is not None
        road = grid[1]
        levels = [100 * f for f in check.morf.fractions]
        road.plot(levels, [100 * p for p in check.morf.probabilities], marker="o", color="#d9480f",
                  label=f"most relevant first (mean {check.morf.mean:.2f})")
        road.plot(levels, [100 * p for p in check.lerf.probabilities], marker="o", color="#1971c2",
                  label=f"least relevant first (mean {check.lerf.mean:.2f})")
        road.set_title("ROAD: removed pixels filled in", fontsize=11)
        road.set_xlabel("share of the image removed (%)")
    for ax in grid:
        ax.axhline(100 * check.before, color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, max(1.0, 105 * max(check.before, *check.insertion.probabilities, *check.deletion.probabilities)))
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    return _pixels(figure)


def report(
    explanation: Explanation, sentence: str, panels: dict[str, np.ndarray], *, colormap: str = COLORMAP
) -> np.ndarray:
    """One picture for slides: the four panels, the top-5, the sentence and the colour bar.

    Args:
        explanation: the result.
        sentence: what it says, in words (:func:`gradcam.words.summary`).
        panels: its four pictures (:func:`gradcam.views.panels`).
        colormap: the colour map the panels were drawn with, for the colour bar.
    """
    height, width = explanation.image.shape[:2]
    panel_w = 4.0
    panel_h = min(panel_w * height / width, 6.0)
    figure = Figure(figsize=(4 * panel_w, panel_h + 2.6), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(2, 4, height_ratios=(panel_h, 2.0))
    titles = {"original": "Original", "heatmap": "Heatmap", "overlay": "Overlay", "boxes": "Boxes"}
    for column, (key, title) in enumerate(titles.items()):
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(panels[key])
        axes.set_title(title, fontsize=13)
        axes.axis("off")
    bars = figure.add_subplot(grid[1, :2])
    names = [p.name for p in explanation.top_k][::-1]
    values = [100 * p.probability for p in explanation.top_k][::-1]
    bars.barh(names, values, color=["#d9480f" if n == explanation.class_name else "#adb5bd" for n in names])
    for y, value in enumerate(values):
        bars.text(value, y, f" {percent(value / 100)}", va="center", fontsize=9)
    bars.set_xlim(0, 100)
    bars.set_xlabel("model's confidence (%)", fontsize=9)
    bars.set_title("Top guesses", fontsize=12, loc="left")
    bars.tick_params(labelsize=9)
    bars.spines[["top", "right"]].set_visible(False)
    side = grid[1, 2:].subgridspec(2, 1, height_ratios=(1, 3))  # a thin colour bar, the caption below
    _scale(figure.add_subplot(side[0]), colormap, ("no evidence", "strongest evidence"))
    note = figure.add_subplot(side[1])
    note.axis("off")
    caption = (
        f"{explanation.model_name}, {method_title(explanation.method)} at layer {explanation.layer_name}; "
        f"box at {explanation.threshold:.0%} of the peak"
    )
    if explanation.untrained:
        caption += "\nUNTRAINED MODEL: an illustration, the result means nothing"
    note.text(0.0, 0.6, caption, fontsize=9, color="dimgrey", va="top")
    # Wrapped to the figure's width (about 7.5 points a character at 14 points), never clipped.
    figure.suptitle(textwrap.fill(sentence, width=max(40, int(figure.get_figwidth() * 72 / 8.2))), fontsize=14)
    return _pixels(figure)


def method_title(name: str) -> str:
    """A method's name for people ("LayerCAM"); the name itself for one this package does not know."""
    method = METHODS.get(name)
    return method.title if method is not None else name
