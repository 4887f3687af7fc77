"""Every picture of a result, as a function of the :class:`Explanation` alone.

The engine call (:meth:`gradcam.Explainer.explain`) computes; these functions
only draw. None of them runs the model or preprocesses the image again, so the
CLI, the saved files and the web app show the same pictures of the same result.
"""

from __future__ import annotations

import cv2
import numpy as np

from gradcam import render, verdicts, words
from gradcam.config import COLORMAP, OVERLAY_ALPHA
from gradcam.errors import NotAvailableError
from gradcam.explanation import Explanation
from gradcam.guided import guided_picture
from gradcam.plots import deletion_plot, report, trust_plot


def heatmap(explanation: Explanation, colormap: str = COLORMAP) -> np.ndarray:
    """The map in colour, RGB uint8."""
    return render.heatmap(explanation.cam, colormap)


def overlay(explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> np.ndarray:
    """The coloured map blended over the image, RGB uint8."""
    return render.overlay(explanation.image, explanation.cam, alpha, colormap)


def boxed(explanation: Explanation) -> np.ndarray:
    """The image with the boxes and their label ("tabby 87%") drawn on it, RGB uint8."""
    return render.draw_boxes(explanation.image, explanation.boxes, words.box_label(explanation))


def panels(explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> dict[str, np.ndarray]:
    """The four pictures, keyed by :data:`gradcam.PANELS`: original, heatmap, overlay, boxes (the map coloured once)."""
    colours = render.heatmap(explanation.cam, colormap)
    return {
        "original": explanation.image,
        "heatmap": colours,
        "overlay": render.blend(explanation.image, colours, alpha),
        "boxes": boxed(explanation),
    }


def boxed_overlay(explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP) -> np.ndarray:
    """The overlay with the boxes and their label drawn on it."""
    return render.draw_boxes(overlay(explanation, alpha, colormap), explanation.boxes, words.box_label(explanation))


def counterfactual(
    explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP
) -> tuple[np.ndarray, np.ndarray]:
    """What speaks against the class: its heatmap and its overlay.

    Raises:
        NotAvailableError: the explanation was made without ``counterfactual=True``.
    """
    if explanation.counter_cam is None:
        raise NotAvailableError("This explanation has no counterfactual map: explain with counterfactual=True.")
    counter = explanation.counter_cam
    return render.heatmap(counter, colormap), render.overlay(explanation.image, counter, alpha, colormap)


def guided(explanation: Explanation) -> np.ndarray:
    """Guided Grad-CAM at the image's size: the fine detail inside the highlighted region.

    Raises:
        NotAvailableError: the explanation was made without ``guided=True``.
    """
    if explanation.guided is None:
        raise NotAvailableError("This explanation has no guided gradient: explain with guided=True.")
    return guided_picture(explanation.guided, explanation.cam)


def masking(explanation: Explanation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The masking test: the image with the region hidden, with only the region kept, and the deletion curve.

    Raises:
        NotAvailableError: the explanation was made without ``masking=True``.
    """
    test = explanation.masking
    if test is None or test.hidden_image is None or test.kept_image is None:
        raise NotAvailableError("This explanation has no masking test: explain with masking=True.")
    return test.hidden_image, test.kept_image, deletion_plot(test)


def classes(
    explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP
) -> list[tuple[np.ndarray, str]]:
    """The overlays of the best classes from the same pass, each with its caption ("tabby 61%").

    Raises:
        NotAvailableError: the explanation was made without ``compare``.
    """
    if not explanation.classes:
        raise NotAvailableError("This explanation has no other classes: explain with compare=N.")
    return [
        (render.overlay(explanation.image, c.cam, alpha, colormap), words.label(c.name, c.probability))
        for c in explanation.classes
    ]


def trust(
    explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP
) -> tuple[np.ndarray, np.ndarray | None]:
    """The trust check: its curves, and the overlay of the map once the model's weights are scrambled.

    The second picture is None when the randomisation test did not run.

    Raises:
        NotAvailableError: the explanation was made without ``trust=True``.
    """
    check = explanation.trust
    if check is None:
        raise NotAvailableError("This explanation has no trust check: explain with trust=True.")
    scrambled = None
    if check.sanity is not None and check.sanity.cam is not None:
        height, width = explanation.image.shape[:2]
        cam = cv2.resize(check.sanity.cam, (width, height), interpolation=cv2.INTER_LINEAR)
        scrambled = render.overlay(explanation.image, cam, alpha, colormap)
    return trust_plot(check), scrambled


def methods(
    explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP
) -> list[tuple[np.ndarray, str]]:
    """Each compared method's overlay with its caption ("LayerCAM: deletion 0.08, insertion 0.61"), the most
    faithful marked.

    Raises:
        NotAvailableError: the explanation was made without ``methods``.
    """
    if not explanation.methods:
        raise NotAvailableError("This explanation has no other methods' maps: explain with methods=True.")
    best = verdicts.most_faithful(explanation.methods)  # None: the scores cannot tell the maps apart
    return [
        (render.overlay(explanation.image, m.cam, alpha, colormap), verdicts.method_caption(m, k == best))
        for k, m in enumerate(explanation.methods)
    ]


def one_picture(
    explanation: Explanation, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP, *, asked: bool = True
) -> np.ndarray:
    """The one-picture report for slides: panels, top guesses, the sentence and the colour bar."""
    sentence = words.summary(explanation, asked, colormap).plain
    return report(explanation, sentence, panels(explanation, alpha, colormap), colormap=colormap)
