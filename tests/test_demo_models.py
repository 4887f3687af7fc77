"""The app's model set: the first model that loads is the default, the others load in the background."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from demo.errors import UserError
from demo.models import LoadFailed, ModelSet
from gradcam import Explainer, WeightsError


def _failing(reason: str | None = None):
    def load() -> Explainer:
        message = "Could not download the weights (no network)."
        raise LoadFailed(message, reason) if reason else WeightsError(message)

    return load


def test_the_first_model_that_loads_is_the_default_and_the_others_say_why_not(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    models = ModelSet.load(
        [
            ("VGG19", _failing("its weights (548 MB) are not on this server")),
            ("TinyNet", lambda: explainer),
            ("Broken", _failing()),
        ],
        background=False,
    )
    assert models.default == "TinyNet" and models.titles == ["VGG19", "TinyNet", "Broken"]
    assert models.status() == {
        "VGG19": "its weights (548 MB) are not on this server",
        "TinyNet": "ready",
        "Broken": "its weights could not be loaded",
    }
    assert models.get(None) is explainer and models.get("TinyNet") is explainer
    with pytest.raises(
        UserError,
        match=r"^VGG19 is not available on this server right now \(its weights \(548 MB\) are not on this server\)",
    ):
        models.get("VGG19")
    with pytest.raises(UserError, match=r"^Unknown model 'x{37}…'; choose one of: TinyNet\.$"):
        models.get("x" * 5000)


def test_the_models_after_the_default_load_only_when_no_explanation_runs(tiny_backbone):
    explainer = Explainer(tiny_backbone)
    order: list[str] = []
    busy = threading.Event()

    def idle() -> None:
        order.append("waited")
        busy.wait(10)  # stands for: an explanation runs until this is set

    def later() -> Explainer:
        order.append("loaded")
        return explainer

    models = ModelSet.load([("TinyNet", lambda: explainer), ("Later", later)], background=True, idle=idle)
    try:
        time_out = threading.Event()
        time_out.wait(0.2)
        assert order == ["waited"] and models.status()["Later"] == "still loading"
        busy.set()
        assert models.wait(10) and order == ["waited", "loaded"]
    finally:
        busy.set()


def test_no_model_at_all_raises_the_first_error():
    with pytest.raises(WeightsError, match="no network"):
        ModelSet.load([("A", _failing()), ("B", _failing())], background=False)


def test_the_page_is_served_while_the_others_load_and_says_which_are_loading(tiny_backbone):
    release = threading.Event()
    explainer = Explainer(tiny_backbone)

    def slow() -> Explainer:
        release.wait(10)
        return explainer

    models = ModelSet.load([("TinyNet", lambda: explainer), ("Slow", slow)], background=True)
    try:
        assert models.status()["Slow"] == "still loading"
        with pytest.raises(UserError, match="Slow is still loading. Please try again in a minute"):
            models.get("Slow")
        assert list(models.ready) == ["TinyNet"]
    finally:
        release.set()
    assert models.wait(10)
    assert models.status()["Slow"] == "ready" and list(models.ready) == ["TinyNet", "Slow"]


def test_an_unexpected_failure_of_an_extra_model_does_not_take_the_page_down(tiny_backbone, caplog):
    def broken() -> Explainer:
        raise RuntimeError("CUDA out of memory")

    models = ModelSet.load([("TinyNet", lambda: Explainer(tiny_backbone)), ("Big", broken)], background=False)
    assert models.status()["Big"] == "it failed to load"
    assert "CUDA out of memory" in caplog.text


def test_a_first_model_the_operator_configured_fails_loudly_instead_of_falling_back(tiny_backbone):
    with pytest.raises(WeightsError, match="no network"):
        ModelSet.load(
            [("Mine", _failing()), ("TinyNet", lambda: Explainer(tiny_backbone))], background=False, fallback=False
        )


def test_offline_with_nothing_cached_the_app_serves_the_embedded_model_and_says_why_not_the_others(offline, tmp_path):
    from demo.service import load_service
    from demo.settings import DEFAULT_MODELS
    from demo.text import models_note

    service = load_service(None, DEFAULT_MODELS, workdir=tmp_path / "work", background=False)
    try:
        assert service.default_model == "EfficientNet-Lite0"
        status = service.models.status()
        assert status["EfficientNet-Lite0"] == "ready"
        for title in ("VGG19", "ResNet-50", "DenseNet-121"):
            assert "not on this server" in status[title] and "download" in status[title], status[title]
        assert models_note(status).startswith("Not available on this server: VGG19 (its weights")
        explanation = service.explanation(
            service.parse(str(Path(__file__).parents[1] / "demo" / "examples" / "chelsea.png"))
        )
        assert "cat" in explanation.class_name and not explanation.untrained
    finally:
        service.close()
    assert offline, "the pretrained weights were not even tried"
