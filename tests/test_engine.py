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
