"""The one place the app runs a model: :func:`run_engine`.

Every explanation the app gives, whatever asked for it (the page, the API, an
assistant, an Explore view), is one call of :func:`run_engine`. On a Hugging
Face ZeroGPU Space the call runs inside ``spaces.GPU`` (a GPU attached for its
duration, :func:`demo.gpu.on_gpu`); :data:`ENGINE` counts the calls running, so
that the models loading in the background wait for a quiet moment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo.gpu import on_gpu
from gradcam import Explainer, Explanation


class EngineGate:
    """How many engine calls run now; lets others wait until none does. Safe to share between threads."""

    def __init__(self) -> None:
        self._running = 0
        self._changed = threading.Condition()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Counts the body as one running engine call."""
        with self._changed:
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    @property
    def busy(self) -> bool:
        with self._changed:
            return self._running > 0

    def wait_idle(self, quiet: float = 0.5) -> None:
        """Returns once no engine call has run for ``quiet`` seconds."""
        with self._changed:
            while True:
                while self._running:
                    self._changed.wait()
                if not self._changed.wait_for(lambda: self._running > 0, timeout=quiet):
                    return


#: The engine calls of this process.
ENGINE = EngineGate()


@dataclass(frozen=True)
class Needs:
    """What an explanation must hold besides its map: what the Explore views asked for so far.

    Attributes:
        counterfactual: the map of what speaks against the class.
        compare: the maps of this many best classes.
        masking: the masking test.
        guided: the guided gradient.
        trust: the trust check ("Can I trust this map?").
        methods: every cheap method's map with its scores ("Compare methods").
    """

    counterfactual: bool = False
    compare: int = 0
    masking: bool = False
    guided: bool = False
    trust: bool = False
    methods: bool = False

    def lacking(self, explanation: Explanation | None) -> bool:
        """Whether ``explanation`` (a remembered one, or None) lacks something asked for."""
        if explanation is None:
            return True
        return (
            (self.counterfactual and explanation.counter_cam is None)
            or (self.compare > 0 and not explanation.classes)
            or (self.masking and explanation.masking is None)
            or (self.guided and explanation.guided is None)
            or (self.trust and explanation.trust is None)
            or (self.methods and not explanation.methods)
        )

    def keeping(self, explanation: Explanation | None) -> Needs:
        """These needs and what ``explanation`` already holds (a new engine call keeps what it had).

        The masking test is made for one box threshold and is not kept; the trust check and the methods'
        scores do not depend on it and are kept.
        """
        if explanation is None:
            return self
        return Needs(
            counterfactual=self.counterfactual or explanation.counter_cam is not None,
            compare=max(self.compare, len(explanation.classes)),
            masking=self.masking,
            guided=self.guided or explanation.guided is not None,
            trust=self.trust or explanation.trust is not None,
            methods=self.methods or bool(explanation.methods),
        )


@on_gpu
def run_engine(
    explainer: Explainer,
    rgb: np.ndarray,
    index: int | None,
    threshold: float,
    needs: Needs,
    progress: Any = None,
    method: str = "gradcam",
    time_limit: float | None = None,
    layer: str | None = None,
) -> Explanation:
    """The one engine call of a request: one :meth:`gradcam.Explainer.explain` with what ``needs`` asks for.

    Args:
        explainer: the model.
        rgb: the decoded photo, RGB uint8.
        index: the class to explain; None for the top prediction.
        threshold: the box threshold.
        needs: the extra views to compute in the same call.
        progress: called with the share of the work done (the masking test, the trust check, Score-CAM).
        method: the CAM method's name.
        time_limit: the longest Score-CAM's masked passes may take, in seconds.
        progress: called with the share of the work done (the masking test).
        layer: the layer to read; None: the model's automatic one.
    """
    with ENGINE.running():
        return explainer.explain(
            rgb,
            index,
            threshold=threshold,
            counterfactual=needs.counterfactual,
            compare=needs.compare,
            masking=needs.masking,
            guided=needs.guided,
            method=method,
            trust=needs.trust,
            methods=needs.methods,
            progress=progress,
            time_limit=time_limit,
            layer=layer,
        )
