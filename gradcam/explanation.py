"""The result objects that flow from the engine to the views, the CLI, the files and the app.

One engine call (:meth:`gradcam.Explainer.explain`) returns an
:class:`Explanation` holding everything later pictures and sentences need: the
image, the map, the predictions, and on request the counterfactual map, the
masking test, the guided gradient, the maps of the best classes, the trust check
(:class:`TrustCheck`) and the maps of the other methods (:class:`MethodMap`).
Nothing downstream runs the model again.

These are data: their pictures are drawn by :mod:`gradcam.views`, their
sentences written by :mod:`gradcam.words`, their manifests by :mod:`gradcam.save`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from gradcam.boxes import Box, cam_to_boxes
from gradcam.heads import Head

#: The four pictures of every explanation, in the order they are shown and saved (:func:`gradcam.views.panels`).
PANELS = ("original", "heatmap", "overlay", "boxes")


@dataclass(frozen=True)
class Prediction:
    """One class with the model's probability for it."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class ClassMap:
    """The map of one of the best classes, from the same forward pass as the explanation.

    Attributes:
        index: the class.
        name: its name.
        probability: the model's probability for it.
        cam: its map at the image's size, float32 ``(height, width)`` in [0, 1].
        empty: True when nothing speaks for the class.
    """

    index: int
    name: str
    probability: float
    cam: np.ndarray = field(repr=False)
    empty: bool = False


@dataclass(frozen=True)
class MaskingTest:
    """What happened to the class probability when parts of the image were hidden.

    Attributes:
        class_index: the class tested.
        class_name: its name.
        before: probability with the whole image.
        hidden: probability with the highlighted region hidden.
        kept: probability with only the highlighted region kept (the rest hidden).
        region_fraction: share of the image in the highlighted region.
        fractions: deletion curve, share of the pixels removed (most important first).
        curve: deletion curve, the probability at each share.
        hidden_image: the image the model saw with the region hidden, RGB uint8.
        kept_image: the image the model saw with only the region kept, RGB uint8.
    """

    class_index: int
    class_name: str
    before: float
    hidden: float
    kept: float
    region_fraction: float
    fractions: tuple[float, ...]
    curve: tuple[float, ...]
    hidden_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    kept_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def deletion_area(self) -> float:
        """Area under the deletion curve, relative to the starting probability (lower: the map found what matters)."""
        if self.before <= 0:
            return 0.0
        return float(np.trapezoid(self.curve, self.fractions) / self.before)


def _read_only(array: np.ndarray | None) -> np.ndarray | None:
    """A read-only copy of a writeable array (the caller's stays theirs); a read-only one as it is."""
    if array is None or not array.flags.writeable:
        return array
    array = array.copy()
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Curve:
    """A perturbation curve: the class probability at each share of the pixels changed.

    Attributes:
        fractions: the shares of the network input's pixels removed (or revealed), increasing, in [0, 1].
        probabilities: the model's probability for the class at each share.
    """

    fractions: tuple[float, ...]
    probabilities: tuple[float, ...]

    @property
    def area(self) -> float:
        """The area under the curve (trapezoids over the shares), in probability units."""
        return float(np.trapezoid(self.probabilities, self.fractions))

    @property
    def mean(self) -> float:
        """The mean probability over the curve's points (ROAD's average over its levels)."""
        return float(np.mean(self.probabilities))

    def at(self, fraction: float) -> float:
        """The probability at the point nearest to ``fraction``."""
        nearest = int(np.argmin(np.abs(np.asarray(self.fractions) - fraction)))
        return self.probabilities[nearest]


@dataclass(frozen=True)
class Sanity:
    """The model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

    One re-initialisation draws one random head, whose signs alone can turn a Grad-CAM map towards the
    object or away from it (single draws range from -0.6 to 0.7 on one photo), so the test is repeated
    with several draws and their correlations averaged.

    Attributes:
        correlation: the mean Spearman rank correlation between the map and the same method's map once the
            layers from the top down to the target layer are re-initialised, at the network input's size;
            None when the map is empty (nothing to compare).
        correlations: each draw's correlation.
        control: the same mean for Guided Backpropagation, the test's known failure (it stays similar); None
            for a model it has no rule for (smooth activations).
        layers: the re-initialised modules, from the top down.
        cam: the first draw's map at the network input's size, float32 ``(h, w)`` in [0, 1].
        seeds: the seeds of the draws.
    """

    correlation: float | None
    correlations: tuple[float, ...]
    control: float | None
    layers: tuple[str, ...]
    cam: np.ndarray | None = field(default=None, compare=False, repr=False)
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cam", _read_only(self.cam))


@dataclass(frozen=True)
class TrustCheck:
    """How far a map can be trusted: deletion, insertion, ROAD and the randomisation test, for one class.

    Attributes:
        class_index: the class.
        class_name: its name.
        method: the method that made the map ("" for a map from elsewhere).
        before: the probability with the whole image.
        deletion: the probability as the most important pixels are replaced by a blur of the image
            (Petsiuk et al., RISE, BMVC 2018), from none to all.
        insertion: the probability as they are revealed on that blur, from none to all.
        morf: ROAD (Rong et al., ICML 2022), most relevant first: the probability with 10% ... 90% of
            the pixels removed and filled in from their neighbours (noisy linear imputation).
        lerf: ROAD, least relevant first.
        sanity: the randomisation test; None when not run.
        forward_passes: the model's forward passes the check cost (backward passes not counted).
        input_size: ``(height, width)`` of the network input the curves were measured at.
        baseline: what deletion hid the pixels with and insertion revealed them on: "mean" (the dataset's
            mean colour) or "blur".
    """

    class_index: int
    class_name: str
    method: str
    before: float
    deletion: Curve
    insertion: Curve
    morf: Curve | None = None
    lerf: Curve | None = None
    sanity: Sanity | None = None
    forward_passes: int = 0
    input_size: tuple[int, int] = (0, 0)
    baseline: str = "mean"

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve: lower means the map found what the model relies on."""
        return self.deletion.area

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve: higher means the map found what the model relies on."""
        return self.insertion.area

    @property
    def road_morf(self) -> float | None:
        """ROAD's mean probability over its levels, most relevant removed first: lower is more faithful."""
        return None if self.morf is None else self.morf.mean

    @property
    def road_lerf(self) -> float | None:
        """ROAD's mean probability, least relevant removed first: higher is more faithful."""
        return None if self.lerf is None else self.lerf.mean

    @property
    def randomisation_correlation(self) -> float | None:
        """The randomisation test's rank correlation: low means the map depends on what the model learned."""
        return None if self.sanity is None else self.sanity.correlation


@dataclass(frozen=True)
class MethodMap:
    """One method's map of the explained class, from the same pass, with its deletion and insertion curves.

    Attributes:
        method: the method's name ("layercam").
        title: its name for people ("LayerCAM").
        cam: the map at the image's size, float32 ``(height, width)`` in [0, 1].
        empty: True when nothing speaks for the class in this method's map.
        deletion: its deletion curve (see :class:`TrustCheck`).
        insertion: its insertion curve.
    """

    method: str
    title: str
    cam: np.ndarray = field(repr=False)
    empty: bool
    deletion: Curve
    insertion: Curve

    def __post_init__(self) -> None:
        object.__setattr__(self, "cam", _read_only(self.cam))

    @property
    def faithfulness(self) -> float:
        """Insertion AUC minus deletion AUC: how much more revealing the map's pixels helps than hiding them."""
        return self.insertion.area - self.deletion.area


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM explanation of one image for one class; its arrays are read-only.

    Attributes:
        image: the explained image, RGB uint8 ``(height, width, 3)``.
        cam: the Grad-CAM map at the image's size, float32 ``(height, width)`` in [0, 1].
        class_index: the explained class.
        class_name: its name.
        probability: the model's probability for it, by its head's rule (:attr:`head`).
        top_k: the best classes, most probable first.
        boxes: ``(x0, y0, x1, y1)`` boxes around the highlighted region, corners inclusive.
        threshold: fraction of the map's maximum used for the boxes.
        model_name: the backbone, for people ("VGG19").
        layer_name: the layer the map was read from.
        weights: where the weights came from.
        untrained: True when the weights are random: the result means nothing.
        cam_empty: True when no region speaks for the class (the map is all zeros).
        counter_cam: the counterfactual map (negated gradients: the regions that
            speak against the class), float32 ``(height, width)`` in [0, 1], when computed.
        counter_empty: True when no region speaks against the class.
        input_size: ``(height, width)`` of the network input the model saw.
        masking: the masking test, when asked for.
        guided: the guided-backpropagation gradient of the class score at the
            network input's size, float32 ``(h, w, 3)``, when asked for.
        classes: the maps of the best classes from the same pass, when asked for.
        method: the method that made the map (see :mod:`gradcam.methods`).
        trust: the trust check of the map, when asked for.
        methods: every cheap method's map of the class with its deletion and insertion curves, when asked for.
        head: how the model's logits became probabilities: softmax (they sum to one),
            sigmoid (multi-label: each class on its own) or binary (one logit, two classes).
    """

    image: np.ndarray
    cam: np.ndarray
    class_index: int
    class_name: str
    probability: float
    top_k: tuple[Prediction, ...]
    boxes: tuple[Box, ...]
    threshold: float
    model_name: str
    layer_name: str
    weights: str
    untrained: bool
    cam_empty: bool
    counter_cam: np.ndarray | None = None
    counter_empty: bool = False
    input_size: tuple[int, int] | None = None
    masking: MaskingTest | None = field(default=None, compare=False)
    guided: np.ndarray | None = field(default=None, compare=False, repr=False)
    classes: tuple[ClassMap, ...] = field(default=(), compare=False, repr=False)
    method: str = "gradcam"
    trust: TrustCheck | None = field(default=None, compare=False)
    methods: tuple[MethodMap, ...] = field(default=(), compare=False, repr=False)
    head: Head = Head.SOFTMAX

    def __post_init__(self) -> None:
        for cam in (self.cam, self.counter_cam):
            if cam is not None and self.image.shape[:2] != cam.shape:
                raise ValueError(f"The map {cam.shape} does not match the image {self.image.shape[:2]}.")
        for name in ("image", "cam", "counter_cam", "guided"):
            object.__setattr__(self, name, _read_only(getattr(self, name)))

    def with_threshold(self, threshold: float, *, all_regions: bool = False) -> Explanation:
        """The same explanation with boxes recomputed at another threshold (the model is not run).

        A masking test made at the old threshold hid another region, so it is dropped.
        """
        boxes = tuple(cam_to_boxes(self.cam, threshold, all_regions=all_regions))
        masking = self.masking if threshold == self.threshold else None
        return dataclasses.replace(self, boxes=boxes, threshold=threshold, masking=masking)
