"""The page: one Gradio Blocks app that formats what :class:`demo.service.DemoService` returns.

Layout, first screen first: a compact input row (photo, class picker, Explain,
example thumbnails), the sentence, the four panels and their colour key; then
the top-5, the download and the settings folded into an accordion; then the
Explore area. Every view follows the controls and the current photo: a new
photo or "remove image" clears what belonged to the old one.
"""

from __future__ import annotations

import base64
import difflib
import functools
import html
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData

from gradcam import GradCAMError, words
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA
from gradcam.render import heatmap

from demo import guard, text
from demo.service import DemoService, Rendered
from demo.settings import MAX_UPLOAD_BYTES

log = logging.getLogger("demo")

EXAMPLES_DIR = Path(__file__).parent / "examples"
COLORMAPS = ("jet", "viridis", "cividis", "magma")
MASKING_PROGRESS = "Hiding parts of the photo and asking the model again"
PANEL_TITLES = {"original": "Original", "heatmap": "Heatmap", "overlay": "Overlay", "boxes": "Boxes"}
#: Largest upload the page announces: the server's own limit.
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES / 1024 / 1024

# Colours chosen for contrast: every text colour below reaches 4.5:1 on its background
# (checked from computed styles by tests/test_browser.py).
ACCENT = "#b3400a"  # buttons, selected tab, links: white text on it is 5.6:1
CSS = f"""
:root, .gradio-container {{
  --button-primary-background-fill: {ACCENT};
  --button-primary-background-fill-hover: #8f3308;
  --button-primary-text-color: #ffffff;
  --button-primary-border-color: {ACCENT};
  --block-label-text-color: #3f3f46;
  --block-title-text-color: #27272a;
  --block-info-text-color: #52525b;
  --body-text-color-subdued: #52525b;
  --input-placeholder-color: #5f5f69;
  --link-text-color: {ACCENT};
  --color-accent: {ACCENT};
  --color-accent-soft: #fdebdd;
  --checkbox-label-text-color-selected: #27272a;
}}
.gradio-container h1 {{ margin: 0 0 2px 0; font-size: 1.6em; }}
#intro p {{ margin: 0; }}
.banner {{ background: #fff4e5; border: 1px solid #b3400a; border-radius: 8px; padding: 2px 12px; color: #27272a; }}
#sentence {{ font-size: 1.12em; min-height: 1.6em; }}
#sentence p {{ margin: 0; }}
#picker-row {{ align-items: flex-end; }}
#explain {{ max-height: 46px; margin-bottom: 2px; }}
#target-hint, #upload-hint {{ color: #8a1c1c; font-weight: 600; }}
.panel label[data-testid="block-label"] {{ position: static; box-shadow: none; border: none; }}
.panel {{ display: flex; flex-direction: column; flex-wrap: nowrap; }}
.panel .image-container {{ flex: 1 1 auto; min-height: 0; height: auto !important; }}
.gallery .caption-label, .gallery-item .caption-label {{ color: #27272a !important; opacity: 1 !important; }}
.tab-container button[role="tab"] {{ color: #3f3f46; }}
.tab-container button[role="tab"][aria-selected="true"] {{ color: {ACCENT}; }}
#legend {{ margin-top: -4px; }}
#legend .scale {{ height: 14px; border-radius: 4px; }}
#legend .words {{ display: flex; justify-content: space-between; font-size: 0.95em; color: #27272a; }}
.top5 {{ list-style: none; padding: 0; margin: 0; }}
.top5-title {{ font-weight: 600; margin: 0 0 6px 0; color: #27272a; }}
.top5 li {{ display: grid; grid-template-columns: 1fr auto; gap: 0 8px; margin: 0 0 6px 0; color: #27272a; }}
.top5 li.chosen .name {{ font-weight: 700; }}
.top5 .bar {{ grid-column: 1 / span 2; height: 6px; background: #e4e4e7; border-radius: 3px; }}
.top5 .bar span {{ display: block; height: 6px; background: {ACCENT}; border-radius: 3px; }}
@media (max-width: 640px) {{
  .panel {{ height: auto !important; }}
  .panel .image-container, .panel .image-frame {{ height: auto !important; }}
  .panel img {{ max-height: 50vh; width: 100%; object-fit: contain; }}
  .panel .icon-button-wrapper {{ position: static; justify-content: flex-end; margin: 0 0 4px auto; width: fit-content; }}
  #classes-gallery .grid-container, #models-gallery .grid-container {{ --grid-cols: 1 !important; }}
  #classes-gallery .grid-wrap, #models-gallery .grid-wrap {{ height: auto !important; max-height: none !important; }}
}}
#examples .gallery-item img, #examples button img {{ object-fit: cover; }}
/* No empty boxes: results, download and Explore answers show once they have something, or while it is on its way. */
#results:not(:has(#panel-original img)) {{ display: none; }}
/* (No comma inside :has(): Gradio's CSS scoping splits selectors at every comma.) */
.until-filled:not(:has(img)):not(:has(a)):not(:has(.wrap:not(.hide))) {{ display: none; }}
"""

#: Page script, run once at load: the class picker selects its text when entered (typing
#: replaces "Top prediction"), the sentence is a live region, uploads over the limit are
#: explained in our words before Gradio's own check. {limit} is filled in by build_demo.
PAGE_JS = """
() => {
  const LIMIT_MB = %(limit)s;
  const TOO_BIG = %(too_big)s;
  const picker = (el) => el && el.matches && el.matches('#target input');
  // Typing replaces the chosen class: the text is selected when the picker is entered or clicked,
  // unless the person is in the middle of typing a name (then a click moves the caret).
  let typing = false;
  document.addEventListener('focusin', (e) => { if (picker(e.target)) { typing = false; e.target.select(); } });
  document.addEventListener('input', (e) => { if (picker(e.target)) typing = true; }, true);
  document.addEventListener('keydown', (e) => {
    if (picker(e.target) && (e.key === 'Escape' || e.key === 'Enter')) typing = false;
  }, true);
  document.addEventListener('click', (e) => { if (picker(e.target) && !typing) e.target.select(); }, true);
  const live = () => {
    const upload = document.querySelector('#upload-hint');
    if (upload && !upload.textContent.trim() && !upload.hidden) { upload.hidden = true; upload.style.display = 'none'; }
    for (const id of ['#sentence', '#target-hint']) {
      const region = document.querySelector(id);
      if (region && !region.hasAttribute('aria-live')) {
        region.setAttribute('aria-live', 'polite');
        region.setAttribute('role', 'status');
      }
    }
  };
  live();
  new MutationObserver(live).observe(document.body, {childList: true, subtree: true});
  const hint = (message) => {
    const box = document.querySelector('#upload-hint');
    if (box) { box.textContent = message; box.hidden = !message; box.style.display = message ? '' : 'none'; }
  };
  const tooBig = (files) => {
    for (const file of files || []) {
      if (file.size > LIMIT_MB * 1024 * 1024) {
        return TOO_BIG.replace('{size}', (file.size / 1048576).toFixed(1)).replace('{limit}', LIMIT_MB);
      }
    }
    return '';
  };
  const guard = (e, files) => {
    const message = tooBig(files);
    hint(message);
    if (message) { e.stopImmediatePropagation(); e.preventDefault(); }
  };
  document.addEventListener('drop', (e) => {
    if (e.target.closest && e.target.closest('#input-image')) guard(e, e.dataTransfer && e.dataTransfer.files);
  }, true);
  document.addEventListener('change', (e) => {
    if (e.target.closest && e.target.closest('#input-image') && e.target.type === 'file') {
      guard(e, e.target.files);
      if (e.defaultPrevented) e.target.value = '';
    }
  }, true);
}
"""

#: When a new photo arrives, the old results fade at once, before the server answers.
DIM_JS = """
(...inputs) => {
  const results = document.querySelector('#results');
  if (results) results.style.opacity = '0.3';
  return inputs;
}
"""

#: Resolves once the four panels have painted their pictures (or after 3 s, also in a background tab, where no
#: frames come). The download step waits for it, so writing the full-quality files never takes the CPU from the
#: browser while it shows the result.
PAINTED_JS = """
() => new Promise(resolve => {
  setTimeout(() => resolve([]), 3000);
  const start = performance.now();
  const frame = () => new Promise(next => requestAnimationFrame(next));
  const images = () => [...document.querySelectorAll('#results .panel img')];
  const wait = async () => {
    await frame();  // the new pictures are in the page
    while (!images().every(img => img.complete) && performance.now() - start < 3000) await frame();
    await Promise.all(images().map(img => img.decode().catch(() => null)));
    await frame();
    await frame();  // a frame with them has been painted
    resolve([]);
  };
  wait();
})
"""

#: After a new result: full colour again, and on a narrow screen the sentence and panels brought into view.
SCROLL_JS = """
() => {
  const results = document.querySelector('#results');
  if (results) results.style.opacity = '';
  const sentence = document.querySelector('#sentence');
  if (sentence && window.innerWidth < 768) sentence.scrollIntoView({behavior: 'smooth', block: 'start'});
}
"""


class Page(gr.Blocks):
    """``gr.Blocks`` whose served HTML describes the page to link previews (Open Graph, Twitter).

    Gradio's page template fills ``og:description`` and ``og:image`` from the
    config's ``simple_description`` and ``thumbnail``, which only
    ``gr.Interface`` sets; crawlers do not run the page's script, so the tags
    must be in the HTML the server sends.
    """

    def __init__(self, *, description: str, thumbnail: str | None = None, **kwargs: Any) -> None:
        self.simple_description = description
        self.thumbnail = thumbnail or ""
        super().__init__(**kwargs)

    def get_config_file(self) -> Any:
        config = super().get_config_file()
        config["simple_description"] = self.simple_description  # type: ignore[typeddict-unknown-key]
        config["thumbnail"] = self.thumbnail  # type: ignore[typeddict-unknown-key]
        return config


class ImageUpload(gr.Image):
    """An image input that hands the raw upload to the engine, which checks it.

    ``gr.Image`` opens uploads with Pillow before the event runs, so a broken or
    hostile file would fail inside Gradio with a generic error; here every file
    reaches :func:`gradcam.load_image` and gets a clear message.
    """

    is_template = True  # drawn by the frontend's Image component

    def preprocess(self, payload: ImageData | None) -> str | bytes | None:  # type: ignore[override]  # bytes: pasted images
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
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        guard.drop_if_gone()  # a visitor who has left gets no model run
        try:
            return fn(*args, **kwargs)
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


def close_names(typed: str, names: Sequence[str], n: int = 5) -> list[str]:
    """Class names close to what a person typed: names containing it first, then look-alikes.

    Names that start with the text, or have a word that does, come before names
    that merely contain it ("cat": "cat... ", "tiger cat", "Persian cat" before
    "polecat"); spelling mistakes ("tigr") are caught by :mod:`difflib`.
    """
    wanted = " ".join(typed.split()).lower()
    if not wanted:
        return []
    lowered = [name.lower() for name in names]

    def rank(index: int) -> tuple[int, int]:
        name = lowered[index]
        words = name.replace("-", " ").split()
        starts = name.startswith(wanted) or any(w.startswith(wanted) for w in words)
        return (0 if starts else 1, len(name))

    containing = sorted((i for i, name in enumerate(lowered) if wanted in name), key=rank)
    found = [names[i] for i in containing]
    for close in difflib.get_close_matches(wanted, lowered, n=n, cutoff=0.6):
        name = names[lowered.index(close)]
        if name not in found:
            found.append(name)
    return found[:n]


def legend_html(colormap: str = COLORMAP) -> str:
    """The colour key under the panels: the colour map as a CSS gradient, its ends in words."""
    samples = heatmap(np.linspace(0.0, 1.0, 11, dtype=np.float32)[None, :], colormap)[0]  # (11, 3)
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in samples)
    words = text.colours(colormap)
    return (
        f'<div id="legend-body"><div class="scale" role="img" aria-label="Colour key: {words.none} means no evidence, '
        f'{words.strong} the strongest evidence" style="background: linear-gradient(to right, {stops})"></div>'
        f'<div class="words"><span>{words.none.capitalize()}: no evidence</span>'
        f"<span>{words.strong.capitalize()}: strongest evidence</span></div></div>"
    )


def head(title: str, description: str, image_url: str | None) -> str:
    """Link-preview tags (Open Graph, Twitter) for a shared link to the page."""
    tags = {
        "og:title": title,
        "og:description": description,
        "og:type": "website",
        "twitter:card": "summary_large_image",
        "twitter:title": title,
        "twitter:description": description,
    }
    if image_url:
        tags["og:image"] = image_url
        tags["twitter:image"] = image_url
    lines = [f'<meta name="description" content="{html.escape(description)}">']
    for key, value in tags.items():
        attribute = "property" if key.startswith("og:") else "name"
        lines.append(f'<meta {attribute}="{key}" content="{html.escape(value)}">')
    return "\n".join(lines)


def _mcp_returns_every_output() -> None:
    """Lets an assistant receive each of explain's outputs, the pictures as pictures.

    Gradio 6.31's MCP server wraps the outputs of a queued endpoint in one more
    list when the client asks for no progress updates
    (``gradio.mcp.GradioMCPServer._execute_tool_without_progress``: ``return [result]``
    where ``result`` is already the tuple of outputs), so the assistant gets one
    text of Python reprs instead of four PNGs, the top 5 and the sentence. With
    progress updates the same server returns the list itself; this makes both
    paths agree. Harmless once Gradio returns a list there.
    """
    try:
        from gradio.mcp import GradioMCPServer
    except ImportError:  # gradio without its [mcp] extra: no MCP server to fix
        return
    original = GradioMCPServer._execute_tool_without_progress
    if getattr(original, "unwraps_outputs", False):
        return

    async def execute(self: Any, job: Any) -> list[Any]:
        data = await original(self, job)
        if len(data) == 1 and isinstance(data[0], tuple):  # several outputs, wrapped once too often
            return list(data[0])
        return data

    execute.unwraps_outputs = True  # type: ignore[attr-defined]
    GradioMCPServer._execute_tool_without_progress = execute  # type: ignore[method-assign]


def _in_words(outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For an Explore view whose first output is its sentence: a mistake is told there, the pictures stay empty.

    A red "Error" badge on every picture reads as a broken page; one sentence where
    the answer would be reads as an answer. Unexpected failures are logged (see
    :func:`_friendly`) and apologised for the same way.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        friendly = _friendly(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return friendly(*args, **kwargs)
            except gr.Error as exc:
                return (text.cannot_answer(str(exc.message)), *(None for _ in range(outputs - 1)))

        return wrapper

    return decorate


def build_demo(
    service: DemoService, *, on_spaces: bool = False, preview_image: str | None = None, upload_limit_mb: float = UPLOAD_LIMIT_MB
) -> gr.Blocks:
    """Lays out the page and wires its events to ``service``.

    The ``explain`` API endpoint (and MCP tool) takes (image file, class name or
    "Top prediction", model title, box threshold, overlay opacity, colours) and
    returns the four pictures (PNG), the top-5 label, the sentence and the zip of
    everything.

    Args:
        service: runs the models.
        on_spaces: the page is served on Hugging Face Spaces (``SPACE_ID`` is set):
            show the buttons that share a picture there.
        preview_image: absolute URL of the picture a shared link shows (``og:image``).
        upload_limit_mb: the upload limit the server enforces, announced in our words.
    """
    _mcp_returns_every_output()
    categories = list(service.categories)
    known = {" ".join(name.split()).lower() for name in categories}
    panel_buttons: list[Any] = ["download", "fullscreen", *(["share"] if on_spaces else [])]

    def outputs_of(result: Rendered) -> tuple[Any, ...]:
        files = [str(result.panels[name]) for name in PANEL_TITLES]
        return (*files, result.label, result.sentence, str(result.archive))

    @_friendly
    def explain(
        image: str | bytes | None,
        target: str = text.TOP_PREDICTION,
        model: str | None = None,
        threshold: float = BOX_THRESHOLD,
        alpha: float = OVERLAY_ALPHA,
        colormap: str = COLORMAP,
    ) -> tuple[Any, ...]:
        """Explains which parts of a photo an image classifier used for its answer (Grad-CAM).

        Give a photo (a URL or a file). The model names what it sees; Grad-CAM
        colours the regions that led to that class. Use it to check *why* a
        classifier decided, or where an object is.

        Args:
            image: the photo to explain (JPEG, PNG, WebP...).
            target: the ImageNet class to explain, e.g. "tabby" or "espresso"; "Top prediction" explains the model's own best guess.
            model: which model; leave empty for the default.
            threshold: box threshold, 0.05 to 0.95: how strong the evidence must be to be boxed (share of the strongest).
            alpha: heatmap opacity over the photo, 0 to 1.
            colormap: heatmap colours: jet, viridis, cividis or magma.

        Returns:
            The photo, the heatmap, the heatmap over the photo, the photo with a box around the strongest evidence
            (PNG images); the top 5 classes with probabilities; one sentence that says what the model sees; a zip of everything.
        """
        result = service.explain(image, target, model, threshold, alpha, colormap, name=_name_of(image))
        return outputs_of(result)

    def _unknown(target: str | None) -> bool:
        return target not in (None, "", text.TOP_PREDICTION) and " ".join(str(target).split()).lower() not in known

    def page_explain(
        image: str | bytes | None, target: str, model: str, threshold: float, alpha: float, colormap: str
    ) -> tuple[Any, ...]:
        """The page's explanation: an unknown class or no photo leaves the results as they are."""
        if _unknown(target):
            hint = text.unknown_class(str(target), close_names(str(target), categories))
            return unchanged(gr.update(value=hint, visible=True))
        if image is None:  # a class picked before any photo: nothing to explain yet, and no mistake
            return unchanged(gr.update(value="", visible=False))
        try:
            result = _friendly(service.show)(image, target, model, threshold, alpha, colormap)
        except gr.Error as exc:
            # One message where the sentence goes, instead of a red badge on every output; the old results go.
            return (*cleared()[:5], text.cannot_explain(str(exc.message)), *cleared()[6:])
        alts = text.alt_texts(result.explanation, colormap)
        panels_out = [
            gr.Image(value=str(result.display[key]), alt_text=alts[key]) for key in PANEL_TITLES
        ]
        return (
            *panels_out,
            text.top_k_html(result.explanation),
            text.describe(result.explanation, result.asked, colormap),
            None,  # the download follows in its own step (page_download), after the pictures are painted
            (result.key, threshold, alpha, colormap, _name_of(image)),  # what that step writes
            gr.update(value="", visible=False),
        )

    def page_download(shown: tuple[Any, ...] | None) -> Any:
        """The full-quality files of what the page shows, written after it is shown.

        It takes what the page shows (no image), never runs the model, and so needs no model slot.
        """
        guard.drop_if_gone()  # a visitor who has left needs no files
        if not shown:
            return gr.skip()
        key, threshold, alpha, colormap, name = shown
        try:
            archive = service.files(tuple(key), threshold, alpha, colormap, name)
        except GradCAMError:
            return None  # the store is full: the sentence already carries the page's words for that
        return None if archive is None else str(archive)

    def new_photo(
        image: str | bytes | None, target: str, model: str, threshold: float, alpha: float, colormap: str
    ) -> tuple[Any, ...]:
        """A new photo is explained; no photo ("remove image") clears what belonged to the old one.

        The Explore answers about the old photo go in the same step (one round trip, not two).
        """
        shown = cleared() if image is None else page_explain(image, target, model, threshold, alpha, colormap)
        return (*shown, *(None for _ in explore_outputs))

    def unchanged(hint: Any) -> tuple[Any, ...]:
        """The results as they are, with ``hint``; nothing new for the download step to write."""
        return (*(gr.skip() for _ in page_outputs[:-2]), None, hint)  # the last two: the download's request, the hint

    def cleared() -> tuple[Any, ...]:
        """The page without a photo: no panels, the waiting sentence, no download."""
        return (
            *(None for _ in PANEL_TITLES), "", text.WAITING, None, None, gr.update(value="", visible=False),
        )

    with warnings.catch_warnings():
        # Gradio 6 prefers head= and js= at launch(); here they travel with the page wherever it is launched.
        warnings.filterwarnings("ignore", message="The parameters have been moved")
        blocks = Page(
            title=text.TITLE, description=text.DESCRIPTION, thumbnail=preview_image, delete_cache=(300, 900),
            **_page_options(preview_image, upload_limit_mb),
        )
    with blocks as demo:
        gr.Markdown(text.INTRO, elem_id="intro")
        if service.untrained:
            gr.Markdown(text.UNTRAINED_BANNER, elem_classes="banner", elem_id="untrained-banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=260):
                image = ImageUpload(
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
                        [text.TOP_PREDICTION, *sorted(set(categories), key=str.lower)],
                        value=text.TOP_PREDICTION,
                        label="Class to explain",
                        info=text.TARGET_INFO,
                        filterable=True,
                        allow_custom_value=True,  # a typed name is checked here and answered with a hint
                        elem_id="target",
                        scale=4,
                        min_width=260,  # on a phone the picker takes the whole width, the button goes below
                    )
                    button = gr.Button("Explain", variant="primary", elem_id="explain", scale=1, min_width=110)
                hint = gr.Markdown("", visible=False, elem_id="target-hint")
                examples_slot = gr.Column()
        sentence = gr.Markdown(text.WAITING, elem_id="sentence", label="Sentence")
        # Built with the page and hidden by CSS while the panels are empty: a result only fills it in.
        with gr.Column(elem_id="results"):
            with gr.Row(equal_height=True):
                panels = [
                    gr.Image(
                        label=title,
                        type="filepath",
                        format="png",
                        interactive=False,
                        height=230,
                        buttons=panel_buttons,
                        elem_id=f"panel-{key}",
                        elem_classes="panel",
                        min_width=270,  # four abreast on a laptop, one per row on a phone
                    )
                    for key, title in PANEL_TITLES.items()
                ]
            legend = gr.HTML(legend_html(COLORMAP), elem_id="legend", padding=False)
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    top5 = gr.HTML("", label="Top 5 guesses", elem_id="top5")
                with gr.Column(scale=2):
                    archive = gr.File(
                        label="Download everything (4 PNGs, the raw map, a JSON manifest)", elem_id="archive",
                        elem_classes="until-filled",
                    )
        with gr.Accordion(text.SETTINGS, open=False, elem_id="settings"):
            with gr.Row():
                model = gr.Radio(
                    service.model_titles, value=service.default_model, label="Model", elem_id="model",
                    info=text.models_note(service.models.status()) or None,
                )
                colormap = gr.Radio(
                    list(COLORMAPS), value=COLORMAP, label="Colours",
                    info="viridis and cividis read well with colour blindness and in greyscale.",
                    elem_id="colormap",
                )
            with gr.Row():
                threshold = gr.Slider(
                    0.05, 0.95, value=BOX_THRESHOLD, step=0.05, label="Box threshold", elem_id="threshold",
                    info="How strong the evidence must be to be boxed (share of the strongest).",
                )
                alpha = gr.Slider(0.0, 1.0, value=OVERLAY_ALPHA, step=0.05, label="Heatmap opacity", elem_id="opacity")
        inputs = [image, target, model, threshold, alpha, colormap]
        request = gr.State(None)  # what the page shows: the download step writes its files
        page_outputs = [*panels, top5, sentence, archive, request, hint]
        with examples_slot:
            examples = gr.Examples(
                examples=[[str(path)] for _, path in _examples()],
                inputs=[image],
                label="Examples: click one",
                examples_per_page=8,
                elem_id="examples",
            )
        with gr.Accordion("How to read this", open=False):
            gr.Markdown(text.HOW_TO_READ)
        explore_outputs = _explore(service, inputs, on_spaces)

        # The API (and MCP tool): the same outputs as ever, with a gr.Label for the top 5.
        api_label = gr.Label(num_top_classes=5, label="Top 5 guesses", visible=False)
        api_trigger = gr.Button(visible=False)
        api_trigger.click(
            explain, inputs, [*panels, api_label, sentence, archive], api_name="explain", concurrency_id="model",
        )

        page: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "model", "show_progress_on": [sentence]}
        # Page-only steps that run no model: queued too (no REST route skips the queue), never waiting for a model run.
        light: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "page", "concurrency_limit": None}
        # Each explanation shows its pictures first; the full-quality download follows in a second step.
        # Its own slot: it never runs the model (what the cache has forgotten gets no files).
        files: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "files"}

        def then_download(shown: Any) -> None:
            """Once the new pictures are painted, the full-quality files, so that writing them never slows the painting."""
            shown.success(None, js=PAINTED_JS).success(page_download, request, archive, **files)

        # The button, a new photo (an example, "remove image") and a picked class bring the result into view. On a new
        # photo the old results are dimmed in the browser at once (no round trip) and replaced when the new ones come.
        for shown in (
            button.click(page_explain, inputs, page_outputs, **page),
            image.change(new_photo, inputs, [*page_outputs, *explore_outputs], js=DIM_JS, **page),
            target.input(page_explain, inputs, page_outputs, **page),
        ):
            shown.then(None, js=SCROLL_JS)
            then_download(shown)
        then_download(model.input(page_explain, inputs, page_outputs, **page))
        for slider in (threshold, alpha):
            # .change also follows a number typed into the slider's field; only the last value runs.
            then_download(slider.change(page_explain, inputs, page_outputs, trigger_mode="always_last", **page))
        then_download(colormap.input(page_explain, inputs, page_outputs, **page))
        colormap.input(legend_html, colormap, legend, **light)
        # Each visitor's page says which models are still loading or unavailable, as it is when they arrive.
        demo.load(lambda: gr.update(info=text.models_note(service.models.status()) or None), None, model, **light)
        _check_inputs(service, target, model, threshold, alpha, colormap)
        del examples, upload_hint
    return demo


def _check_inputs(service: DemoService, target: Any, model: Any, threshold: Any, alpha: Any, colormap: Any) -> None:
    """Every setting is checked as it arrives, so the page and API callers get the same clear message."""
    guard.checked(target, lambda v: guard.text(v, "Class to explain", 200, default=text.TOP_PREDICTION))
    guard.checked(model, lambda v: guard.choice(v, "Model", service.model_titles, default=service.default_model))
    guard.checked(threshold, lambda v: guard.number(v, "Box threshold", 0.05, 0.95))
    guard.checked(alpha, lambda v: guard.number(v, "Heatmap opacity", 0.0, 1.0))
    guard.checked(colormap, lambda v: guard.choice(v, "Colours", COLORMAPS, default=COLORMAP))


def _page_options(preview_image: str | None, upload_limit_mb: float) -> dict[str, str]:
    """The page's <head> tags and script, given to ``gr.Blocks`` (Gradio 6 also takes them at launch)."""
    script = PAGE_JS % {"limit": json.dumps(upload_limit_mb), "too_big": json.dumps(text.UPLOAD_TOO_BIG)}
    return {"head": head(text.TITLE, text.DESCRIPTION, preview_image), "js": script}


def _picture(label: str, height: int, elem_id: str, buttons: list[Any]) -> gr.Image:
    """An output picture of the Explore area, sent as PNG, its label above it."""
    return gr.Image(
        label=label, type="numpy", format="png", interactive=False, height=height, elem_id=elem_id,
        elem_classes=["panel", "until-filled"], buttons=buttons, alt_text=label,
    )


def _explore(service: DemoService, inputs: list[Any], on_spaces: bool) -> list[Any]:
    """The Explore area: the questions an audience asks next, each answered on request.

    Returns:
        Its outputs, which a new photo clears.
    """
    image, target, model, threshold, alpha, colormap = inputs
    buttons: list[Any] = ["download", "fullscreen", *(["share"] if on_spaces else [])]
    with gr.Accordion("Explore: is it really looking there? What speaks against it? Would another model agree?", open=True):
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone the questions wrap onto two lines, none hidden in a menu
            with gr.Tab("Is it really looking there?"):
                gr.Markdown(text.MASKING_HELP)
                masking_button = gr.Button("Run the masking test", elem_id="masking-run")
                masking_words = gr.Markdown(elem_id="masking-sentence")
                with gr.Row():
                    hidden = _picture("Highlighted area hidden", 260, "masking-hidden", buttons)
                    kept = _picture("Only the highlighted area kept", 260, "masking-kept", buttons)
                    curve = _picture("Deletion curve", 260, "masking-curve", buttons)
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
                classes_button = gr.Button("Compare the top 3 classes", elem_id="classes-run")
                classes_words = gr.Markdown(elem_id="classes-sentence")
                classes_gallery = gr.Gallery(
                    label="Top 3 classes", columns=3, height="auto", object_fit="contain", elem_id="classes-gallery", elem_classes="until-filled",
                    allow_preview=True,
                )
            with gr.Tab("Compare models"):
                gr.Markdown(text.MODELS_HELP)
                models_button = gr.Button("Compare the models", elem_id="models-run")
                models_words = gr.Markdown(elem_id="models-sentence")
                models_gallery = gr.Gallery(
                    label="Each model's view", columns=3, height="auto", object_fit="contain", elem_id="models-gallery", elem_classes="until-filled",
                )
            with gr.Tab("One-picture report"):
                gr.Markdown(text.REPORT_HELP)
                report_button = gr.Button("Make the report", elem_id="report-run")
                report_words = gr.Markdown(elem_id="report-sentence")
                report_file = gr.File(label="Report (PNG)", elem_id="report-file", elem_classes="until-filled")
                report_image = gr.Image(
                    label="Report", type="filepath", format="png", interactive=False, height=300, elem_id="report-image",
                    elem_classes=["panel", "until-filled"], buttons=buttons, alt_text="The one-picture report: four panels, top guesses, sentence",
                )

    @_in_words(4)
    def run_masking(
        image: str | bytes | None, target: str, model: str, threshold: float, progress: gr.Progress = gr.Progress()
    ) -> tuple[Any, ...]:
        progress(0.0, desc=MASKING_PROGRESS)
        test, hidden_view, kept_view, plot = service.masking(
            image, target, model, threshold, progress=lambda done: progress(done, desc=MASKING_PROGRESS)
        )
        return words.masking(test).markdown, hidden_view, kept_view, plot

    @_in_words(2)
    def run_guided(image: str | bytes | None, target: str, model: str) -> tuple[str, Any]:
        return "", service.guided(image, target, model)

    @_in_words(2)
    def run_classes(image: str | bytes | None, model: str, alpha: float, colormap: str) -> tuple[str, Any]:
        return "", service.compare_classes(image, model, alpha, colormap)

    @_in_words(3)
    def run_counter(image: str | bytes | None, target: str, model: str, alpha: float, colormap: str) -> tuple[Any, ...]:
        heat, over, sentence = service.counterfactual(image, target, model, alpha, colormap)
        return f"{sentence} {text.colour_key(colormap)}", heat, over

    @_in_words(3)
    def run_report(
        image: str | bytes | None, target: str, model: str, threshold: float, alpha: float, colormap: str
    ) -> tuple[str, str, str]:
        path = str(service.report(image, target, model, threshold, alpha, colormap))
        return "", path, path

    options: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "model"}
    masking_button.click(
        run_masking, [image, target, model, threshold], [masking_words, hidden, kept, curve], show_progress="full",
        show_progress_on=curve, **options
    )
    counter_button.click(run_counter, [image, target, model, alpha, colormap], [counter_words, counter_heat, counter_over], **options)
    guided_button.click(run_guided, [image, target, model], [guided_words, guided_image], **options)
    classes_button.click(run_classes, [image, model, alpha, colormap], [classes_words, classes_gallery], **options)
    models_button.click(
        _in_words(2)(lambda *args: service.compare_models(*args)[::-1]), [image, target, threshold, alpha, colormap],
        [models_words, models_gallery], **options,
    )
    report_button.click(
        run_report, [image, target, model, threshold, alpha, colormap], [report_words, report_file, report_image], **options
    )
    return [masking_words, hidden, kept, curve, counter_words, counter_heat, counter_over, guided_words, guided_image,
            classes_words, classes_gallery, models_words, models_gallery, report_words, report_file, report_image]


def _name_of(image: str | bytes | None) -> str:
    return Path(image).name if isinstance(image, str) else "image"


def _examples() -> list[tuple[str, Path]]:
    """(caption, image) for each example shipped in ``demo/examples``."""
    names = {
        "chelsea.png": "Cat", "cat-and-coffee.jpg": "Cat and coffee", "coffee.png": "Coffee",
        "astronaut.png": "Astronaut", "rocket.jpg": "Rocket",
    }
    return [(caption, EXAMPLES_DIR / name) for name, caption in names.items() if (EXAMPLES_DIR / name).exists()]

