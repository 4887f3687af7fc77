"""Grad-CAM explanations for image classifiers (Selvaraju et al., ICCV 2017).

The engine (:class:`GradCAM`), the backbones (:func:`load_backbone`), the
result object (:class:`Explanation`) and its rendering and saving. The package
knows nothing of the web app that shows its results.

Example:
    >>> from gradcam import Explainer, load_backbone, save_explanation
    >>> explainer = Explainer(load_backbone("vgg19"))
    >>> explanation = explainer.explain("cat.jpg", target="tabby")
    >>> save_explanation(explanation, "out/cat", source="cat.jpg")
"""

__version__ = "0.1.0"

from gradcam.boxes import cam_to_boxes
from gradcam.cam import CAMResult, GradCAM
from gradcam.errors import (
    GradCAMError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    UnknownClassError,
    WeightsError,
)
from gradcam.explainer import Explainer, resolve_class
from gradcam.explanation import PANELS, Explanation, Prediction
from gradcam.images import load_image
from gradcam.models import BACKBONES, Backbone, HookedVGG19, load_backbone
from gradcam.render import draw_boxes, heatmap, overlay
from gradcam.save import manifest, save_explanation

__all__ = [
    "BACKBONES",
    "PANELS",
    "Backbone",
    "CAMResult",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMError",
    "HookedVGG19",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "Prediction",
    "UnknownClassError",
    "WeightsError",
    "cam_to_boxes",
    "draw_boxes",
    "heatmap",
    "load_backbone",
    "load_image",
    "manifest",
    "overlay",
    "resolve_class",
    "save_explanation",
]
