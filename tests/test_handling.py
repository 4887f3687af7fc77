"""How an event becomes a request: the visitor, the unknown class, and a repeat told from a new request."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from demo.page.handling import Asked, Handling, Repeats
from demo.request import Photo, Request
from demo.service import DemoService
from gradcam import Explainer


def _request(data: bytes = b"photo", alpha: float = 0.5, unknown: str | None = None) -> Asked:
    from demo.request import Look

    return Asked(Request(Photo.of(data), "TinyNet", look=Look(alpha)), unknown)


def test_a_repeat_is_the_same_request_from_the_same_tab_a_moment_later(monkeypatch):
    repeats = Repeats(within=5.0)
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    repeats.answered("tab-1", _request())
    assert repeats.repeated("tab-1", _request())
    assert not repeats.repeated("tab-2", _request()), "another tab's request is its own"
    assert not repeats.repeated("tab-1", _request(alpha=0.4)), "another setting is a new request"
    assert not repeats.repeated("tab-1", _request(b"other")), "another photo is a new request"
    assert not repeats.repeated("tab-1", _request(unknown="zzzqqq")), "a mistyped class is said, even for the same map"
    now[0] += 6
    assert not repeats.repeated("tab-1", _request()), "asked again later: answered again"


def test_the_repeats_of_many_tabs_stay_bounded():
    repeats = Repeats(sessions=3)
    for n in range(10):
        repeats.answered(f"tab-{n}", _request())
    assert not repeats.repeated("tab-0", _request()) and repeats.repeated("tab-9", _request())


@pytest.fixture
def handling(tiny_backbone, tmp_path):
    service = DemoService({"TinyNet": Explainer(tiny_backbone)}, workdir=tmp_path / "work")
    yield Handling(service, proxy_hops=1)
    service.close()


def test_a_handler_answers_a_repeat_without_answering_again(handling, tmp_path):
    photo = tmp_path / "p.png"
    import numpy as np
    from PIL import Image

    from .conftest import make_scene

    Image.fromarray(make_scene(np.random.default_rng(0), (0,)).image).save(photo)
    answers = []
    handle = handling.on_request(lambda asked, progress: answers.append(asked) or "answered", repeat=lambda: "repeat")
    tab = SimpleNamespace(
        session_hash="tab-1", headers={"x-forwarded-for": "1.2.3.4"}, client=SimpleNamespace(host="10.0.0.1")
    )
    values = (str(photo), "Top prediction", None, 0.15, 0.5, "jet", None)
    assert handle(*values, tab) == "answered"
    assert handle(*values, tab) == "repeat"
    assert handle(*values[:4], 0.3, *values[5:], tab) == "answered"  # a new look is a new request
    assert len(answers) == 2 and answers[0].request.visitor == "1.2.3.4"


def test_an_unknown_class_is_the_top_prediction_on_the_page_and_an_error_for_the_api(handling, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(tmp_path / "r.png")
    values = (str(tmp_path / "r.png"), "sqare", None, 0.15, 0.5, "jet")
    asked = handling.request(values, None)
    assert asked.request.target is None and asked.unknown == "sqare"
    from gradcam.errors import UnknownClassError

    with pytest.raises(UnknownClassError, match="Closest: square"):
        handling.request(values, None, unknown_class="raise")
