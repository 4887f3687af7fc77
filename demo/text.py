"""The words on the page, written for people who are not machine-learning experts."""

from __future__ import annotations

from gradcam import Explanation
from gradcam.explanation import percent

TOP_PREDICTION = "Top prediction"

TITLE = "What is the model looking at?"

INTRO = """\
# What is the model looking at?
Drop in a photo. An image classifier trained on 1000 everyday categories (animals, objects, food, vehicles)
says what it sees, and **Grad-CAM** colours the parts of the photo that led it to that answer:
**red and yellow** mark strong evidence, **blue** marks none. Pick another class from the list to see
what in the photo speaks for it.
"""

HOW_TO_READ = """\
**Original**: your photo. **Heatmap**: where the evidence for the chosen class is, from blue (none) to red (strongest).
**Overlay**: the heatmap laid over your photo. **Boxes**: a box around the strongest region, with the class and the model's confidence.

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

CLASSES_HELP = "The three classes the model finds most likely, each with its own heatmap, from a single pass through the model."

MODELS_HELP = (
    "The same photo through VGG19, ResNet-50 and DenseNet-121: do three different networks look at the same place? "
    "The overlap of their boxes is given as a percentage (100% means the same box)."
)

REPORT_HELP = "One picture with the four panels, the top guesses and the sentence, to paste into slides."

UNTRAINED_BANNER = (
    "⚠️ **Demonstration mode: this model is untrained** (random weights). Its guesses and heatmaps are meaningless; "
    "they only show that the app works. Start the app without `GRADCAM_WEIGHTS=random` to use the real model."
)

WAITING = "*Add an image (drag it in, paste it, or pick an example below) to see what the model sees.*"


def describe(explanation: Explanation, asked: bool) -> str:
    """One or two plain sentences about an explanation, in Markdown.

    Args:
        explanation: the result to describe.
        asked: True when the person picked the class, False for the top prediction.
    """
    name = explanation.class_name
    confidence = percent(explanation.probability)
    best = explanation.top_k[0]
    if asked and best.index != explanation.class_index:
        lead = (
            f"You asked about **{name}**: the model gives it {confidence} "
            f"(its top guess is **{best.name}**, {percent(best.probability)})."
        )
    else:
        lead = f"The model is {confidence} sure this is **{name}**."
    if explanation.cam_empty:
        tail = f"Nothing in this image speaks for {name}, so the heatmap is empty."
    else:
        tail = f"The warm colours show the parts of the image that led it to {name}."
    untrained = " *(Untrained model: these numbers mean nothing.)*" if explanation.untrained else ""
    return f"{lead} {tail}{untrained}"


def top_k_label(explanation: Explanation) -> dict[str, float]:
    """The top predictions as ``gr.Label`` wants them: {name: probability}."""
    return {p.name: p.probability for p in explanation.top_k}
