"""The Explore area: the questions an audience asks next, each answered on request.

Each question is a tab with a button; its answer is a sentence and pictures,
drawn by :mod:`gradcam.views` and worded by :mod:`gradcam.words` from the
explanation the page already has (one engine call adds what a view needs, from
the same pass). A question that cannot be answered says so where the answer
would be; the pictures stay hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from demo import text
from demo.engine import Needs
from demo.page.handling import Asked, Handling
from demo.page.layout import share_buttons
from demo.service import COMPARED_CLASSES
from gradcam import verdicts, views, words
from gradcam.methods import get_method

MASKING_PROGRESS = "Hiding parts of the photo and asking the model again"
TRUST_PROGRESS = "Hiding, filling in and scrambling: about 70 passes through the model"
METHODS_PROGRESS = "Making and testing each method's map"


@dataclass
class Explore:
    """The Explore area's components: each answer's sentence first, then its pictures."""

    answers: list[Any] = field(default_factory=list)

    def cleared(self) -> dict[Any, Any]:
        """Every answer emptied: what a new photo, class or model does to them."""
        return {component: None for component in self.answers}


def _picture(label: str, height: int, elem_id: str, buttons: list[Any]) -> gr.Image:
    """An output picture of the Explore area, sent as PNG, its label above it."""
    return gr.Image(
        label=label,
        type="numpy",
        format="png",
        interactive=False,
        height=height,
        elem_id=elem_id,
        elem_classes=["panel", "until-filled"],
        buttons=buttons,
        alt_text=label,
    )


def _gallery(label: str, elem_id: str, columns: int = 3, **options: Any) -> gr.Gallery:
    return gr.Gallery(
        label=label,
        columns=columns,
        height="auto",
        object_fit="contain",
        elem_id=elem_id,
        elem_classes="until-filled",
        **options,
    )


def build(handling: Handling, inputs: list[Any], *, on_spaces: bool) -> Explore:
    """Lays out the Explore area and wires its buttons (call inside a ``gr.Blocks`` context)."""
    service = handling.service
    buttons = share_buttons(on_spaces)
    explore = Explore()
    with gr.Accordion(
        "Explore: can I trust this map? Is it really looking there? What speaks against it? Would another model agree?",
        open=True,
    ):
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone the questions wrap onto two lines, none hidden in a menu
            with gr.Tab("Is it really looking there?"):
                gr.Markdown(text.MASKING_HELP)
                masking_button = gr.Button("Run the masking test", elem_id="masking-run")
                masking_words = gr.Markdown(elem_id="masking-sentence")
                with gr.Row():
                    hidden = _picture("Highlighted area hidden", 260, "masking-hidden", buttons)
                    kept = _picture("Only the highlighted area kept", 260, "masking-kept", buttons)
                    curve = _picture("Deletion curve", 260, "masking-curve", buttons)
            with gr.Tab("Can I trust this map?"):
                gr.Markdown(text.TRUST_HELP)
                trust_button = gr.Button("Check this map", elem_id="trust-run")
                trust_words = gr.Markdown(elem_id="trust-sentence")
                with gr.Row():
                    trust_curves = _picture("Hiding and showing the map's pixels", 300, "trust-curves", buttons)
                    trust_scrambled = _picture(
                        "The map with the model's weights scrambled", 300, "trust-scrambled", buttons
                    )
                trust_table = gr.Markdown(elem_id="trust-figures")
            with gr.Tab("Compare methods"):
                gr.Markdown(text.METHODS_HELP)
                methods_button = gr.Button("Compare the methods", elem_id="methods-run")
                methods_words = gr.Markdown(elem_id="methods-sentence")
                methods_gallery = _gallery(  # two abreast: each caption carries two scores
                    "Each method's map of this class", "methods-gallery", columns=2, allow_preview=True
                )
            with gr.Tab("What speaks against it?"):
                gr.Markdown(text.COUNTER_HELP)
                counter_button = gr.Button("Show what speaks against the class", elem_id="counter-run")
                counter_words = gr.Markdown(elem_id="counter-sentence")
                with gr.Row():
                    counter_heat = _picture("Counter-evidence heatmap", 280, "counter-heatmap", buttons)
                    counter_over = _picture("Counter-evidence overlay", 280, "counter-overlay", buttons)
            with gr.Tab("Fine detail"):
                gr.Markdown(text.GUIDED_HELP)
                guided_button = gr.Button("Show Guided Grad-CAM", elem_id="guided-run")
                guided_words = gr.Markdown(elem_id="guided-sentence")
                guided_image = _picture("Guided Grad-CAM", 320, "guided-image", buttons)
            with gr.Tab("Compare classes"):
                gr.Markdown(text.CLASSES_HELP)
                classes_button = gr.Button(f"Compare the top {COMPARED_CLASSES} classes", elem_id="classes-run")
                classes_words = gr.Markdown(elem_id="classes-sentence")
                classes_gallery = _gallery(f"Top {COMPARED_CLASSES} classes", "classes-gallery", allow_preview=True)
            with gr.Tab("Compare models"):
                gr.Markdown(text.MODELS_HELP)
                models_button = gr.Button("Compare the models", elem_id="models-run")
                models_words = gr.Markdown(elem_id="models-sentence")
                models_gallery = _gallery("Each model's view", "models-gallery")
            with gr.Tab("One-picture report"):
                gr.Markdown(text.REPORT_HELP)
                report_button = gr.Button("Make the report", elem_id="report-run")
                report_words = gr.Markdown(elem_id="report-sentence")
                report_file = gr.File(label="Report (PNG)", elem_id="report-file", elem_classes="until-filled")
                report_image = gr.Image(
                    label="Report",
                    type="filepath",
                    format="png",
                    interactive=False,
                    height=300,
                    elem_id="report-image",
                    elem_classes=["panel", "until-filled"],
                    buttons=buttons,
                    alt_text="The one-picture report: four panels, top guesses, sentence",
                )

    def run_masking(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        progress(0.0, desc=MASKING_PROGRESS)
        explanation = service.explanation(
            asked.request, Needs(masking=True), progress=lambda done: progress(done, desc=MASKING_PROGRESS)
        )
        assert explanation.masking is not None
        hidden_view, kept_view, plot = views.masking(explanation)
        return {
            masking_words: words.masking(explanation.masking).markdown,
            hidden: hidden_view,
            kept: kept_view,
            curve: plot,
        }

    def run_trust(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        progress(0.0, desc=TRUST_PROGRESS)
        explanation = service.explanation(
            asked.request, Needs(trust=True), progress=lambda done: progress(done, desc=TRUST_PROGRESS)
        )
        assert explanation.trust is not None
        look = asked.request.look
        curves, scrambled = views.trust(explanation, look.alpha, look.colormap)
        sentence = verdicts.trust(explanation.trust).markdown
        road = verdicts.road(explanation.trust).markdown
        return {
            trust_words: f"{sentence}\n\n{road}" if road else sentence,
            trust_curves: curves,
            trust_scrambled: scrambled,
            trust_table: text.trust_table(
                verdicts.trust_figures(explanation.trust),
                explanation.trust.forward_passes,
                get_method(explanation.method).title,
            ),
        }

    def run_methods(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        progress(0.0, desc=METHODS_PROGRESS)
        explanation = service.explanation(
            asked.request, Needs(methods=True), progress=lambda done: progress(done, desc=METHODS_PROGRESS)
        )
        look = asked.request.look
        shown = views.methods(explanation, look.alpha, look.colormap)
        return {methods_words: verdicts.methods_comparison(explanation.methods).markdown, methods_gallery: shown}

    def run_counter(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        look = asked.request.look
        explanation = service.explanation(asked.request, Needs(counterfactual=True))
        heat, over = views.counterfactual(explanation, look.alpha, look.colormap)
        sentence = f"{words.counterfactual(explanation).markdown} {words.colour_key(look.colormap)}"
        return {counter_words: sentence, counter_heat: heat, counter_over: over}

    def run_guided(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        explanation = service.explanation(asked.request, Needs(guided=True))
        return {guided_words: "", guided_image: views.guided(explanation)}

    def run_classes(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        request = asked.request.top_prediction()
        explanation = service.explanation(request, Needs(compare=COMPARED_CLASSES))
        shown = views.classes(explanation, request.look.alpha, request.look.colormap)[:COMPARED_CLASSES]
        method = get_method(request.method)
        said = "" if method.class_specific else verdicts.class_agnostic(method.title).markdown
        return {classes_words: said, classes_gallery: [(picture, _caption(label)) for picture, label in shown]}

    def run_models(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        pictures, sentence = service.compare_models(asked.request)
        return {models_words: sentence, models_gallery: pictures}

    def run_report(asked: Asked, progress: gr.Progress) -> dict[Any, Any]:
        path = str(service.report(asked.request))
        return {report_words: "", report_file: path, report_image: path}

    def answer(
        fn: Callable[[Asked, gr.Progress], dict[Any, Any]], sentence: Any, pictures: list[Any]
    ) -> Callable[..., Any]:
        # A mistake is told where the answer would be, the pictures stay empty: a red "Error" badge on
        # every picture reads as a broken page, one sentence reads as an answer.
        def failed(message: str) -> dict[Any, Any]:
            return {sentence: text.cannot_answer(message), **{picture: None for picture in pictures}}

        return handling.on_request(fn, failed=failed)

    options: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "model", "preprocess": False}
    slow = {run_masking: curve, run_trust: trust_curves, run_methods: methods_gallery}
    for button, fn, sentence, pictures in (
        (trust_button, run_trust, trust_words, [trust_curves, trust_scrambled, trust_table]),
        (methods_button, run_methods, methods_words, [methods_gallery]),
        (masking_button, run_masking, masking_words, [hidden, kept, curve]),
        (counter_button, run_counter, counter_words, [counter_heat, counter_over]),
        (guided_button, run_guided, guided_words, [guided_image]),
        (classes_button, run_classes, classes_words, [classes_gallery]),
        (models_button, run_models, models_words, [models_gallery]),
        (report_button, run_report, report_words, [report_file, report_image]),
    ):
        progress: dict[str, Any] = {"show_progress": "full", "show_progress_on": slow[fn]} if fn in slow else {}
        button.click(answer(fn, sentence, pictures), inputs, [sentence, *pictures], **options, **progress)
    explore.answers = [
        trust_words,
        trust_curves,
        trust_scrambled,
        trust_table,
        methods_words,
        methods_gallery,
        masking_words,
        hidden,
        kept,
        curve,
        counter_words,
        counter_heat,
        counter_over,
        guided_words,
        guided_image,
        classes_words,
        classes_gallery,
        models_words,
        models_gallery,
        report_words,
        report_file,
        report_image,
    ]
    return explore


def _caption(label: str) -> str:
    """ "tabby 61%" -> "tabby: 61%": the class and its probability, for a gallery caption."""
    name, _, share = label.rpartition(" ")
    return f"{name}: {share}"
