"""The live camera between frames: the steadied map (by definition), each tab's runs, the words of the time left."""

from __future__ import annotations

import numpy as np
import pytest

from demo import text
from demo.live import LiveRuns, Steady, steadied
from demo.request import Photo
from gradcam import cam_to_boxes

from .helpers import make_explanation

KEY = ("TinyNet", None, None, "gradcam", (60, 90))


def _maps(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((60, 90), dtype=np.float32) for _ in range(count)]


def test_the_steady_map_is_the_mean_of_the_last_maps_scaled_to_a_peak_of_one():
    maps = _maps(5)
    steady = Steady(size=3)
    for n, cam in enumerate(maps, start=1):
        steady, shown = steady.add(KEY, cam)
        last = maps[max(0, n - 3) : n]
        reference = np.mean(last, axis=0) / np.mean(last, axis=0).max()  # by definition
        np.testing.assert_allclose(shown, reference, rtol=1e-6, atol=1e-7)
        assert shown.dtype == np.float32 and len(steady.maps) == min(n, 3)


def test_another_class_model_or_size_starts_the_average_again():
    first, second = _maps(2)
    steady, _ = Steady(size=3).add(KEY, first)
    others = [
        ("TinyNet", "disc", None, "gradcam", (60, 90)),
        ("VGG19", None, None, "gradcam", (60, 90)),
        ("TinyNet", None, None, "gradcam", (61, 90)),
        ("TinyNet", None, "features.3", "gradcam", (60, 90)),  # another layer, or another method: a new map
        ("TinyNet", None, None, "layercam", (60, 90)),
    ]
    for other in others:
        again, shown = steady.add(other, second)
        assert len(again.maps) == 1
        np.testing.assert_allclose(shown, second / second.max(), rtol=1e-6)


def test_an_empty_map_stays_empty_and_is_said_to_be():
    steady, shown = Steady().add(KEY, np.zeros((60, 90), np.float32))
    assert not shown.any()
    explanation = make_explanation(np.zeros((60, 90, 3), np.uint8), np.ones((60, 90), np.float32))
    empty = steadied(explanation, shown)
    assert empty.cam_empty and empty.boxes == tuple(cam_to_boxes(shown, explanation.threshold))


def test_the_boxes_are_drawn_around_the_steadied_map(image, cam):
    explanation = make_explanation(image, np.flipud(cam).copy())
    shown = steadied(explanation, cam)
    assert shown.boxes == tuple(cam_to_boxes(cam, explanation.threshold)) and not shown.cam_empty
    np.testing.assert_array_equal(shown.cam, cam)
    assert shown.class_name == explanation.class_name  # the words still describe the frame


def test_each_tab_has_its_run_a_new_event_starts_a_new_one_and_later_chunks_continue_it():
    now = [100.0]
    runs = LiveRuns(seconds=60, clock=lambda: now[0])
    first = runs.run("tab-1", "event-a")
    assert runs.run("tab-1", "") == first  # a stream's later chunk names no event
    now[0] += 5
    runs.update("tab-1", first.__class__(first.event, first.started, frame=Photo.of(b"frame"), explained=1))
    assert runs.frame("tab-1") == Photo.of(b"frame") and runs.frame("tab-2") is None
    restarted = runs.run("tab-1", "event-b")
    assert restarted.event == "event-b" and restarted.started == 105.0 and restarted.frame is None
    runs.update("tab-1", first)  # a frame of the old run, late: it does not overwrite the new one
    assert runs.run("tab-1", "").event == "event-b"
    assert runs.run("tab-2", "event-c").event == "event-c" and len(runs) == 2
    runs.end("tab-1")
    assert runs.frame("tab-1") is None and len(runs) == 1


def test_runs_are_bounded_and_old_ones_forgotten():
    now = [0.0]
    runs = LiveRuns(seconds=60, most=3, clock=lambda: now[0])
    for i in range(5):
        runs.run(f"tab-{i}", f"event-{i}")
    assert len(runs) == 3
    now[0] += 10_000
    runs.run("tab-new", "event-new")
    assert len(runs) == 1


def test_a_run_knows_its_time_left_and_when_it_may_speak():
    run = LiveRuns(clock=lambda: 10.0).run("tab", "event")
    assert run.left(40.0, seconds=60) == 30.0
    assert run.may_speak(10.0)  # it has never spoken
    assert not run.__class__(run.event, run.started, said=10.0).may_speak(10.9, every=1.0)


@pytest.mark.parametrize(
    "left, says, over",
    [
        (30.0, "", False),
        (10.0, "The live camera stops in 10 seconds (each run lasts 1 minute).", False),
        (1.2, "The live camera stops in 1 second (each run lasts 1 minute).", False),
        (0.0, "The live camera has stopped: each run lasts 1 minute. Press Record to start it again.", True),
        (-3.0, "The live camera has stopped: each run lasts 1 minute. Press Record to start it again.", True),
    ],
)
def test_the_page_says_the_time_left_before_the_end(left, says, over):
    assert text.live_time(left, 60, 10) == (says, over)


def test_a_short_run_is_said_in_seconds():
    assert text.live_time(2, 5, 3)[0] == "The live camera stops in 2 seconds (each run lasts 5 seconds)."


def test_a_stream_the_page_restarts_right_after_the_end_stays_over_and_a_later_one_is_a_new_run():
    now = [0.0]
    runs = LiveRuns(seconds=60, clock=lambda: now[0], restart_gap=1.0)
    runs.run("tab", "event-a")
    now[0] = 61.0
    runs.finish("tab")
    now[0] = 61.3
    went_on = runs.run("tab", "event-b")  # Gradio's page went on by itself: still over
    assert went_on.event == "event-b" and went_on.left(now[0]) == 0.0
    now[0] = 70.0
    again = runs.run("tab", "event-c")  # the visitor pressed Record
    assert again.started == 70.0 and again.over is None and again.left(now[0]) == 60.0


def test_a_tab_whose_frames_stopped_is_reported_quiet_once():
    now = [0.0]
    runs = LiveRuns(clock=lambda: now[0])
    runs.run("tab-1", "a")
    runs.run("tab-2", "b")
    now[0] = 1.5
    runs.run("tab-2", "")  # tab 2 still films
    now[0] = 3.0
    assert runs.quiet(2.0) == ["tab-1"]
    assert runs.quiet(2.0) == []  # once
    runs.run("tab-1", "")
    now[0] = 6.0
    assert sorted(runs.quiet(2.0)) == ["tab-1", "tab-2"]
