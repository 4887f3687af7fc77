"""The page: one Gradio Blocks app that formats what :class:`demo.service.DemoService` returns."""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import ImageData

from gradcam import GradCAMError
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA
from gradcam.plots import colorbar

from demo import guard, text
from demo.service import DemoService, Rendered

log = logging.getLogger("demo")

EXAMPLES_DIR = Path(__file__).parent / "examples"
COLORMAPS = ("jet", "viridis", "cividis", "magma")
PANEL_TITLES = {"original": "Original", "heatmap": "Heatmap", "overlay": "Overlay", "boxes": "Boxes"}

CSS = """
.banner { background: #fff4e5; border: 1px solid #f0a030; border-radius: 8px; padding: 4px 14px; }
.sentence { font-size: 1.15em; min-height: 3.2em; }
footer { display: none !important; }
"""


class ImageUpload(gr.Image):
    """An image input that hands the raw upload to the engine, which checks it.

    ``gr.Image`` opens uploads with Pillow before the event runs, so a broken or
    hostile file would fail inside Gradio with a generic error; here every file
    reaches :func:`gradcam.load_image` and gets a clear message.
    """

    is_template = True  # drawn by the frontend's Image component

    def preprocess(self, payload: ImageData | None) -> str | bytes | None:
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            try:
                guard.data_url(payload.url)
            except guard.InvalidInput as exc:
                raise gr.Error(str(exc), title="Can't explain this image", print_exception=False) from exc
            try:
                return base64.b64decode(payload.url.split(",", 1)[1], validate=False)
            except (ValueError, IndexError) as exc:
                raise gr.Error("The pasted image could not be read. Please try again.") from exc
        return payload.path


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns expected mistakes into a message and unexpected failures into a logged apology."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        guard.drop_if_gone()  # a visitor who has left gets no model run
        try:
            return fn(*args)
        except gr.Error:
            raise
        except GradCAMError as exc:
            raise gr.Error(str(exc), title="Can't explain this image", print_exception=False) from exc
        except Exception as exc:
            log.exception("unexpected failure in %s", fn.__name__)
            raise gr.Error(
                "Something went wrong on our side while explaining this image. Please try again, or try another image.",
                title="Sorry",
                print_exception=False,
            ) from exc

    return wrapper


def build_demo(service: DemoService) -> gr.Blocks:
    """Lays out the page and wires its events to ``service``.

    The ``explain`` API endpoint takes (image file, class name or "Top prediction",
    model title, box threshold, overlay opacity) and returns the four pictures
    (PNG), the top-5 label, the sentence and the zip of everything.
    """

    def outputs_of(result: Rendered) -> tuple[Any, ...]:
        files = [str(result.panels[name]) for name in PANEL_TITLES]
        return (*files, result.label, result.sentence, str(result.archive))

    @_friendly
    def explain(
        image: str | bytes | None, target: str, model: str, threshold: float, alpha: float, colormap: str = COLORMAP
    ) -> tuple[Any, ...]:
        return outputs_of(service.explain(image, target, model, threshold, alpha, colormap, name=_name_of(image)))

    @_friendly
    def explain_if_ready(
        image: str | bytes | None, target: str, model: str, threshold: float, alpha: float, colormap: str
    ) -> tuple[Any, ...]:
        # Changing a setting before any image is there is not a mistake: do nothing.
        if image is None:
            return tuple(gr.skip() for _ in range(len(PANEL_TITLES) + 3))
        return explain(image, target, model, threshold, alpha, colormap)

    with gr.Blocks(title=text.TITLE, delete_cache=(300, 900)) as demo:
        gr.Markdown(text.INTRO)
        if service.untrained:
            gr.Markdown(text.UNTRAINED_BANNER, elem_classes="banner", elem_id="untrained-banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                image = ImageUpload(
                    label="Your image",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    height=340,
                    elem_id="input-image",
                )
                examples_slot = gr.Column()
            with gr.Column(scale=2):
                target = gr.Dropdown(
                    [text.TOP_PREDICTION, *sorted(set(service.categories), key=str.lower)],
                    value=text.TOP_PREDICTION,
                    label="Class to explain",
                    info="Type to search the 1000 classes, or keep the model's top prediction.",
                    filterable=True,
                    allow_custom_value=True,  # names typed in any case, or API calls: checked by the engine
                    elem_id="target",
                )
                model = gr.Radio(service.model_titles, value=service.default_model, label="Model", elem_id="model")
                threshold = gr.Slider(
                    0.05, 0.95, value=BOX_THRESHOLD, step=0.05, label="Box threshold",
                    info="How strong the evidence must be to be boxed (share of the strongest).",
                )
                alpha = gr.Slider(0.0, 1.0, value=OVERLAY_ALPHA, step=0.05, label="Heatmap opacity")
                colormap = gr.Dropdown(
                    list(COLORMAPS), value=COLORMAP, label="Colours",
                    info="viridis and cividis read well with colour blindness and in greyscale.",
                    elem_id="colormap",
                )
                button = gr.Button("Explain", variant="primary", elem_id="explain")
            with gr.Column(scale=3):
                sentence = gr.Markdown(text.WAITING, elem_classes="sentence", elem_id="sentence")
                label = gr.Label(num_top_classes=5, label="Top 5 guesses", elem_id="top5")
                archive = gr.File(label="Download everything (4 PNGs, the raw map, a JSON manifest)", elem_id="archive")
        with gr.Row(equal_height=True):
            panels = [
                gr.Image(
                    label=title,
                    type="filepath",
                    format="png",
                    interactive=False,
                    height=320,
                    buttons=["download", "fullscreen"],
                    elem_id=f"panel-{key}",
                )
                for key, title in PANEL_TITLES.items()
            ]
        scale = gr.Image(
            value=colorbar(COLORMAP, 900), show_label=False, interactive=False, container=False, height=60,
            buttons=[], elem_id="colorbar",
        )
        inputs = [image, target, model, threshold, alpha, colormap]
        outputs = [*panels, label, sentence, archive]
        examples = [e for e in _examples() if e[2] == text.TOP_PREDICTION or e[2] in service.categories]
        with examples_slot:
            gr.Examples(
                examples=[[str(path), target, service.default_model] for _, path, target in examples],
                example_labels=[caption for caption, _, _ in examples],
                inputs=[image, target, model],
                outputs=outputs,
                fn=lambda image, target, model: explain(image, target, model, BOX_THRESHOLD, OVERLAY_ALPHA, COLORMAP),
                cache_examples=True,
                examples_per_page=6,
                label="Examples: click one",
            )
        with gr.Accordion("How to read this", open=False):
            gr.Markdown(text.HOW_TO_READ)
        _explore(service, inputs)

        button.click(explain, inputs, outputs, api_name="explain", concurrency_id="model")
        image.upload(explain_if_ready, inputs, outputs, api_name=False, concurrency_id="model")
        for control in (target, model):
            control.input(explain_if_ready, inputs, outputs, api_name=False, concurrency_id="model")
        for slider in (threshold, alpha):
            slider.release(explain_if_ready, inputs, outputs, api_name=False, concurrency_id="model")
        colormap.input(explain_if_ready, inputs, outputs, api_name=False, concurrency_id="model")
        colormap.input(lambda name: colorbar(name, 900), colormap, scale, api_name=False, concurrency_id="colorbar")
        _check_inputs(service, target, model, threshold, alpha, colormap)
    return demo


def _check_inputs(service: DemoService, target: Any, model: Any, threshold: Any, alpha: Any, colormap: Any) -> None:
    """Every setting is checked as it arrives, so the page and API callers get the same clear message."""
    guard.checked(target, lambda v: guard.text(v, "Class to explain", 200, default=text.TOP_PREDICTION))
    guard.checked(model, lambda v: guard.choice(v, "Model", service.model_titles, default=service.default_model))
    guard.checked(threshold, lambda v: guard.number(v, "Box threshold", 0.05, 0.95))
    guard.checked(alpha, lambda v: guard.number(v, "Heatmap opacity", 0.0, 1.0))
    guard.checked(colormap, lambda v: guard.choice(v, "Colours", COLORMAPS, default=COLORMAP))


def _picture(label: str, height: int) -> gr.Image:
    """An output picture, sent as PNG."""
    return gr.Image(label=label, type="numpy", format="png", interactive=False, height=height)


def _explore(service: DemoService, inputs: list[Any]) -> None:
    """The Explore area: the questions an audience asks next, each answered on request."""
    image, target, model, threshold, alpha, colormap = inputs
    with gr.Accordion("Explore: is it really looking there? What speaks against it? Would another model agree?", open=True):
        with gr.Tabs():
            with gr.Tab("Is it really looking there?"):
                gr.Markdown(text.MASKING_HELP)
                masking_button = gr.Button("Run the masking test", elem_id="masking-run")
                masking_words = gr.Markdown(elem_id="masking-sentence")
                with gr.Row():
                    hidden = _picture("Highlighted area hidden", 240)
                    kept = _picture("Only the highlighted area kept", 240)
                    curve = _picture("Deletion curve", 240)
            with gr.Tab("What speaks against it?"):
                gr.Markdown(text.COUNTER_HELP)
                counter_button = gr.Button("Show what speaks against the class", elem_id="counter-run")
                counter_words = gr.Markdown(elem_id="counter-sentence")
                with gr.Row():
                    counter_heat = _picture("Counter-evidence heatmap", 280)
                    counter_over = _picture("Counter-evidence overlay", 280)
            with gr.Tab("Fine detail"):
                gr.Markdown(text.GUIDED_HELP)
                guided_button = gr.Button("Show Guided Grad-CAM", elem_id="guided-run")
                guided_image = _picture("Guided Grad-CAM", 320)
            with gr.Tab("Compare classes"):
                gr.Markdown(text.CLASSES_HELP)
                classes_button = gr.Button("Compare the top 3 classes", elem_id="classes-run")
                classes_gallery = gr.Gallery(label="Top 3 classes", columns=3, height=320, object_fit="contain", elem_id="classes-gallery")
            with gr.Tab("Compare models"):
                gr.Markdown(text.MODELS_HELP)
                models_button = gr.Button("Compare the models", elem_id="models-run")
                models_words = gr.Markdown(elem_id="models-sentence")
                models_gallery = gr.Gallery(label="Each model's view", columns=3, height=320, object_fit="contain", elem_id="models-gallery")
            with gr.Tab("One-picture report"):
                gr.Markdown(text.REPORT_HELP)
                report_button = gr.Button("Make the report", elem_id="report-run")
                report_file = gr.File(label="Report (PNG)", elem_id="report-file")
                report_image = gr.Image(label="Report", type="filepath", format="png", interactive=False, height=300)

    @_friendly
    def run_masking(image, target, model, threshold):
        test, hidden_view, kept_view, plot = service.masking(image, target, model, threshold)
        return test.sentence(), hidden_view, kept_view, plot

    @_friendly
    def run_counter(image, target, model, alpha, colormap):
        heat, over, words = service.counterfactual(image, target, model, alpha, colormap)
        return words, heat, over

    @_friendly
    def run_report(image, target, model, threshold, alpha, colormap):
        path = str(service.report(image, target, model, threshold, alpha, colormap))
        return path, path

    options = {"api_name": False, "concurrency_id": "model"}
    masking_button.click(run_masking, [image, target, model, threshold], [masking_words, hidden, kept, curve], **options)
    counter_button.click(run_counter, [image, target, model, alpha, colormap], [counter_words, counter_heat, counter_over], **options)
    guided_button.click(_friendly(service.guided), [image, target, model], guided_image, **options)
    classes_button.click(_friendly(service.compare_classes), [image, model, alpha, colormap], classes_gallery, **options)
    models_button.click(
        _friendly(lambda *args: service.compare_models(*args)[::-1]), [image, target, threshold, alpha, colormap],
        [models_words, models_gallery], **options,
    )
    report_button.click(run_report, [image, target, model, threshold, alpha, colormap], [report_file, report_image], **options)


def _name_of(image: str | bytes | None) -> str:
    return Path(image).name if isinstance(image, str) else "image"


def _examples() -> list[tuple[str, Path, str]]:
    """(caption, image, class) for each example shipped in ``demo/examples``."""
    captions = {"astronaut.png": "Astronaut", "chelsea.png": "Cat", "coffee.png": "Coffee", "rocket.jpg": "Rocket"}
    rows = [(caption, EXAMPLES_DIR / name, text.TOP_PREDICTION) for name, caption in captions.items()]
    pair = EXAMPLES_DIR / "cat-and-coffee.jpg"
    rows += [("Cat + coffee: the cat", pair, "tabby"), ("Cat + coffee: the coffee", pair, "espresso")]
    return [row for row in rows if row[1].exists()]
