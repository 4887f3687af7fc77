"""What the page does when a person acts, and the ``explain`` endpoint of the API and the assistants.

Every event's handler gets the page's inputs, makes one checked request of them
(:class:`demo.page.handling.Handling`) and returns ``{component: value}``:

- a new photo (an upload, an example, a paste) or "remove image": the old
  results leave the page at once (in the browser, before the server answers),
  then the new photo is explained, always: a class the model does not know is
  answered with the top prediction and a hint that says so;
- the Explain button, a picked class, model, layer or method: the same, and the
  Explore answers about the old class go; the layer picker follows the model
  (its layers, the automatic one first); Score-CAM, the one slow method, says
  how far it is;
- the box threshold, the opacity and the colours: the remembered explanation
  drawn again, never a model run;
- "Download everything": the full-quality files of what the page shows, written
  when asked, then downloaded by the browser.

The ``explain`` endpoint is the same pipeline: the request, its explanation,
its full-quality files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from demo import text
from demo.page import assets
from demo.page.explore import Explore
from demo.page.handling import Asked, Handling, friendly
from demo.page.layout import Layout, inline_jpeg, layer_choices, legend_html
from demo.request import TOP_PREDICTION
from gradcam import words
from gradcam.explanation import PANELS
from gradcam.names import closest

Outputs = dict[Any, Any]


def wire(handling: Handling, layout: Layout, explore: Explore) -> None:
    """Connects the page's controls to the service (call inside the ``gr.Blocks`` context)."""
    service = handling.service
    categories = list(service.categories)
    results = [*layout.panels.values(), layout.top5, layout.sentence, layout.hint, layout.archive, layout.layer]

    def cleared() -> Outputs:
        """The results without a photo: no panels, the waiting sentence, no hint, no download."""
        return {
            **{panel: None for panel in layout.panels.values()},
            layout.top5: "",
            layout.sentence: text.WAITING,
            layout.hint: gr.update(value="", visible=False),
            layout.archive: None,
        }

    def failed(message: str) -> Outputs:
        """One message where the sentence goes, instead of a red badge on every output; the old results go."""
        return {**cleared(), layout.sentence: text.cannot_explain(message)}

    def also_explore(answer: Callable[..., Outputs]) -> Callable[..., Outputs]:
        """The same answer, and the Explore answers emptied (they were about the old photo, class or model)."""

        @functools.wraps(answer)
        def answered(*args: Any) -> Outputs:
            return {**answer(*args), **explore.cleared()}

        return answered

    def shown(asked: Asked, progress: gr.Progress | None = None) -> Outputs:
        """The four panels, the top 5, the sentence and the hint of a request."""
        report = None
        if progress is not None and asked.request.method == "scorecam":  # the one slow method: say how far it is
            bar = progress

            def report(done: float) -> None:
                bar(done, desc=text.SCORE_CAM)

        result = service.show(asked.request, report)
        explanation, look = result.explanation, asked.request.look
        alts = text.alt_texts(explanation, look.colormap)
        hint = gr.update(value="", visible=False)
        if asked.unknown is not None:
            close = closest(asked.unknown, categories)
            hint = gr.update(value=text.unknown_class(asked.unknown, close, used=explanation.class_name), visible=True)
        return {
            **{
                layout.panels[key]: gr.update(value=inline_jpeg(path.read_bytes(), path.name), alt_text=alts[key])
                for key, path in result.display.items()
            },
            layout.top5: text.top_k_html(explanation),
            layout.sentence: words.summary(explanation, asked.request.target is not None, look.colormap).markdown,
            layout.hint: hint,
            layout.archive: None,  # the download of what was shown before is gone; a click writes the new one
            # The model's layers, the one read selected: after a model change, the new model's automatic one.
            layout.layer: gr.update(
                choices=layer_choices(service.layers(asked.request.model)), value=asked.request.layer or ""
            ),
        }

    def explained(asked: Asked, progress: gr.Progress) -> Outputs:
        return shown(asked, progress)

    def redrawn(asked: Asked, progress: gr.Progress) -> Outputs:
        return shown(asked)  # the same as explained: the remembered explanation makes it a re-drawing

    def downloaded(asked: Asked, progress: gr.Progress) -> Outputs:
        # One thread: the files are written while the person looks at the pictures, perhaps already moving a slider.
        return {layout.archive: str(service.files(asked.request, workers=1).archive)}

    def no_download(message: str) -> Outputs:
        # The store is full, or the photo was removed: said in a notice, the results stay.
        gr.Warning(message, title="No download this time")
        return {layout.archive: None}

    explain_page = handling.on_request(
        also_explore(explained),
        failed=also_explore(failed),
        empty=also_explore(cleared),
        repeat=lambda: {layout.hint: gr.skip()},
    )
    redraw_page = handling.on_request(redrawn, failed=failed, empty=cleared)
    download = handling.on_request(downloaded, failed=no_download)
    everything = [*results, *explore.answers]
    # preprocess=False: every value reaches the request's checks as it was sent (Gradio's own conversion would
    # refuse some in its words first). postprocess=False: the answer is sent as made, the panels inline (see
    # inline_jpeg), so the browser paints them from the answer itself, with no download after it.
    page: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_id": "model",
        "show_progress_on": [layout.sentence],
        "preprocess": False,
        "postprocess": False,
    }
    light: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "page", "concurrency_limit": None}

    layout.image.change(explain_page, layout.inputs, everything, js=assets.NEW_PHOTO_JS, **page).then(
        None, js=assets.SHOWN_JS
    )
    triggers = (layout.button.click, layout.target.input, layout.model.input, layout.layer.input, layout.method.input)
    for trigger in triggers:
        trigger(explain_page, layout.inputs, everything, **page).then(None, js=assets.SHOWN_JS)
    for slider in (layout.threshold, layout.alpha):
        # .change also follows a number typed into the slider's field; only the last value runs.
        slider.change(redraw_page, layout.inputs, results, trigger_mode="always_last", **page)
    layout.colormap.input(redraw_page, layout.inputs, results, **page)
    layout.colormap.input(legend_html, layout.colormap, layout.legend, **light)
    # The model's slot: the explanation is remembered, but may have been forgotten meanwhile (then it runs again).
    files = {**page, "show_progress_on": None, "postprocess": True}  # the zip is a file Gradio serves
    layout.download.click(download, layout.inputs, layout.archive, **files).success(
        None, js=assets.DOWNLOAD_JS
    )

    # The API (and the MCP tool): the same request and pipeline, the full-quality files as the answer.
    label = gr.Label(num_top_classes=5, label="Top 5 guesses", visible=False)
    api_outputs = [*layout.panels.values(), label, layout.sentence, layout.archive]

    @friendly
    def explain(
        image: Any,
        target: str = TOP_PREDICTION,
        model: str | None = None,
        threshold: float = 0.15,
        alpha: float = 0.5,
        colormap: str = "jet",
        layer: str = "",
        method: str = "Grad-CAM",
        http: gr.Request = None,  # type: ignore[assignment]  # given by Gradio
    ) -> Outputs:
        """Explains which parts of a photo an image classifier used for its answer (Grad-CAM).

        Give a photo (a file, or a base64 data: URL; links are not fetched). The model names what it
        sees; Grad-CAM colours the regions that led to that class. Use it to check *why* a
        classifier decided, or where an object is.

        Args:
            image: the photo to explain (JPEG, PNG, WebP, HEIC...).
            target: the ImageNet class to explain, e.g. "tabby" or "espresso"; "Top prediction" explains the
                model's own best guess.
            model: which model; leave empty for the default.
            threshold: box threshold, 0.05 to 0.95: how strong the evidence must be to be boxed (share of the
                strongest).
            alpha: heatmap opacity over the photo, 0 to 1.
            colormap: heatmap colours: jet, viridis, cividis or magma.
            layer: the network layer the heatmap is read from, one the model offers; leave empty for its
                automatic layer.
            method: how the heatmap is made: Grad-CAM (the default), Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM,
                Eigen-CAM or Score-CAM (one pass per feature map: slow, bounded in time).

        Returns:
            The photo, the heatmap, the heatmap over the photo, the photo with a box around the strongest evidence
            (PNG images); the top 5 classes with probabilities; one sentence that says what the model sees; a zip
            of everything.
        """
        asked = handling.request(
            (image, target, model, threshold, alpha, colormap, layer, method), http, unknown_class="raise"
        )
        written = service.files(asked.request)
        explanation = written.explanation
        sentence = words.summary(explanation, asked.request.target is not None, asked.request.look.colormap).markdown
        return {
            **{layout.panels[key]: str(written.panels[key]) for key in PANELS},
            label: text.top_k_label(explanation),
            layout.sentence: sentence,
            layout.archive: str(written.archive),
        }

    gr.Button(visible=False).click(
        explain, layout.inputs, api_outputs, api_name="explain", concurrency_id="model", preprocess=False
    )
