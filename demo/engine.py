"""The one place the app runs a model: :func:`run_engine`, and :func:`run_frames` for a video's frames.

Every explanation the app gives, whatever asked for it (the page, the API, an
assistant, an Explore view, a live camera's frame), is one call of
:func:`run_engine`; a video clip's frames go a batch at a time through
:func:`run_frames`. On a Hugging Face ZeroGPU Space the calls run inside
``spaces.GPU`` (a GPU attached for their duration, :func:`demo.gpu.on_gpu`);
:data:`ENGINE` lets one call run at a time, in the order that keeps the page
quick (:class:`EngineGate`), and lets the models loading in the background wait
for a quiet moment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo.gpu import on_gpu
from gradcam import Explainer, Explanation


class EngineGate:
    """Who runs the model now: one engine call at a time. Safe to share between threads.

    The page's, the API's and the assistants' requests (``running()``) wait first in line;
    a video clip's batches (``running(behind=True)``) wait behind every such request; a live
    camera's frames (``trying()``) never wait: a frame that finds the model busy, or someone
    waiting for it, is dropped. So a photo asked for during a live stream waits at most for
    the one frame being explained, and a stream holds the model only frame by frame. A
    thread that holds the model may enter again (a frame's engine call inside ``trying()``).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holder: int | None = None
        self._depth = 0
        self._first = 0  # requests waiting first in line
        self._behind = 0  # clip batches waiting behind them
        #: Frames dropped because the model was busy; the longest a frame held the model, and the longest a
        #: request waited for a frame to finish (seconds): what a live stream costs the page.
        self.dropped = 0
        self.longest_frame = 0.0
        self.longest_wait_behind_frame = 0.0
        self._frame_since: float | None = None

    @contextmanager
    def running(self, *, behind: bool = False) -> Iterator[None]:
        """Holds the model for the body, waiting for it: first in line, or ``behind`` every other request."""
        me = threading.get_ident()
        with self._changed:
            if self._holder == me:
                self._depth += 1
            else:
                started, after_frame = time.monotonic(), self._frame_since is not None
                if behind:
                    self._behind += 1
                    self._changed.wait_for(lambda: self._holder is None and self._first == 0)
                    self._behind -= 1
                else:
                    self._first += 1
                    self._changed.wait_for(lambda: self._holder is None)
                    self._first -= 1
                    if after_frame:
                        waited = time.monotonic() - started
                        self.longest_wait_behind_frame = max(self.longest_wait_behind_frame, waited)
                self._holder, self._depth = me, 1
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def trying(self) -> Iterator[bool]:
        """Holds the model for the body if it is free and nobody waits (yields True); else yields False at once."""
        me = threading.get_ident()
        with self._changed:
            free = self._holder == me or (self._holder is None and self._first == 0 and self._behind == 0)
            if not free:
                self.dropped += 1
            elif self._holder == me:
                self._depth += 1
            else:
                self._holder, self._depth, self._frame_since = me, 1, time.monotonic()
        try:
            yield free
        finally:
            if free:
                self._release()

    def _release(self) -> None:
        with self._changed:
            self._depth -= 1
            if self._depth == 0:
                if self._frame_since is not None:
                    self.longest_frame = max(self.longest_frame, time.monotonic() - self._frame_since)
                self._holder, self._frame_since = None, None
                self._changed.notify_all()

    @property
    def busy(self) -> bool:
        with self._changed:
            return self._holder is not None

    def wait_idle(self, quiet: float = 0.5) -> None:
        """Returns once no engine call has run for ``quiet`` seconds."""
        with self._changed:
            while True:
                self._changed.wait_for(lambda: self._holder is None)
                if not self._changed.wait_for(lambda: self._holder is not None, timeout=quiet):
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


@on_gpu
def run_frames(
    explainer: Explainer,
    frames: Sequence[np.ndarray],
    index: int | None,
    threshold: float,
    layer: str | None = None,
    method: str | None = None,
) -> list[Explanation]:
    """One engine call for a batch of a video's frames (:meth:`gradcam.Explainer.explain_frames`).

    The batch waits behind the page's requests (see :class:`EngineGate`).
    """
    with ENGINE.running(behind=True):
        return explainer.explain_frames(list(frames), index, threshold=threshold, layer=layer, method=method)
