"""Can this map be trusted? The field's faithfulness scores and the randomisation test, for any map.

* **Deletion and insertion** (Petsiuk et al., "RISE: Randomized Input Sampling for
  Explanation of Black-box Models", BMVC 2018): the network input's pixels are
  ranked by the map (most important first; ties in row-major order, the masking
  test's order, :func:`gradcam.faithfulness.ranks`) and, in ``steps`` steps of
  ``ceil(pixels / steps)`` pixels (the last step what remains), replaced by a
  baseline (deletion) or revealed on it (insertion); the areas under the
  class-probability curves (trapezoids over the actual shares) are the scores. A
  faithful map has a low deletion and a high insertion area. The baseline is the
  dataset's mean colour (zeros after the model's normalisation: RISE's deletion
  substrate) for both curves, so that they meet, as torchcam's
  ``DeletionInsertionMetric`` does by default. RISE revealed onto a blur instead;
  a blur keeps the colours, and a model that reads colour is fully sure of a
  fully blurred image (the tests' tiny CNN: 100%), so its insertion curve would
  say nothing. ``baseline="blur"`` (the masking test's blur) is there to compare.
* **ROAD** (Rong et al., "A Consistent and Efficient Evaluation Strategy for
  Attribution Methods", ICML 2022): 10%, 20%, ... 90% of the pixels are removed,
  most relevant first (MoRF) or least relevant first (LeRF), and filled in by
  noisy linear imputation (:mod:`gradcam.imputation`), so that the model cannot
  read the shape of the hole; the scores are the mean probabilities over the
  levels (MoRF: lower is more faithful; LeRF: higher). A level removes as many
  pixels as the authors' rule (those at or beyond the map's percentile, NumPy's
  interpolation) removes from a map without ties, taken in rank order (ties in
  row-major order). The authors' code removes tied pixels together: a map that is
  0 on a tenth of the image or more (common after the ReLU) then loses every pixel
  at the last levels and its linear system has no known pixel to be solved from.
* **The randomisation test** (Adebayo et al., NeurIPS 2018): see
  :mod:`gradcam.randomisation`.

Everything runs at the network input's size, on the preprocessed image, in
batches of ``batch`` inputs; the cost is stated in forward passes: ``2 * steps - 1``
for deletion and insertion (the full image's probability is known and the
all-baseline input is shared), ``2 * levels`` for ROAD, and for the randomisation
test, for each of its three draws, one pass to find the cascade, one (with its
backward) for the new map and one forward and backward pass of the whole network
for the control, plus one for the trained model's control.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from gradcam.cam import GradCAM
from gradcam.explanation import Curve, MethodMap, Sanity, TrustCheck
from gradcam.faithfulness import ranks
from gradcam.heads import Head, probabilities
from gradcam.imputation import NOISE, noisy_linear_imputation
from gradcam.inference import predict
from gradcam.methods import Method
from gradcam.randomisation import Randomised, guided_saliency, randomised_copy, spearman

#: Deletion and insertion: the steps from none to all of the pixels (torchcam's default).
STEPS = 20
#: ROAD's levels: the shares of the pixels removed.
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Perturbed inputs per forward pass.
BATCH = 16
#: What deletion hides pixels with and insertion reveals them on: the mean colour (the default) or a blur.
BASELINES = ("mean", "blur")
#: The randomisation test's draws of new weights (their correlations are averaged).
SEEDS = (0, 1, 2)

#: Softmax probabilities ``(B, num_classes)`` of a batch of preprocessed inputs ``(B, 3, h, w)``.
Scores = Callable[[Tensor], Tensor]
Progress = Callable[[float], None]


def step_counts(pixels: int, steps: int = STEPS) -> list[int]:
    """How many pixels are changed at each point of the curves: 0, ceil(pixels / steps), ..., pixels."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    step = math.ceil(pixels / steps)
    return [*range(0, pixels, step), pixels]


def _probabilities(scores: Scores, inputs: list[Tensor], class_index: int, batch: int) -> list[float]:
    found: list[float] = []
    for start in range(0, len(inputs), batch):
        found += scores(torch.cat(inputs[start : start + batch])).double()[:, class_index].tolist()
    return found


def deletion_insertion(
    scores: Scores,
    x: Tensor,
    cam: np.ndarray,
    baseline: Tensor,
    *,
    class_index: int,
    before: float,
    steps: int = STEPS,
    batch: int = BATCH,
) -> tuple[Curve, Curve]:
    """The deletion and insertion curves of a map.

    Args:
        scores: the model's class probabilities of a batch.
        x: the preprocessed image ``(1, 3, h, w)``.
        cam: the map at the input's size ``(h, w)``.
        baseline: what removed pixels become, ``(1, 3, h, w)`` (preprocessed like ``x``).
        class_index: the class.
        before: the probability with the whole image (the curves' known end points).
        steps: see :func:`step_counts`.
        batch: inputs per forward pass.

    Returns:
        The deletion and the insertion curve, ``steps + 1`` points each (fewer for a tiny image).
    """
    height, width = x.shape[-2:]
    if cam.shape != (height, width):
        raise ValueError(f"The map {cam.shape} does not match the input {(height, width)}.")
    counts = step_counts(height * width, steps)
    rank = torch.from_numpy(ranks(cam)).to(x.device).reshape(1, 1, height, width)
    inputs = [baseline]  # no pixel of the image: deletion's last point, insertion's first
    for count in counts[1:-1]:
        first = rank < count  # the most important pixels
        inputs.append(torch.where(first, baseline, x))  # deleted
        inputs.append(torch.where(first, x, baseline))  # inserted
    found = _probabilities(scores, inputs, class_index, batch)
    fractions = tuple(count / (height * width) for count in counts)
    deletion = (before, *found[1::2], found[0])
    insertion = (found[0], *found[2::2], before)
    return Curve(fractions, deletion), Curve(fractions, insertion)


def road_removed(cam: np.ndarray, fraction: float, most_relevant: bool) -> np.ndarray:
    """ROAD's removed pixels at one level, boolean ``(h, w)``: the most (or least) relevant ones, as many as
    the authors' percentile rule removes from a map without ties."""
    positions = np.arange(cam.size)
    count = int(np.count_nonzero(positions >= np.percentile(positions, round(100 * (1 - fraction), 12))))
    return (ranks(cam, descending=most_relevant) < count).reshape(cam.shape)


def road(
    scores: Scores,
    x: Tensor,
    cam: np.ndarray,
    *,
    class_index: int,
    levels: Sequence[float] = LEVELS,
    noise: float = NOISE,
    seed: int = 0,
    batch: int = BATCH,
    workers: int = 2,
) -> tuple[Curve, Curve]:
    """ROAD's curves of a map: most relevant first (MoRF) and least relevant first (LeRF).

    Args:
        scores: the model's class probabilities of a batch.
        x: the preprocessed image ``(1, 3, h, w)``.
        cam: the map at the input's size ``(h, w)``.
        class_index: the class.
        levels: the shares of the pixels removed, each in (0, 1).
        noise: the imputation's noise (standard deviation, in the preprocessed units).
        seed: of the noise; each imputation draws from its own generator, seeded ``seed + its number``
            (MoRF's levels first, then LeRF's).
        batch: inputs per forward pass.
        workers: threads filling the images in, one order each (the solver releases the interpreter's lock;
            each level starts from the fill of the level before, a smaller hole).

    Returns:
        The MoRF and the LeRF curve, one point per level.
    """
    if not all(0 < level < 1 for level in levels):
        raise ValueError(f"ROAD's levels must be shares in (0, 1), got {list(levels)}.")
    if cam.shape != tuple(x.shape[-2:]):
        raise ValueError(f"The map {cam.shape} does not match the input {tuple(x.shape[-2:])}.")
    order = sorted(range(len(levels)), key=lambda k: levels[k])  # smaller holes first: each starts the next

    def fill(most: bool) -> list[Tensor]:
        first = 0 if most else len(levels)
        filled: dict[int, Tensor] = {}
        start = None
        for k in order:
            generator = torch.Generator().manual_seed(seed + first + k)
            removed = road_removed(cam, levels[k], most)
            filled[k], start = noisy_linear_imputation(x[0], removed, noise=noise, generator=generator, start=start)
        return [filled[k][None] for k in range(len(levels))]

    with ThreadPoolExecutor(max(1, min(2, workers))) as pool:
        inputs = [image for images in pool.map(fill, (True, False)) for image in images]
    found = _probabilities(scores, inputs, class_index, batch)
    fractions = tuple(float(level) for level in levels)
    return Curve(fractions, tuple(found[: len(levels)])), Curve(fractions, tuple(found[len(levels) :]))


def forward_passes(steps: int | None, levels: Sequence[float] | None, pixels: int) -> int:
    """The forward passes of deletion and insertion (``steps``) and ROAD (``levels``); None leaves one out."""
    passes = 0
    if steps is not None:
        passes += 2 * (len(step_counts(pixels, steps)) - 2) + 1
    if levels is not None:
        passes += 2 * len(levels)
    return passes


@contextmanager
def _counting(model: nn.Module) -> Iterator[list[int]]:
    """Counts the images the model's forward passes take: the inputs of its first child, which every pass runs."""
    first = next(model.children(), model)
    runs = [0]

    def count(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        runs[0] += len(inputs[0]) if inputs and isinstance(inputs[0], Tensor) else 1

    handle = first.register_forward_pre_hook(count)
    try:
        yield runs
    finally:
        handle.remove()


def sanity_check(
    model: nn.Module,
    engine: GradCAM,
    x: Tensor,
    cam: np.ndarray,
    class_index: int,
    *,
    control: bool = True,
    seeds: Sequence[int] = SEEDS,
    randomised: Sequence[Randomised] | None = None,
    time_limit: float | None = None,
) -> tuple[Sanity, int]:
    """The randomisation test of a map at the input's size (see :mod:`gradcam.randomisation`), and its passes.

    Args:
        model: the trained model (not changed).
        engine: the engine (layer and method) that made ``cam`` with ``model``.
        x: the preprocessed image ``(1, 3, h, w)``.
        cam: the map at the input's size.
        class_index: the class.
        control: also Guided Backpropagation's correlation (None where the model has no guided rule).
        seeds: the draws of new weights, one copy each (made one at a time).
        randomised: copies randomised before for the same layer, to share (an evaluation's images do);
            ``seeds`` is then not used.
        time_limit: seconds each new Score-CAM map may take (see :meth:`gradcam.GradCAM.compute`).
    """
    passes = 0
    original = guided_saliency(model, x, class_index) if control else None
    passes += original is not None
    correlations: list[float] = []
    controls: list[float] = []
    first: np.ndarray | None = None
    layers: tuple[str, ...] = ()
    used: list[int] = []
    for copy_or_seed in list(randomised) if randomised is not None else list(seeds):
        if isinstance(copy_or_seed, Randomised):
            twin_model = copy_or_seed
        else:
            twin_model = randomised_copy(model, engine.target_layer, x, seed=copy_or_seed)
            passes += 1
        layers, used = twin_model.layers, [*used, twin_model.seed]
        twin = GradCAM(
            twin_model.model, engine.target_layer, prefix_tokens=engine.prefix_tokens, method=engine.method,
            layout=engine.layout,
        )
        with _counting(twin_model.model) as runs:
            new = twin.compute(x, [class_index], size=cam.shape, time_limit=time_limit).maps[0, 0].cpu().numpy()
            if original is not None:
                changed = guided_saliency(twin_model.model, x, class_index)
                if changed is not None:
                    controls.append(float(spearman(original, changed) or 0.0))
        passes += runs[0]
        first = new if first is None else first
        found = spearman(cam, new)
        if found is not None:
            correlations.append(found)
    correlation = float(np.mean(correlations)) if correlations else None
    mean_control = float(np.mean(controls)) if controls else None
    return Sanity(correlation, tuple(correlations), mean_control, layers, first, tuple(used)), passes


def trust_check(
    model: nn.Module,
    x: Tensor,
    fill: Tensor,
    cam: np.ndarray,
    *,
    class_index: int,
    class_name: str,
    before: float,
    engine: GradCAM | None = None,
    baseline: str = "mean",
    steps: int = STEPS,
    levels: Sequence[float] | None = LEVELS,
    control: bool = True,
    seed: int = 0,
    randomised: Sequence[Randomised] | None = None,
    progress: Progress | None = None,
    extra_passes: int = 0,
    time_limit: float | None = None,
    head: Head = Head.SOFTMAX,
) -> TrustCheck:
    """Deletion, insertion, ROAD and (with ``engine``) the randomisation test of one map.

    Args:
        model: the model the map explains.
        x: the preprocessed image ``(1, 3, h, w)``.
        fill: the baseline of deletion and insertion, preprocessed like ``x``.
        cam: the map at the input's size ``(h, w)``.
        class_index: the class.
        class_name: its name.
        before: the probability with the whole image.
        engine: the engine that made the map, for the randomisation test; None leaves it out.
        baseline: what ``fill`` is ("mean" or "blur"), recorded with the result.
        steps: deletion and insertion's steps.
        levels: ROAD's levels; None leaves ROAD out.
        control: the randomisation test's Guided Backpropagation control.
        seed: of ROAD's noise, and the first of the randomisation test's draws (``seed``, ``seed + 1``, ...).
        randomised: randomised copies to share (see :func:`sanity_check`).
        progress: called with the share of the work done.
        extra_passes: forward passes the caller spent on the check (counted in its cost).
        time_limit: seconds each of the randomisation test's Score-CAM maps may take.
        head: how the model's scores become probabilities (see :mod:`gradcam.heads`).
    """

    def scores(batch: Tensor) -> Tensor:
        return probabilities(predict(model, batch), head).float()

    height, width = cam.shape
    deletion, insertion = deletion_insertion(scores, x, cam, fill, class_index=class_index, before=before, steps=steps)
    if progress is not None:
        progress(0.4 if levels is not None else 0.8)
    morf = lerf = None
    if levels is not None:
        morf, lerf = road(scores, x, cam, class_index=class_index, levels=levels, seed=seed)
        if progress is not None:
            progress(0.85)
    passes = forward_passes(steps, levels, height * width) + extra_passes
    sanity = None
    if engine is not None:
        seeds = tuple(seed + offset for offset in range(len(SEEDS)))
        sanity, more = sanity_check(
            model, engine, x, cam, class_index, control=control, seeds=seeds, randomised=randomised,
            time_limit=time_limit,
        )
        passes += more
    if progress is not None:
        progress(1.0)
    method = engine.method.name if engine is not None else ""
    return TrustCheck(
        class_index, class_name, method, before, deletion, insertion, morf, lerf, sanity, passes, (height, width),
        baseline,
    )


def method_maps(
    engine: GradCAM,
    x: Tensor,
    fill: Tensor,
    methods: Sequence[str | Method],
    *,
    class_index: int,
    before: float,
    size: tuple[int, int],
    steps: int = STEPS,
    progress: Progress | None = None,
    head: Head = Head.SOFTMAX,
) -> tuple[MethodMap, ...]:
    """Each method's map of one class from one pass, with its deletion and insertion curves.

    Args:
        engine: the model and its layer (its own method is not used).
        x: the preprocessed image ``(1, 3, h, w)``.
        fill: the curves' baseline, preprocessed like ``x``.
        methods: the methods to compare.
        class_index: the class.
        before: the probability with the whole image.
        size: ``(height, width)`` of the maps kept (the image's).
        steps: the curves' steps.
        progress: called with the share of the methods scored.
        head: how the model's scores become probabilities (see :mod:`gradcam.heads`).
    """

    def scores(batch: Tensor) -> Tensor:
        return probabilities(predict(engine.model, batch), head).float()

    results = engine.compute_methods(x, [class_index], methods, size=size)
    found = []
    for number, result in enumerate(results.values(), start=1):
        cam = result.maps[0, 0].cpu().numpy()
        here = at_size(cam, (x.shape[-2], x.shape[-1]))
        deletion, insertion = deletion_insertion(
            scores, x, here, fill, class_index=class_index, before=before, steps=steps
        )
        title = engine.with_method(result.method).method.title
        found.append(MethodMap(result.method, title, cam, bool(result.empty[0, 0]), deletion, insertion))
        if progress is not None:
            progress(number / len(results))
    return tuple(found)


def at_size(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map at ``(height, width)``: as it is, or resized (area averaging down, bilinear up), float32."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape == size:
        return cam
    shrinking = size[0] * size[1] < cam.shape[0] * cam.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(cam, (size[1], size[0]), interpolation=interpolation), dtype=np.float32)
