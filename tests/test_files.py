"""The output store: folders kept at least 15 minutes, a total disk cap, busy rather than deleting young results."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from demo.files import OutputStore, StoreFullError, remove_empty_folders
from gradcam import Explainer, views


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _fill(store: OutputStore, size: int) -> Path:
    folder = store.folder()
    (folder / "data.bin").write_bytes(bytes(size))
    store.done(folder)
    return folder


def test_folders_stay_for_the_whole_period_then_go_oldest_first(tmp_path):
    clock = Clock()
    store = OutputStore(tmp_path / "out", keep_for=900, max_bytes=10**9, clock=clock)
    first = _fill(store, 10)
    clock.now += 600
    second = _fill(store, 10)
    clock.now += 299  # first is 899 s old
    store.sweep()
    assert first.is_dir() and second.is_dir()
    clock.now += 2  # first is 901 s old, second 301 s
    store.sweep()
    assert not first.exists() and second.is_dir()
    assert len(store) == 1 and store.used_bytes == 10


def test_a_full_store_refuses_new_work_but_keeps_young_results(tmp_path):
    clock = Clock()
    store = OutputStore(tmp_path / "out", keep_for=900, max_bytes=1000, clock=clock)
    kept = [_fill(store, 400) for _ in range(3)]  # 1200 bytes: over the cap after the third
    with pytest.raises(StoreFullError, match="busy"):
        store.folder()
    assert all(folder.is_dir() for folder in kept)
    clock.now += 901
    assert _fill(store, 10).is_dir()  # the old ones expired: work resumes
    assert not any(folder.exists() for folder in kept)


def test_an_owner_past_their_share_replaces_their_own_oldest_results_never_anyone_elses(tmp_path):
    clock = Clock()
    store = OutputStore(tmp_path / "out", keep_for=900, max_bytes=10_000, share=1_000, clock=clock)

    def fill(owner: str, size: int) -> Path:
        folder = store.folder(owner)
        (folder / "data.bin").write_bytes(bytes(size))
        store.done(folder)
        return folder

    neighbour = fill("10.0.0.2", 400)
    mine = [fill("10.0.0.1", 300) for _ in range(10)]  # 3,000 bytes asked for, a share of 1,000
    assert store.owned_bytes("10.0.0.1") <= 1_000 + 300
    assert mine[-1].is_dir() and not mine[0].exists()  # the newest kept, the oldest made room
    assert neighbour.is_dir() and store.owned_bytes("10.0.0.2") == 400
    assert fill("10.0.0.3", 10).is_dir()  # the store never filled: others are served


def test_many_requests_keep_every_young_result(tmp_path, tiny_backbone):
    store = OutputStore(tmp_path / "out")
    explanation = Explainer(tiny_backbone).explain(_scene(), None)
    first_panels, first_archive = store.write_explanation(explanation, name="../../evil name!.png")
    for _ in range(40):
        store.write_explanation(explanation)
    assert first_archive.name == "gradcam-evil-name.zip" and first_archive.is_file()
    assert all(path.is_file() for path in first_panels.values())
    assert len(store) == 41
    assert store.used_bytes == sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file())


def _scene():
    import numpy as np

    from .conftest import make_scene

    return make_scene(np.random.default_rng(3), (0,)).image


def test_empty_upload_folders_are_removed_once_old(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "old-empty").mkdir(parents=True)
    (uploads / "old-full").mkdir()
    (uploads / "old-full" / "cat.png").write_bytes(b"x")
    (uploads / "young-empty").mkdir()
    past = time.time() - 2000
    for name in ("old-empty", "old-full"):
        os.utime(uploads / name, (past, past))
    assert remove_empty_folders(uploads, time.time() - 900) == 1
    assert sorted(p.name for p in uploads.iterdir()) == ["old-full", "young-empty"]


def test_close_removes_everything(tmp_path):
    store = OutputStore(tmp_path / "out")
    _fill(store, 5)
    store.close()
    assert not (tmp_path / "out").exists()


def test_limits_must_be_positive(tmp_path):
    for bad in ({"keep_for": 0}, {"max_bytes": -1}, {"share": 0}):
        with pytest.raises(ValueError, match="positive"):
            OutputStore(tmp_path, **bad)


def test_the_page_copies_are_drawn_small_and_look_like_the_full_pictures_shrunk(tmp_path, tiny_backbone):
    import cv2
    import numpy as np

    from demo.files import shrunk

    scene = np.kron(_scene(), np.ones((20, 20, 1), np.uint8))  # a large photo: 1280 pixels and more
    explanation = Explainer(tiny_backbone).explain(scene)
    small = shrunk(explanation, 800)
    assert max(small.image.shape[:2]) == 800 and small.cam.shape == small.image.shape[:2]
    scale = 800 / max(scene.shape[:2])
    for (x0, _, _, y1), (a0, _, _, b1) in zip(explanation.boxes, small.boxes):
        assert abs(a0 - x0 * scale) <= 1 and abs(b1 - y1 * scale) <= 1
    full = views.panels(explanation)["overlay"]
    shrunk_full = cv2.resize(full, small.image.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(views.panels(small)["overlay"].astype(int) - shrunk_full).mean() < 3
    shown = OutputStore(tmp_path).write_display(explanation)
    assert max(cv2.imread(str(shown["boxes"])).shape[:2]) == 800
    assert shrunk(small, 800) is small  # already small enough: unchanged
