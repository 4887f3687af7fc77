"""Grad-CAM on a tiny CNN trained in the test: does the map point at the object?"""

from __future__ import annotations

import numpy as np
import torch

from gradcam import GradCAM

from .conftest import make_scene, to_tensor


def _peak(cam: torch.Tensor) -> tuple[int, int]:
    y, x = np.unravel_index(int(cam.argmax()), cam.shape)
    return int(x), int(y)


def _inside(point: tuple[int, int], box: tuple[int, int, int, int], margin: int = 2) -> bool:
    x, y = point
    return box[0] - margin <= x <= box[2] + margin and box[1] - margin <= y <= box[3] + margin


def test_the_peak_falls_on_the_object(trained_tiny):
    rng = np.random.default_rng(7)
    scenes = [make_scene(rng, (i % 2,)) for i in range(60)]
    cam = GradCAM(trained_tiny, "features")
    maps = cam(to_tensor([s.image for s in scenes]), targets=[i % 2 for i in range(60)])
    hits = sum(_inside(_peak(m), s.objects[i % 2]) for i, (m, s) in enumerate(zip(maps, scenes)))
    assert hits >= 54, f"the peak fell on the object in only {hits} of 60 images"


def test_switching_the_class_moves_the_peak_to_the_other_object(trained_tiny):
    rng = np.random.default_rng(11)
    scenes = [make_scene(rng, (0, 1)) for _ in range(30)]
    result = GradCAM(trained_tiny, "features").compute(to_tensor([s.image for s in scenes]), [[0, 1]] * 30)
    right = 0
    for scene, maps in zip(scenes, result.maps):
        square, disc = _peak(maps[0]), _peak(maps[1])
        right += _inside(square, scene.objects[0]) and _inside(disc, scene.objects[1])
    assert right >= 24, f"the peaks followed the class in only {right} of 30 two-object images"
