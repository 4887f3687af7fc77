"""The words on the page, written for people who are not machine-learning experts."""

from __future__ import annotations

import html

from gradcam import Explanation, words
from gradcam.config import COLORMAP
from gradcam.names import short
from gradcam.words import colours, percent

TITLE = "What is the model looking at?"

DESCRIPTION = (
    "Drop in a photo: an image classifier says what it sees, and Grad-CAM colours the parts of the photo "
    "that led it to that answer. Try any of 1000 everyday classes."
)

INTRO = """\
# What is the model looking at?
Drop in a photo: an image classifier says what it sees, and **Grad-CAM** colours the parts that led it there.
"""

TARGET_INFO = 'Type to search the 1000 classes ("cat", "cup"...), or keep the model\'s top prediction.'

SETTINGS = "Settings: model, method, box threshold, opacity, colours, layer"

METHOD_INFO = (
    "How the heatmap is made. Grad-CAM is the original; the others weigh the evidence differently. Score-CAM asks "
    'the model once per feature map, so it takes much longer (up to 45 s here). "Compare methods" below scores '
    "each one on your photo."
)

LAYER_INFO = (
    "For people who compare layers: the network layer the heatmap is read from. Earlier layers see smaller "
    "details; the automatic one is the last that still sees the whole picture."
)


def automatic_layer(name: str | None) -> str:
    """How the layer picker names the model's own layer (None: not known yet, the model still loading)."""
    return f"{name} (automatic)" if name else "Automatic"


#: What a request gets whose event the page does not have, or whose values Gradio cannot read.
NO_SUCH_EVENT = "There is no such event on this page: see 'Use via API' at the bottom of the page for the API."
UNREADABLE_INPUTS = (
    "This request could not be read: send the photo as a file (or a base64 data: URL) and the settings "
    "as 'Use via API' shows."
)

DOWNLOAD = "Download everything (zip)"
DOWNLOAD_LABEL = "Your download: the 4 pictures as PNG, the raw map, a JSON manifest"

#: Why a request beyond a visitor's share of the queue is refused, for a browser tab and for a network address.
QUEUE_SHARE = {
    "session": "You already have several requests waiting. Please wait for them to finish, then try again.",
    "address": "Many requests from your network are waiting right now. Please try again in a few seconds.",
}

#: What the sentence says between a new photo and its answer.
EXPLAINING = "Looking at your photo…"
#: What the progress says while Score-CAM asks the model once per feature map.
SCORE_CAM = "Score-CAM: asking the model once per feature map"

UPLOAD_TOO_BIG = (
    "This file is {size} MB; the page takes photos up to {limit} MB. "
    'Please pick a smaller photo (a screenshot or a copy "for the web" works well).'
)


def models_note(status: dict[str, str]) -> str:
    """Which models a visitor cannot pick right now, and why: "" when all are ready."""
    loading = [title for title, state in status.items() if state == "still loading"]
    missing = [f"{title} ({state})" for title, state in status.items() if state not in ("ready", "still loading")]
    parts = []
    if loading:
        parts.append(f"Still loading: {', '.join(loading)} (reload the page in a minute).")
    if missing:
        parts.append(f"Not available on this server: {'; '.join(missing)}.")
    return " ".join(parts)


def cannot_explain(message: str) -> str:
    """What the sentence says when an upload cannot be explained (the engine's message for people)."""
    return f"**Can't explain this image.** {html.escape(message)}"


def cannot_answer(message: str) -> str:
    """What an Explore view says instead of its answer when it cannot give one."""
    return f"**No answer this time.** {html.escape(message)}"


def unknown_class(typed: str, close: list[str], used: str | None = None) -> str:
    """The hint under the class picker when a typed name is not a class.

    Args:
        typed: what the person typed.
        close: class names close to it.
        used: the class explained instead (the model's top prediction), when a photo was explained.
    """
    head = f"No class is called \u201c{html.escape(short(typed, 41, quoted=False))}\u201d"
    head += f", so the pictures show the model's top prediction, **{html.escape(used)}**." if used else "."
    if close:
        return f"{head} Did you mean: {', '.join(html.escape(c) for c in close)}? Pick one from the list."
    return f'{head} Type part of a name ("dog", "car") and pick from the list.'


HOW_TO_READ = """\
**Original**: your photo. **Heatmap**: where the evidence for the chosen class is, from blue (none) to red (strongest)
with the jet colours; the key under the pictures says it for the colours you chose.
**Overlay**: the heatmap laid over your photo. **Boxes**: a box around the strongest region, with the class and the
model's confidence.

The box threshold sets how strong the evidence must be to count as part of the region (15% of the strongest, as in the
Grad-CAM paper). The opacity only changes how the heatmap is drawn; neither slider runs the model again.

A heatmap shows what the model *used*, not what is *right*: a model can be confident for the wrong reasons, and this is
how you find out. Method: Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, ICCV 2017.
"""

MASKING_HELP = (
    "If the highlighted area really is what the model relies on, hiding it (blurring it out) should make the model "
    "much less sure, and keeping only that area should keep it fairly sure. The curve hides more and more of the "
    "image, most important pixels first. Takes a few seconds."
)

COUNTER_HELP = (
    "The same method with the gradients reversed (the paper's *counterfactual explanation*): the warm colours mark "
    "the parts of the image that argue **against** the chosen class."
)

GUIDED_HELP = (
    "Guided Grad-CAM multiplies the heatmap by a pixel-sharp map of the edges and textures that raise the score, "
    "so you see *which details* inside the highlighted area count. Grey means no effect."
)

CLASSES_HELP = (
    "The three classes the model finds most likely, each with its own heatmap, from a single pass through the model."
)

MODELS_HELP = (
    "The same photo through every model this server has loaded: do different networks look at the same place? "
    "The overlap of their boxes is given as a percentage (100% means the same box)."
)

TRUST_HELP = (
    "Three checks researchers use. **Hiding and showing**: the pixels are hidden (made grey) in the heatmap's order, "
    "most important first, and then shown alone: a good map costs the model its confidence when hidden and brings "
    "it back when shown (the areas under these curves, *deletion* and *insertion*). **ROAD**: the same, with the "
    "hidden pixels filled in from their surroundings, so the model cannot recognise the hole's shape. **Scrambled "
    "weights**: the model's learned weights above the heatmap's layer are replaced by random ones; a map that "
    "barely changes shows the photo, not what the model learned. About 70 passes through the model: a few seconds."
)

METHODS_HELP = (
    "The same photo and class explained by six ways of making the heatmap, from one pass through the model, each "
    "tested by hiding and showing its pixels. The most faithful one is marked when the scores tell them apart. "
    "Score-CAM is left out: it takes hundreds of passes."
)

REPORT_HELP = "One picture with the four panels, the top guesses and the sentence, to paste into slides."

UNTRAINED_BANNER = (
    "⚠️ **Demonstration mode: this model is untrained** (random weights), so its guesses and heatmaps are random. "
    "The page works as it would with a trained model, but the results say nothing about the photo."
)

WAITING = "*Add an image (drag it in, paste it, or click an example) to see what the model sees.*"


def top_k_label(explanation: Explanation) -> dict[str, float]:
    """The top predictions as ``gr.Label`` wants them: {name: probability}."""
    return {p.name: p.probability for p in explanation.top_k}


def top_k_html(explanation: Explanation) -> str:
    """The top predictions as a list with bars, the percentages written as in the sentence."""
    rows = []
    for p in explanation.top_k:
        chosen = " chosen" if p.index == explanation.class_index else ""
        width = max(0.5, 100 * p.probability)
        rows.append(
            f'<li class="guess{chosen}"><span class="name">{html.escape(p.name)}</span>'
            f'<span class="value">{percent(p.probability)}</span>'
            f'<span class="bar" aria-hidden="true"><span style="width:{width:.1f}%"></span></span></li>'
        )
    title = (
        f"The {len(rows)} most likely labels (each on its own)"
        if words.multi_label(explanation)
        else f"The model's top {len(rows)} guesses"
    )
    return f'<p class="top5-title">{title}</p><ol class="top5" aria-label="{html.escape(title)}">{"".join(rows)}</ol>'


def alt_texts(explanation: Explanation, colormap: str = COLORMAP) -> dict[str, str]:
    """What each of the four pictures shows, for people who cannot see it (alt text)."""
    name = explanation.class_name
    strong = colours(colormap).strong
    boxes = "a box around the strongest region" if explanation.boxes else "no box (nothing stands out)"
    return {
        "original": "The photo as uploaded.",
        "heatmap": f"Heatmap for {name}: {strong} where the model found the most evidence.",
        "overlay": f"The photo with the heatmap for {name} laid over it.",
        "boxes": f"The photo with {boxes}, labelled {words.box_label(explanation)}.",
    }


def trust_table(rows: list[tuple[str, str, str]], passes: int, method: str) -> str:
    """The trust check's numbers as a Markdown table, with the method checked and what the check cost."""
    lines = ["| check | value | how to read it |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {html.escape(how)} |" for name, value, how in rows]
    return "\n".join(lines) + f"\n\n*The {method} map, checked in {passes} passes through the model.*"


# --- the live camera and video clips ----------------------------------------------------------------

LIVE_BUTTON = "Live camera"
CLIP_BUTTON = "Explain a video clip"
LIVE_HELP = (
    "Point the camera at something, a mug or a plant: the heatmap follows it. Type a class above and the map moves "
    "to what speaks for it; **Freeze** keeps the frame as your photo for everything below. Nothing is recorded."
)
LIVE_VIEW = "What the model looks at, live"
LIVE_STARTING = "*Starting the camera…*"
FREEZE = "Freeze: explore this frame"
NOTHING_TO_FREEZE = "*Start the camera first: there is no frame to keep yet.*"
CLIP_HELP = (
    "Drop a short clip (MP4, WebM or MOV, up to 30 seconds and 10 MB): every frame gets its heatmap, box and label, "
    "and you get the explained video and a table of what the model saw in each frame. The clip is read on this "
    "server, by this app alone."
)
CLIP_EXPLAIN = "Explain the video"
CLIP_PREVIEW = "Explained so far"
CLIP_RESULT = "The explained video"
CLIP_TABLE = "Table: time, class, probability and box of each frame (CSV)"


def live_method(title: str) -> str:
    """What the live camera says when the method picked is too slow for it (Score-CAM)."""
    return f"*{title} is too slow for the live camera: the live map is Grad-CAM's.*"


def cannot_explain_clip(message: str) -> str:
    """What the video panel says when a clip cannot be explained."""
    return f"**Can't explain this video.** {html.escape(message)}"


def live_time(left: float, seconds: float, warning: float) -> tuple[str, bool]:
    """What the page says of a live run's time left, and whether the run is over.

    Returns:
        ("", False) while more than ``warning`` seconds are left, a countdown in the last
        ones, and the end (True) once no time is left.
    """
    length = f"{seconds / 60:g} minute{'' if seconds == 60 else 's'}" if seconds >= 60 else f"{seconds:g} seconds"
    if left <= 0:
        return f"The live camera has stopped: each run lasts {length}. Press Record to start it again.", True
    if left <= warning:
        whole = max(1, round(left))
        return f"The live camera stops in {whole} second{'' if whole == 1 else 's'} (each run lasts {length}).", False
    return "", False


def clip_progress(done: int, total: int) -> str:
    """How far the explanation of a clip has come."""
    if total > 0:
        return f"*Explaining the video: frame {min(done, total)} of {total}…*"
    return f"*Explaining the video: frame {done}…*"
