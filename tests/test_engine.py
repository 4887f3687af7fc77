"""The one engine call: what it computes for the views, and the count of calls the background loading waits on."""

from __future__ import annotations

import threading
import time

import numpy as np

from demo.engine import ENGINE, EngineGate, Needs, run_engine
from gradcam import Explainer

from .conftest import make_scene


def test_the_engine_call_computes_what_the_views_need_in_one_call(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    image = make_scene(np.random.default_rng(2), (0, 1)).image
    plain = run_engine(explainer, image, None, 0.15, Needs())
    assert plain.counter_cam is None and plain.masking is None and plain.guided is None and plain.classes == ()
    full = run_engine(explainer, image, 1, 0.3, Needs(counterfactual=True, compare=2, masking=True, guided=True))
    assert full.class_index == 1 and full.threshold == 0.3
    assert (
        full.counter_cam is not None and full.masking is not None and full.guided is not None and len(full.classes) == 2
    )


def test_needs_say_what_a_remembered_explanation_lacks_and_keep_what_it_has(tiny_backbone):
    image = make_scene(np.random.default_rng(2), (0,)).image
    explanation = run_engine(Explainer(tiny_backbone), image, None, 0.15, Needs(counterfactual=True, compare=2))
    assert Needs().lacking(None) and not Needs().lacking(explanation)
    assert not Needs(counterfactual=True).lacking(explanation) and Needs(guided=True).lacking(explanation)
    kept = Needs(guided=True).keeping(explanation)
    assert kept == Needs(counterfactual=True, compare=2, guided=True)  # the masking test is made for one threshold


def test_the_gate_waits_until_no_engine_call_has_run_for_a_quiet_moment():
    gate = EngineGate()
    done = []

    def call() -> None:
        with gate.running():
            time.sleep(0.2)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.05)
    assert gate.busy
    start = time.monotonic()
    gate.wait_idle(quiet=0.1)
    done.append(time.monotonic() - start)
    worker.join()
    assert not gate.busy and done[0] >= 0.15 + 0.1 - 0.02


def test_every_engine_call_is_counted(tiny_backbone, monkeypatch):
    seen = []
    explainer = Explainer(tiny_backbone)
    original = explainer.explain

    def explain(*args, **kwargs):
        seen.append(ENGINE.busy)
        return original(*args, **kwargs)

    monkeypatch.setattr(explainer, "explain", explain)
    run_engine(explainer, make_scene(np.random.default_rng(2), (0,)).image, None, 0.15, Needs())
    assert seen == [True] and not ENGINE.busy


def _hold(gate: EngineGate, seconds: float, *, frame: bool = False, behind: bool = False, log=None, name=""):
    """A thread that holds the model for ``seconds``: a frame (trying), a clip batch (behind) or a request."""

    def body() -> None:
        if frame:
            with gate.trying() as free:
                assert free
                time.sleep(seconds)
        else:
            with gate.running(behind=behind):
                if log is not None:
                    log.append(name)
                time.sleep(seconds)

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_a_request_waits_for_one_frame_at_most_and_frames_never_wait():
    gate = EngineGate()
    frame = _hold(gate, 0.3, frame=True)
    time.sleep(0.05)
    start = time.monotonic()
    with gate.trying() as free:  # the model is busy: dropped at once, not queued
        assert not free
    assert time.monotonic() - start < 0.05 and gate.dropped == 1
    request = _hold(gate, 0.2)
    time.sleep(0.05)
    frame.join()
    with gate.trying() as free:  # a request is waiting (or running): frames step aside
        assert not free
    request.join()
    assert gate.dropped == 2
    assert 0.2 < gate.longest_wait_behind_frame <= gate.longest_frame + 0.05


def test_clip_batches_wait_behind_every_request():
    gate = EngineGate()
    order: list[str] = []
    first = _hold(gate, 0.2, log=order, name="first")
    time.sleep(0.05)
    batch = _hold(gate, 0.0, behind=True, log=order, name="clip batch")
    time.sleep(0.05)
    request = _hold(gate, 0.0, log=order, name="photo")
    for thread in (first, batch, request):
        thread.join()
    assert order == ["first", "photo", "clip batch"]


def test_a_thread_that_holds_the_model_may_enter_again():
    gate = EngineGate()
    with gate.trying() as free, gate.running():
        assert free and gate.busy
    assert not gate.busy
