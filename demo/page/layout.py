"""The page's components, first screen first, and nothing else: no event is wired here.

A compact input row (photo, class picker, Explain, example thumbnails), the
sentence, the four panels and their colour key; then the top-5 and the
download; then the settings folded into an accordion. The Explore area is
:mod:`demo.page.explore`'s.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from demo import text
from demo.request import TOP_PREDICTION
from demo.settings import COLORMAPS, METHODS, OPACITY, THRESHOLD
from gradcam.explanation import PANELS
from gradcam.render import heatmap
from gradcam.words import colours

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
PANEL_TITLES = {"original": "Original", "heatmap": "Heatmap", "overlay": "Overlay", "boxes": "Boxes"}
#: The examples under the picker, with their captions.
EXAMPLES = {
    "chelsea.png": "Cat",
    "cat-and-coffee.jpg": "Cat and coffee",
    "coffee.png": "Coffee",
    "astronaut.png": "Astronaut",
    "rocket.jpg": "Rocket",
}


@dataclass(frozen=True)
class Layout:
    """The components of the page's first part, by what they are."""

    image: gr.Image
    upload_hint: gr.HTML
    target: gr.Dropdown
    button: gr.Button
    hint: gr.Markdown
    sentence: gr.Markdown
    panels: dict[str, gr.Image]
    legend: gr.HTML
    top5: gr.HTML
    download: gr.Button
    archive: gr.File
    model: gr.Radio
    colormap: gr.Radio
    threshold: gr.Slider
    alpha: gr.Slider
    layer: gr.Dropdown
    method: gr.Radio

    @property
    def inputs(self) -> list[Any]:
        """What every request is made of, in the ``explain`` endpoint's order (the newest last)."""
        return [self.image, self.target, self.model, self.threshold, self.alpha, self.colormap, self.layer, self.method]


def share_buttons(on_spaces: bool) -> list[Any]:
    """The buttons on every picture: download and full screen, and on a Space, share."""
    return ["download", "fullscreen", *(["share"] if on_spaces else [])]


def layer_choices(layers: Sequence[str] | None) -> list[tuple[str, str]]:
    """The layer picker's choices, (label, value): the automatic layer first, named so, its value "" (whatever
    the model: what the API's callers send by default too), then the others by name."""
    if not layers:
        return [(text.automatic_layer(None), "")]
    return [(text.automatic_layer(layers[0]), ""), *((name, name) for name in layers[1:])]


def build(
    categories: list[str],
    model_titles: list[str],
    default_model: str,
    models_note: str,
    *,
    on_spaces: bool,
    layers: Sequence[str] | None = None,
    more_sources: Callable[[], object] | None = None,
) -> Layout:
    """Lays out the first part of the page (call inside a ``gr.Blocks`` context).

    ``layers`` are the default model's, its automatic layer first (the layer picker's choices).
    ``more_sources`` lays out what comes right under the photo row: the other sources
    of pictures (the live camera, video clips; :mod:`demo.page.live`).
    """
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=260):
            image = gr.Image(
                label="Your photo",
                type="filepath",
                sources=["upload", "clipboard"],
                height=190,
                elem_id="input-image",
                placeholder="Drop a photo here, click to choose one, or paste it",
            )
            upload_hint = gr.HTML("", elem_id="upload-hint", padding=False)
        with gr.Column(scale=5, min_width=300):
            with gr.Row(equal_height=False, elem_id="picker-row"):
                target = gr.Dropdown(
                    [TOP_PREDICTION, *sorted(set(categories), key=str.lower)],
                    value=TOP_PREDICTION,
                    label="Class to explain",
                    info=text.TARGET_INFO,
                    filterable=True,
                    allow_custom_value=True,  # a typed name is checked by the request and answered with a hint
                    elem_id="target",
                    scale=4,
                    min_width=260,  # on a phone the picker takes the whole width, the button goes below
                )
                button = gr.Button("Explain", variant="primary", elem_id="explain", scale=1, min_width=110)
            hint = gr.Markdown("", visible=False, elem_id="target-hint")
            gr.Examples(
                examples=[[str(EXAMPLES_DIR / name)] for name in EXAMPLES if (EXAMPLES_DIR / name).exists()],
                inputs=[image],
                label="Examples: click one",
                examples_per_page=8,
                elem_id="examples",
            )
    if more_sources is not None:
        more_sources()
    sentence = gr.Markdown(text.WAITING, elem_id="sentence", label="Sentence")
    # Built with the page and hidden by CSS while the panels are empty: a result only fills it in.
    with gr.Column(elem_id="results"):
        with gr.Row(equal_height=True):
            panels = {
                key: gr.Image(
                    label=PANEL_TITLES[key],
                    type="filepath",
                    format="png",
                    interactive=False,
                    height=230,
                    buttons=share_buttons(on_spaces),
                    elem_id=f"panel-{key}",
                    elem_classes="panel",
                    min_width=270,  # four abreast on a laptop, one per row on a phone
                )
                for key in PANELS
            }
        legend = gr.HTML(legend_html(COLORMAPS[0]), elem_id="legend", padding=False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                top5 = gr.HTML("", label="Top 5 guesses", elem_id="top5")
            with gr.Column(scale=2):
                download = gr.Button(text.DOWNLOAD, elem_id="download", size="sm")
                archive = gr.File(label=text.DOWNLOAD_LABEL, elem_id="archive", elem_classes="until-filled")
    with gr.Accordion(text.SETTINGS, open=False, elem_id="settings"):
        with gr.Row():
            model = gr.Radio(
                model_titles, value=default_model, label="Model", elem_id="model", info=models_note or None
            )
            colormap = gr.Radio(
                list(COLORMAPS),
                value=COLORMAPS[0],
                label="Colours",
                info="viridis and cividis read well with colour blindness and in greyscale.",
                elem_id="colormap",
            )
        method = gr.Radio(
            list(METHODS),
            value=METHODS[0],
            label="Method",
            info=text.METHOD_INFO,
            elem_id="method",
        )
        with gr.Row():
            threshold = gr.Slider(
                THRESHOLD.low,
                THRESHOLD.high,
                value=THRESHOLD.default,
                step=THRESHOLD.step,
                label="Box threshold",
                elem_id="threshold",
                info="How strong the evidence must be to be boxed (share of the strongest).",
            )
            alpha = gr.Slider(
                OPACITY.low,
                OPACITY.high,
                value=OPACITY.default,
                step=OPACITY.step,
                label="Heatmap opacity",
                elem_id="opacity",
            )
        choices = layer_choices(layers)
        layer = gr.Dropdown(
            choices,
            value="",
            label="Layer",
            info=text.LAYER_INFO,
            elem_id="layer",
            filterable=True,
        )
    with gr.Accordion("How to read this", open=False):
        gr.Markdown(text.HOW_TO_READ)
    return Layout(
        image,
        upload_hint,
        target,
        button,
        hint,
        sentence,
        panels,
        legend,
        top5,
        download,
        archive,
        model,
        colormap,
        threshold,
        alpha,
        layer,
        method,
    )


def legend_html(colormap: str) -> str:
    """The colour key under the panels: the colour map as a CSS gradient, its ends in words."""
    samples = heatmap(np.linspace(0.0, 1.0, 11, dtype=np.float32)[None, :], colormap)[0]  # (11, 3)
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in samples)
    ends = colours(colormap)
    return (
        f'<div id="legend-body"><div class="scale" role="img" aria-label="Colour key: {ends.none} means no evidence, '
        f'{ends.strong} the strongest evidence" style="background: linear-gradient(to right, {stops})"></div>'
        f'<div class="words"><span>{ends.none.capitalize()}: no evidence</span>'
        f"<span>{ends.strong.capitalize()}: strongest evidence</span></div></div>"
    )


def inline_jpeg(data: bytes, name: str) -> dict[str, str]:
    """JPEG bytes as an image component shows them, inline (a ``data:`` URL): no file, no second request.

    For events with ``postprocess=False``: the page's panels, the live view, a clip's preview.
    """
    encoded = base64.b64encode(data).decode("ascii")
    return {"path": name, "url": f"data:image/jpeg;base64,{encoded}", "orig_name": name}

