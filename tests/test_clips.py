"""Explaining a clip: the explained video lasts as long as the input, the table says what each frame showed."""

from __future__ import annotations

import csv
import dataclasses
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from gradcam import Explainer
from gradcam.clips import TABLE_COLUMNS, explain_clip
from gradcam.errors import InvalidVideoError, UnknownClassError
from gradcam.evaluate.metrics import pointing_hit
from gradcam.video import open_clip

from .conftest import SHAPES
from .videos import ten_hours_of_one_frame, walking_cat, write_clip


def _square_frames(count: int = 12, size: tuple[int, int] = (128, 64)) -> tuple[list[np.ndarray], list[tuple]]:
    """A red square (the tiny model's class 0) crossing a noisy frame, and its box on each."""
    width, height = size
    rng = np.random.default_rng(3)
    background = rng.integers(60, 140, (height, width, 3), dtype=np.uint8)
    frames, boxes = [], []
    for i in range(count):
        x = round(i * (width - 20) / (count - 1))
        frame = background.copy()
        frame[22:40, x : x + 18] = (220, 40, 40)
        frames.append(frame)
        boxes.append((x, 22, x + 17, 39))
    return frames, boxes


def _timing(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [round(float(frame.time), 4) for frame in container.decode(stream)]
        return times, float(stream.duration * stream.time_base)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_the_explained_video_has_the_inputs_frames_timestamps_and_duration(tiny_backbone, tmp_path):
    frames, _ = _square_frames()
    clip = write_clip(tmp_path / "in.mp4", frames, fps=10)
    result = explain_clip(Explainer(tiny_backbone), clip, tmp_path / "out")
    assert result.video.name == "overlay.mp4" and result.table.name == "frames.csv"
    assert (result.frames, result.explained) == (12, 12)
    assert _timing(result.video) == _timing(clip)
    assert result.duration == pytest.approx(1.2)
    assert result.classes[0][1] <= 12 and sum(n for _, n in result.classes) == 12


def test_every_nth_frame_is_explained_and_shown_until_the_next(tiny_backbone, tmp_path):
    frames, _ = _square_frames(11)
    clip = write_clip(tmp_path / "in.mp4", frames, fps=10)
    result = explain_clip(Explainer(tiny_backbone), clip, tmp_path / "out", every=3)
    times, duration = _timing(result.video)
    assert times == [0.0, 0.3, 0.6, 0.9]  # frames 0, 3, 6, 9
    assert duration == pytest.approx(_timing(clip)[1])  # the last one shown until the clip ends
    rows = _rows(result.table)
    assert rows[0] == list(TABLE_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == [0, 3, 6, 9] and result.explained == 4 and result.frames == 11


def test_a_variable_frame_rate_keeps_its_timing(tiny_backbone, tmp_path):
    frames, _ = _square_frames(6)
    tb = Fraction(1, 1000)
    clip = write_clip(tmp_path / "vfr.mp4", frames, time_base=tb, pts=[0, 100, 200, 400, 500, 900], options={"bf": "0"})
    result = explain_clip(Explainer(tiny_backbone), clip, tmp_path / "out")
    assert _timing(result.video) == _timing(clip)


def test_each_row_is_that_frames_explanation(tiny_backbone, tmp_path):
    """By definition: a row holds what Explainer.explain says of the decoded frame, its box in the clip's pixels."""
    frames, _ = _square_frames(5, size=(256, 128))
    clip = write_clip(tmp_path / "in.mp4", frames)
    explainer = Explainer(tiny_backbone)
    result = explain_clip(explainer, clip, tmp_path / "out", max_side=128, threshold=0.3, batch=2)
    rows = _rows(result.table)[1:]
    with open_clip(clip) as opened:
        decoded = [frame.image for frame in opened.frames(128)]  # 128 x 64: half the clip's size
    assert len(rows) == len(decoded) == 5
    for row, frame in zip(rows, decoded):
        alone = explainer.explain(frame, threshold=0.3)
        assert row[2] == alone.class_name
        assert float(row[3]) == pytest.approx(alone.probability, abs=1e-4)
        x0, y0, x1, y1 = alone.boxes[0]
        assert [int(v) for v in row[4:]] == [2 * x0, 2 * y0, 2 * x1 + 1, 2 * y1 + 1]


def test_the_map_follows_the_square_across_the_frame(tiny_backbone, tmp_path):
    frames, boxes = _square_frames(12)
    clip = write_clip(tmp_path / "in.mp4", frames)
    explainer = Explainer(tiny_backbone)
    maps = []

    def engine(batch):
        explained = explainer.explain_frames(batch, "square")
        maps.extend(e.cam for e in explained)
        return explained

    explain_clip(explainer, clip, tmp_path / "out", target="square", engine=engine)
    hits = [pointing_hit(cam, [box]) for cam, box in zip(maps, boxes)]
    assert len(hits) == 12 and sum(hits) >= 0.9 * len(hits), hits


def test_frames_go_to_the_engine_in_batches_and_progress_reaches_the_end(tiny_backbone, tmp_path):
    frames, _ = _square_frames(10)
    clip = write_clip(tmp_path / "in.mp4", frames)
    explainer = Explainer(tiny_backbone)
    batches, progress, previews = [], [], []

    def engine(batch):
        batches.append(len(batch))
        return explainer.explain_frames(batch)

    explain_clip(
        explainer,
        clip,
        tmp_path / "out",
        batch=4,
        engine=engine,
        progress=lambda done, total: progress.append((done, total)),
        shown=lambda picture, row: previews.append((picture.shape, row.frame)),
    )
    assert batches == [4, 4, 2]
    assert progress[-1] == (10, 10) and [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert [frame for _, frame in previews] == list(range(10)) and previews[0][0] == (64, 128, 3)


def test_a_refused_clip_leaves_nothing_behind(tiny_backbone, tmp_path):
    clip = ten_hours_of_one_frame(tmp_path / "long.mp4")
    out = tmp_path / "out"
    with pytest.raises(InvalidVideoError, match="10 hours"):
        explain_clip(Explainer(tiny_backbone), clip, out)
    assert not out.exists()
    with pytest.raises(UnknownClassError):
        explain_clip(Explainer(tiny_backbone), clip, tmp_path / "other", target="triangle")  # before the clip is read
    with pytest.raises(ValueError, match="every must be a whole number"):
        explain_clip(Explainer(tiny_backbone), clip, out, every=0)


def test_a_class_name_is_not_read_as_a_spreadsheet_formula(tiny_backbone, tmp_path):
    backbone = dataclasses.replace(tiny_backbone, categories=("=HYPERLINK(1)", SHAPES[1]))
    frames, _ = _square_frames(2)
    result = explain_clip(Explainer(backbone), write_clip(tmp_path / "in.mp4", frames), tmp_path / "out", target=0)
    assert {row[2] for row in _rows(result.table)[1:]} == {"'=HYPERLINK(1)"}


@pytest.mark.slow
def test_the_map_follows_a_walking_cat_with_real_weights(lite0, tmp_path):
    """EfficientNet-Lite0's real weights: the map's peak is on the cat on at least 90% of the frames."""
    frames, boxes = walking_cat(30)
    clip = write_clip(tmp_path / "cat.mp4", frames, fps=10)
    explainer = Explainer(lite0)
    maps = []

    def engine(batch):
        explained = explainer.explain_frames(batch)
        maps.extend(e.cam for e in explained)
        return explained

    result = explain_clip(explainer, clip, tmp_path / "out", engine=engine)
    hits = [pointing_hit(cam, [box]) for cam, box in zip(maps, boxes)]
    assert len(hits) == 30 and sum(hits) >= math.ceil(0.9 * 30), hits
    assert _timing(result.video) == _timing(clip)
    assert "cat" in result.classes[0][0]
