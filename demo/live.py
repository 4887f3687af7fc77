"""The live camera between frames, independent of Gradio: a steady map, a readable sentence, a time limit.

A live run is a stream of requests whose photo is a frame (:func:`demo.request.parse`
reads each; :meth:`demo.service.DemoService.frame` explains it with the one engine
call). What a run keeps from one frame to the next lives here:

- :class:`Steady`: the map averaged over the last few frames (Grad-CAM's map of one
  frame flickers with the camera's noise), started again when another class or model
  is asked for, or the picture changes size;
- :class:`LiveRun`: when the run started (it stops by itself after a time limit), when
  the sentence last changed (at most once a second, so it can be read), the last
  frame explained (what "Freeze" keeps);
- :class:`LiveRuns`: the runs in progress, one per browser tab, bounded in number.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from demo.request import Photo
from demo.settings import LIVE_AVERAGE, LIVE_SECONDS, LIVE_SENTENCE_EVERY
from gradcam import Explanation, cam_to_boxes

#: What a steadied map belongs to: the model, the class asked for (None: the top one), the layer (None: the
#: automatic one), the method that made the map and the frame's size.
SteadyKey = tuple[str, str | None, str | None, str, tuple[int, int]]


@dataclass(frozen=True)
class Steady:
    """The last maps of a run, averaged to steady the picture.

    Attributes:
        key: what the maps belong to; a frame of another key starts the average again.
        maps: the last maps, oldest first, at most ``size``.
        size: how many maps are averaged.
    """

    key: SteadyKey | None = None
    maps: tuple[np.ndarray, ...] = ()
    size: int = LIVE_AVERAGE

    def add(self, key: SteadyKey, cam: np.ndarray) -> tuple[Steady, np.ndarray]:
        """This average with one more frame's map: the new state, and the steadied map scaled to a peak of 1.

        Args:
            key: what ``cam`` belongs to.
            cam: the frame's map, float32 ``(height, width)`` in [0, 1].
        """
        maps = (*self.maps[-(self.size - 1) :], cam) if key == self.key and self.size > 1 else (cam,)
        mean: np.ndarray = np.stack(maps).mean(axis=0, dtype=np.float32)  # (height, width)
        peak = float(mean.max(initial=0.0))
        steadied = mean / np.float32(peak) if peak > 0 else mean
        return Steady(key, maps, self.size), steadied.astype(np.float32, copy=False)


def steadied(explanation: Explanation, cam: np.ndarray) -> Explanation:
    """The explanation with the steadied map in place of its own, and the boxes drawn around it."""
    return dataclasses.replace(
        explanation, cam=cam, boxes=tuple(cam_to_boxes(cam, explanation.threshold)), cam_empty=not cam.any()
    )


@dataclass(frozen=True)
class LiveRun:
    """One live run of one browser tab.

    Attributes:
        event: the queued event that carries the run.
        started: when its first frame came (``clock`` seconds).
        seen: when its last frame came.
        steady: the map's average so far.
        said: when the sentence last changed (``clock`` seconds; -inf: never).
        frame: the last frame explained, for "Freeze".
        explained: frames explained so far.
        over: when its time ran out (None while it runs).
        quiet: no frame came for a while: its stream was ended.
    """

    event: str
    started: float
    seen: float = float("-inf")
    steady: Steady = Steady()
    said: float = float("-inf")
    frame: Photo | None = None
    explained: int = 0
    over: float | None = None
    quiet: bool = False

    def left(self, now: float, seconds: float = LIVE_SECONDS) -> float:
        """Seconds left before the run stops by itself (0 once it is over)."""
        return 0.0 if self.over is not None else seconds - (now - self.started)

    def may_speak(self, now: float, every: float = LIVE_SENTENCE_EVERY) -> bool:
        """Whether the sentence may change now (at most once every ``every`` seconds)."""
        return now - self.said >= every


class LiveRuns:
    """The live runs in progress, by browser tab (session); safe to share between threads.

    A tab's stream is a run of events: Gradio's page starts a new event by itself when a
    stream ends while its camera still sends frames. So a new event is a new run, except
    one that starts right after a run's time ran out (``restart_gap``): that is the page
    going on by itself, and the run stays over.

    Args:
        seconds: how long a run lasts; a run older than that (and a grace) is forgotten.
        most: runs remembered at once; the oldest go first.
        clock: monotonic seconds; tests pass a fake one.
        restart_gap: see above (seconds).
    """

    def __init__(
        self,
        seconds: float = LIVE_SECONDS,
        most: int = 256,
        clock: Callable[[], float] = time.monotonic,
        restart_gap: float = 1.0,
    ) -> None:
        self.seconds = seconds
        self.most = most
        self.clock = clock
        self.restart_gap = restart_gap
        self._runs: OrderedDict[str, LiveRun] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, session: str, event: str) -> LiveRun:
        """The tab's run for this frame: the one in progress, or a new one when the event is new; its frame is seen.

        Args:
            session: the browser tab.
            event: the stream's event, or "" for a chunk that does not say (all but a stream's first:
                see :func:`demo.gradio_internals.current_event`), which continues the tab's run.
        """
        now = self.clock()
        with self._lock:
            self._forget_old()
            run = self._runs.get(session)
            if run is None:
                run = LiveRun(event, now)
            elif event and run.event != event:
                went_on = run.over is not None and now - run.over < self.restart_gap
                run = dataclasses.replace(run, event=event) if went_on else LiveRun(event, now)
            run = dataclasses.replace(run, seen=now, quiet=False)
            self._runs[session] = run
            self._runs.move_to_end(session)
            while len(self._runs) > self.most:
                self._runs.popitem(last=False)
            return run

    def update(self, session: str, run: LiveRun) -> None:
        """Keeps ``run`` as the tab's, unless another run has started meanwhile."""
        with self._lock:
            current = self._runs.get(session)
            if current is not None and current.event == run.event:
                self._runs[session] = run

    def finish(self, session: str) -> None:
        """The tab's run is over: its time ran out."""
        with self._lock:
            run = self._runs.get(session)
            if run is not None and run.over is None:
                self._runs[session] = dataclasses.replace(run, over=self.clock())

    def quiet(self, seconds: float) -> list[str]:
        """The tabs whose run got no frame for ``seconds`` (once each, until a frame comes again)."""
        cutoff = self.clock() - seconds
        with self._lock:
            found = [s for s, run in self._runs.items() if run.seen < cutoff and not run.quiet]
            for session in found:
                self._runs[session] = dataclasses.replace(self._runs[session], quiet=True)
            return found

    def frame(self, session: str) -> Photo | None:
        """The last frame the tab's run explained, if any."""
        with self._lock:
            run = self._runs.get(session)
            return None if run is None else run.frame

    def end(self, session: str) -> None:
        """Forgets the tab's run (it stopped, or the visitor left)."""
        with self._lock:
            self._runs.pop(session, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def _forget_old(self) -> None:
        cutoff = self.clock() - 2 * self.seconds - 60
        for session in [s for s, run in self._runs.items() if run.started < cutoff]:
            del self._runs[session]
