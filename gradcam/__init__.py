"""Grad-CAM explanations for image classifiers (Selvaraju et al., ICCV 2017).

The engine (:class:`GradCAM`), the backbones (:func:`load_backbone`, any
torchvision, timm or Hugging Face classifier by a spec string, its head, layout
and input described by :class:`Head`, :class:`Layout` and the preprocessing), the
result object (:class:`Explanation`) and its rendering and saving. The package
knows nothing of the web app that shows its results.

Example:
    >>> from gradcam import Explainer, load_backbone, save_explanation
    >>> explainer = Explainer(load_backbone("vgg19"))
    >>> explanation = explainer.explain("cat.jpg", target="tabby")
    >>> save_explanation(explanation, "out/cat", source="cat.jpg")
"""

from gradcam.backbone import Backbone
from gradcam.boxes import cam_to_boxes
from gradcam.cam import CAMResult, GradCAM
from gradcam.config import VERSION as __version__
from gradcam.errors import (
    GradCAMError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    SettingError,
    UnknownClassError,
    UnknownLayerError,
    UnknownModelError,
    WeightsError,
)
from gradcam.explainer import Explainer, resolve_class
from gradcam.explanation import PANELS, Explanation, Prediction
from gradcam.heads import Head
from gradcam.images import load_image
from gradcam.layers import locate_layer
from gradcam.layout import Layout
from gradcam.models import HookedVGG19
from gradcam.registry import available_offline, load_backbone
from gradcam.render import draw_boxes, heatmap, overlay
from gradcam.save import manifest, save_explanation
from gradcam.specs import BACKBONES, BUILTINS, describe_spec

__all__ = [
    "BACKBONES",
    "BUILTINS",
    "PANELS",
    "Backbone",
    "CAMResult",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMError",
    "Head",
    "HookedVGG19",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "Layout",
    "Prediction",
    "SettingError",
    "UnknownClassError",
    "UnknownLayerError",
    "UnknownModelError",
    "WeightsError",
    "__version__",
    "available_offline",
    "cam_to_boxes",
    "describe_spec",
    "draw_boxes",
    "heatmap",
    "load_backbone",
    "load_image",
    "locate_layer",
    "manifest",
    "overlay",
    "resolve_class",
    "save_explanation",
]
