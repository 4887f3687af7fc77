"""The trust check: deletion, insertion and ROAD against their definitions and the field's code; known answers.

The references rebuild every perturbed image by hand from the papers' descriptions. torchcam's
``DeletionInsertionMetric`` and pytorch-grad-cam's ``metrics.road`` get the same map, model and baseline (a
stand-in for their CAM extractor hands them our map) and must give the same numbers within 1e-6. Where the
settings cannot be made the same, the test says so: pytorch-grad-cam removes the pixels tied at a level's
threshold together (so the test's map has no ties), and reports the change from the whole image's score.

Known answers on the tiny CNN the tests train: Grad-CAM's insertion area beats a random map's and a centred
blob's, and its deletion area is lower, on at least 90% of images.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
import torch

from gradcam import Explainer
from gradcam.explanation import Curve
from gradcam.faithfulness import ranks
from gradcam.imputation import linear_fill
from gradcam.trust import LEVELS, deletion_insertion, road, road_removed, step_counts

from .conftest import make_scene, to_tensor
from .helpers import ForwardCounter


@pytest.fixture(scope="module")
def small_tiny(tiny_backbone):
    """The trained tiny CNN explained at the size it was trained at (64 x 64)."""
    return Explainer(dataclasses.replace(tiny_backbone, short_side=64))


def _scores(model: torch.nn.Module):
    def scores(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(batch).softmax(dim=1)

    return scores


def _smooth_map(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A map without ties (a blob and a ramp, plus a little noise), float32 in [0.1, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    blob = np.exp(-((yy - 0.4 * height) ** 2 + (xx - 0.6 * width) ** 2) / (2 * (0.2 * height) ** 2))
    return (0.1 + 0.8 * blob + 0.05 * xx / width + 0.01 * rng.random((height, width))).astype(np.float32)


# ----------------------------------------------------------------------------- deletion and insertion


def reference_curves(model, x, cam, baseline, class_index, steps):
    """RISE, pixel by pixel: sort the pixels, then for each step rebuild the image from scratch."""
    height, width = cam.shape
    order = sorted(range(height * width), key=lambda i: (-cam.flat[i], i))  # most important first, ties by index
    step = math.ceil(height * width / steps)
    counts = [*range(0, height * width, step), height * width]
    deletion, insertion = [], []
    for count in counts:
        chosen = torch.zeros(height * width, dtype=torch.bool)
        chosen[order[:count]] = True
        chosen = chosen.reshape(1, 1, height, width)
        with torch.no_grad():
            deletion.append(model(torch.where(chosen, baseline, x)).softmax(1)[0, class_index].item())
            insertion.append(model(torch.where(chosen, x, baseline)).softmax(1)[0, class_index].item())
    fractions = [c / (height * width) for c in counts]
    return np.trapezoid(deletion, fractions), np.trapezoid(insertion, fractions), fractions


def test_deletion_and_insertion_equal_their_definition(trained_tiny):
    x = to_tensor([make_scene(np.random.default_rng(5), (0,)).image])
    cam = _smooth_map(64, 64)
    baseline = torch.zeros_like(x)
    with torch.no_grad():
        before = trained_tiny(x).softmax(1)[0, 0].item()
    with ForwardCounter(trained_tiny) as runs:
        deletion, insertion = deletion_insertion(_scores(trained_tiny), x, cam, baseline, class_index=0,
                                                 before=before, steps=7, batch=5)
    area_d, area_i, fractions = reference_curves(trained_tiny, x, cam, baseline, 0, 7)
    assert deletion.fractions == insertion.fractions == pytest.approx(fractions)
    assert deletion.area == pytest.approx(area_d, abs=1e-9) and insertion.area == pytest.approx(area_i, abs=1e-9)
    assert runs.count == math.ceil((2 * 7 - 1) / 5)  # 13 inputs in batches of 5: the ends are shared or known


def test_the_steps_follow_torchcam_the_last_step_what_remains():
    assert step_counts(100, 20) == [*range(0, 100, 5), 100]
    assert step_counts(66752, 20)[:2] == [0, 3338] and step_counts(66752, 20)[-2:] == [63422, 66752]
    assert ranks(np.array([[0.5, 1.0], [0.5, 0.0]])).tolist() == [1, 0, 2, 3]  # ties in row-major order


@pytest.mark.parametrize("kind", ["mean", "blur"])
def test_deletion_and_insertion_equal_torchcams_for_the_same_map_and_baseline(small_tiny, kind):
    from torchcam.metrics import DeletionInsertionMetric

    model = small_tiny.backbone.model
    image = make_scene(np.random.default_rng(9), (1,)).image
    x = small_tiny.to_tensor([image])
    baseline = small_tiny.baseline(image, kind)
    cam = _smooth_map(64, 64, seed=3)
    metric = DeletionInsertionMetric(_GivenMap(model, cam), partial(torch.softmax, dim=-1), steps=20,
                                     baseline=baseline, batch_size=16)
    metric.update(x, class_idx=1)
    theirs = metric.summary()
    ours = small_tiny.trust(image, cam, 1, levels=None, sanity=False, baseline=kind)
    assert ours.baseline == kind
    assert ours.deletion_auc == pytest.approx(theirs["deletion_auc"], abs=1e-6)
    assert ours.insertion_auc == pytest.approx(theirs["insertion_auc"], abs=1e-6)


class _GivenMap:
    """torchcam's CAM extractor interface, handing it a map made elsewhere."""

    def __init__(self, model: torch.nn.Module, cam: np.ndarray) -> None:
        self.model = model
        self.cam = torch.from_numpy(cam)[None]

    def __call__(self, class_idx=None, scores=None, normalized=True, *, targets=None, **kwargs):
        return [self.cam]

    def fuse_cams(self, cams):
        return cams[0]

    @contextmanager
    def _hooks_off(self):
        yield


# ----------------------------------------------------------------------------- ROAD


def test_linear_imputation_solves_the_authors_equations():
    rng = np.random.default_rng(0)
    image = rng.random((23, 31, 2))
    removed = rng.random((23, 31)) < 0.6
    filled = linear_fill(image, removed)
    kernel = {(-1, -1): 1 / 12, (-1, 0): 1 / 6, (-1, 1): 1 / 12, (0, -1): 1 / 6, (0, 1): 1 / 6, (1, -1): 1 / 12,
              (1, 0): 1 / 6, (1, 1): 1 / 12}
    assert np.array_equal(filled[~removed], image[~removed])
    for y, x in zip(*np.nonzero(removed)):  # each filled pixel: the weighted mean of its neighbours in the image
        inside = [(w, filled[y + dy, x + dx]) for (dy, dx), w in kernel.items()
                  if 0 <= y + dy < 23 and 0 <= x + dx < 31]
        mean = sum(w * v for w, v in inside) / sum(w for w, _ in inside)
        assert np.allclose(filled[y, x], mean, atol=1e-7)


def test_imputation_refuses_an_image_with_nothing_left():
    with pytest.raises(ValueError, match="Every pixel is removed"):
        linear_fill(np.zeros((4, 4, 3)), np.ones((4, 4), dtype=bool))


def test_road_removes_the_share_asked_most_or_least_relevant_first():
    cam = _smooth_map(20, 30)
    for level in LEVELS:
        most, least = road_removed(cam, level, True), road_removed(cam, level, False)
        assert abs(most.mean() - level) <= 1 / cam.size + 1e-9
        assert cam[most].min() >= cam[~most].max() and cam[least].max() <= cam[~least].min()
    tied = np.zeros((20, 30), dtype=np.float32)
    tied[5:10, 5:10] = 1.0  # 0 on 92% of the map: the authors' rule would remove every pixel at 10% MoRF
    assert road_removed(tied, 0.9, True).mean() == pytest.approx(0.9, abs=1 / 600)


def test_road_equals_pytorch_grad_cams_for_the_same_map_and_noise(small_tiny):
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model = small_tiny.backbone.model
    image = make_scene(np.random.default_rng(11), (0,)).image
    x = small_tiny.to_tensor([image])
    cam = _smooth_map(64, 64, seed=4)
    for level in (0.1, 0.5, 0.9):
        morf, lerf = road(_scores(model), x, cam, class_index=0, levels=(level,), seed=40)
        targets = [ClassifierOutputSoftmaxTarget(0)]
        torch.manual_seed(40)  # their noise comes from torch's global generator, ours from one seeded alike
        most = ROADMostRelevantFirst(round(100 * (1 - level)))(x, cam[None], targets, model)
        torch.manual_seed(41)
        least = ROADLeastRelevantFirst(round(100 * (1 - level)))(x, cam[None], targets, model)
        with torch.no_grad():
            before = model(x).softmax(1)[0, 0].item()
        # They report the change from the whole image's probability.
        assert morf.probabilities[0] - before == pytest.approx(float(most[0]), abs=1e-6), level
        assert lerf.probabilities[0] - before == pytest.approx(float(least[0]), abs=1e-6), level


def test_the_scores_are_the_curves_areas_and_means():
    curve = Curve((0.0, 0.5, 1.0), (1.0, 0.5, 0.0))
    assert curve.area == pytest.approx(0.5) and curve.mean == pytest.approx(0.5) and curve.at(0.45) == 0.5


# ----------------------------------------------------------------------------- known answers


def test_gradcam_is_more_faithful_than_a_random_map_and_a_centred_blob_on_the_tiny_cnn(small_tiny):
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / (2 * 10**2)).astype(np.float32)
    wins = {"insertion vs random": 0, "insertion vs blob": 0, "deletion vs random": 0, "deletion vs blob": 0}
    images = 30
    for i in range(images):
        scene = make_scene(np.random.default_rng(100 + i), (i % 2,))
        explanation = small_tiny.explain(scene.image, i % 2, trust=False)
        ours, random_map, centred = (
            small_tiny.trust(scene.image, cam, i % 2, levels=None, sanity=False)
            for cam in (explanation.cam, rng.random((64, 64)).astype(np.float32), blob)
        )
        wins["insertion vs random"] += ours.insertion_auc > random_map.insertion_auc
        wins["insertion vs blob"] += ours.insertion_auc > centred.insertion_auc
        wins["deletion vs random"] += ours.deletion_auc < random_map.deletion_auc
        wins["deletion vs blob"] += ours.deletion_auc < centred.deletion_auc
    assert all(count >= 0.9 * images for count in wins.values()), wins


def test_explain_with_trust_fills_every_number_and_states_its_cost(small_tiny):
    scene = make_scene(np.random.default_rng(2), (0,))
    model = small_tiny.backbone.model
    images = [0]

    def count(module, inputs):  # images through the network, however batched (its randomised copies too)
        images[0] += len(inputs[0])

    handle = model.features[0].register_forward_pre_hook(count)
    try:
        explanation = small_tiny.explain(scene.image, "square", trust=True)
    finally:
        handle.remove()
    check = explanation.trust
    assert check.class_name == "square" and check.method == "gradcam" and check.before == explanation.probability
    for value in (check.deletion_auc, check.insertion_auc, check.road_morf, check.road_lerf):
        assert 0.0 <= value <= 1.0
    assert len(check.morf.fractions) == len(check.lerf.fractions) == 9
    assert check.sanity is not None and len(check.sanity.correlations) == 3
    assert check.forward_passes == images[0] - 1  # every pass but the explanation's own
    assert check.input_size == (64, 64)
