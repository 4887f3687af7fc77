"""Explaining a video clip frame by frame: the explained video and a table of what the model saw.

:func:`explain_clip` reads a clip through the one gate for videos
(:func:`gradcam.video.open_clip`), explains every ``every``-th frame with
Grad-CAM (Selvaraju et al., ICCV 2017), a batch of frames per engine call
(:meth:`gradcam.Explainer.explain_frames`), draws each with
:func:`gradcam.views.boxed_overlay` (the map over the frame, the box and its
label) and writes

* ``overlay.mp4``: the explained frames as H.264 (see :class:`gradcam.video.ClipWriter`),
  each shown as long as the frames it stands for, so the explained video has the
  input's duration (and, with ``every=1``, its frame count and timestamps);
* ``frames.csv``: one row per explained frame: its number, its time, the class,
  the probability and the box in the clip's own pixels.

Frames stream through: one batch is held, and one drawn frame waits for the next
to know how long it is shown, so memory does not grow with the clip's length.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TextIO

import numpy as np

from gradcam import views
from gradcam.boxes import Box
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA, VIDEO_SIDE
from gradcam.explainer import Explainer, Target
from gradcam.explanation import Explanation
from gradcam.video import ClipFrame, ClipInfo, ClipWriter, VideoSource, open_clip

#: The explained video's and the table's file names.
VIDEO_FILE = "overlay.mp4"
TABLE_FILE = "frames.csv"
#: The table's columns: the box is in the clip's pixels, corners inclusive; empty when nothing is highlighted.
TABLE_COLUMNS = ("frame", "time_s", "class", "probability", "x0", "y0", "x1", "y1")
#: Frames explained per engine call.
BATCH = 4

#: Explains equally sized RGB frames: one engine call for the batch, one explanation per frame.
Engine = Callable[[list[np.ndarray]], list[Explanation]]
#: Called with the frames read so far and the frames the clip announces (0 when it does not say).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FrameRow:
    """What the model saw in one explained frame (a row of ``frames.csv``).

    Attributes:
        frame: the frame's number in the clip, from 0.
        time: its time in seconds from the clip's start.
        class_index: the explained class.
        class_name: its name.
        probability: the model's probability for it.
        box: the strongest region ``(x0, y0, x1, y1)`` in the clip's pixels, corners inclusive; None when empty.
    """

    frame: int
    time: float
    class_index: int
    class_name: str
    probability: float
    box: Box | None


@dataclass(frozen=True)
class ExplainedClip:
    """The files an explained clip was written to, and what they hold.

    Attributes:
        video: ``overlay.mp4``.
        table: ``frames.csv``.
        info: the input clip's header.
        frames: the frames the clip holds.
        explained: the frames explained (every ``every``-th).
        duration: the explained video's duration, seconds (the input's).
        size: ``(width, height)`` of the explained video.
        classes: the classes seen, with how many explained frames each was the class of, most frequent first.
        asked: the class asked for, or None for each frame's top prediction.
        model_name: the model.
        layer_name: the layer the maps were read from.
        untrained: True when the model's weights are random.
    """

    video: Path
    table: Path
    info: ClipInfo
    frames: int
    explained: int
    duration: float
    size: tuple[int, int]
    classes: tuple[tuple[str, int], ...]
    asked: str | None
    model_name: str
    layer_name: str
    untrained: bool


def explain_clip(
    explainer: Explainer,
    source: VideoSource,
    folder: str | os.PathLike[str],
    *,
    target: Target = None,
    every: int = 1,
    threshold: float = BOX_THRESHOLD,
    alpha: float = OVERLAY_ALPHA,
    colormap: str = COLORMAP,
    max_side: int | None = VIDEO_SIDE,
    batch: int = BATCH,
    engine: Engine | None = None,
    progress: Progress | None = None,
    shown: Callable[[np.ndarray, FrameRow], None] | None = None,
    deadline: float | None = None,
) -> ExplainedClip:
    """Explains a clip and writes ``overlay.mp4`` and ``frames.csv`` into ``folder``.

    Args:
        explainer: the model.
        source: the clip, a path or its bytes (read through :func:`gradcam.video.open_clip`).
        folder: where the two files go (created if missing).
        target: None for each frame's top prediction, a class index or a class name.
        every: explain every ``every``-th frame (1: all); each explained frame is shown
            until the next one.
        threshold: box threshold, a fraction of the map's maximum.
        alpha: the heatmap's opacity over the frames.
        colormap: a matplotlib colormap name.
        max_side: frames with a longer side are shrunk to it (None: the clip's size).
        batch: frames per engine call.
        engine: explains a batch of frames (default: ``explainer.explain_frames`` for
            ``target`` and ``threshold``); an app passes its own to schedule the model.
        progress: called after each batch with the frames read and the frames announced.
        shown: called with each drawn frame and its row, as they are made (a preview).
        deadline: a ``time.monotonic()`` time after which the work stops with an error.

    Returns:
        What was written.

    Raises:
        InvalidVideoError: the clip cannot be read or is beyond the limits (see
            :func:`gradcam.video.open_clip`); the two files are not left behind (and
            ``folder`` is not made when the header is refused).
        UnknownClassError: the target is not a class of the model (before the clip is read).
        ValueError: ``every`` or ``batch`` below 1, or a threshold outside [0, 1].
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a whole number of at least 1, got {every!r}.")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    index = None if target is None else explainer.class_index(target)
    run = engine or (lambda frames: explainer.explain_frames(frames, index, threshold=threshold))
    out = Path(folder)
    video, table = out / VIDEO_FILE, out / TABLE_FILE
    with open_clip(source) as clip:  # refused before anything is written
        out.mkdir(parents=True, exist_ok=True)
        info = clip.info
        width, height = info.size(max_side)
        try:
            with (
                table.open("w", newline="", encoding="utf-8") as rows,
                ClipWriter(video, width, height, info.time_base, info.rate) as writer,
            ):
                counts, frames, end = _explain_frames(
                    clip.frames(max_side, deadline=deadline),
                    _Drawing(run, info, (width, height), alpha, colormap, rows, writer, shown),
                    every,
                    batch,
                    progress,
                    info,
                )
        except BaseException:
            table.unlink(missing_ok=True)
            raise
    return ExplainedClip(
        video=video,
        table=table,
        info=info,
        frames=frames,
        explained=sum(counts.values()),
        duration=float(end * info.time_base),
        size=(width, height),
        classes=tuple(counts.most_common()),
        asked=None if index is None else explainer.backbone.categories[index],
        model_name=explainer.backbone.title,
        layer_name=explainer.backbone.target_layer,
        untrained=explainer.backbone.untrained,
    )


class _Drawing:
    """Explains batches, draws each frame, writes its row, and hands the drawn frame to the writer one step late.

    A drawn frame is written once the next explained frame (or the clip's end) says how long it is shown.
    """

    def __init__(
        self,
        run: Engine,
        info: ClipInfo,
        size: tuple[int, int],
        alpha: float,
        colormap: str,
        rows: TextIO,
        writer: ClipWriter,
        shown: Callable[[np.ndarray, FrameRow], None] | None,
    ) -> None:
        self.run, self.info, self.alpha, self.colormap = run, info, alpha, colormap
        self.scale = (info.width / size[0], info.height / size[1])
        self.table = csv.writer(rows)
        self.table.writerow(TABLE_COLUMNS)
        self.writer, self.shown = writer, shown
        self.counts: Counter[str] = Counter()
        self._held: tuple[np.ndarray, int] | None = None

    def explain(self, frames: Sequence[ClipFrame]) -> None:
        explanations = self.run([frame.image for frame in frames])
        for frame, explanation in zip(frames, explanations):
            picture = views.boxed_overlay(explanation, self.alpha, self.colormap)
            row = self._row(frame, explanation)
            self.table.writerow(_cells(row))
            self.counts[row.class_name] += 1
            self._hold(picture, frame.pts)
            if self.shown is not None:
                self.shown(picture, row)

    def _row(self, frame: ClipFrame, explanation: Explanation) -> FrameRow:
        box = None
        if explanation.boxes and not explanation.cam_empty:
            x0, y0, x1, y1 = explanation.boxes[0]
            sx, sy = self.scale
            last_x, last_y = self.info.width - 1, self.info.height - 1
            box = (
                min(last_x, int(x0 * sx)),
                min(last_y, int(y0 * sy)),
                min(last_x, int((x1 + 1) * sx) - 1),
                min(last_y, int((y1 + 1) * sy) - 1),
            )
        return FrameRow(
            frame.index,
            frame.time(self.info.time_base),
            explanation.class_index,
            explanation.class_name,
            explanation.probability,
            box,
        )

    def _hold(self, picture: np.ndarray, pts: int) -> None:
        self.finish(pts)
        self._held = (picture, pts)

    def finish(self, until: int) -> None:
        """Writes the held frame, shown until ``until`` (ticks)."""
        if self._held is not None:
            picture, pts = self._held
            self.writer.write(picture, pts, max(1, until - pts))
            self._held = None


def _explain_frames(
    frames: Iterator[ClipFrame],
    drawing: _Drawing,
    every: int,
    batch: int,
    progress: Progress | None,
    info: ClipInfo,
) -> tuple[Counter[str], int, int]:
    """Feeds every ``every``-th frame to ``drawing`` in batches; returns the class counts, frames read, end tick."""
    waiting: list[ClipFrame] = []
    read = 0
    last: ClipFrame | None = None
    step = 0  # the last frame-to-frame gap seen, for a last frame whose duration the stream does not give
    for frame in frames:
        if last is not None:
            step = frame.pts - last.pts
        last = frame
        read += 1
        if frame.index % every == 0:
            waiting.append(frame)
        if len(waiting) == batch:
            drawing.explain(waiting)
            waiting = []
            if progress is not None:
                progress(read, info.frames)
    if waiting:
        drawing.explain(waiting)
    assert last is not None  # open_clip's frames() raises when the clip has none
    shown_for = last.duration or step or _ticks_per_frame(info)
    end = last.pts + shown_for
    drawing.finish(end)
    if progress is not None:
        progress(read, read)
    return drawing.counts, read, end


def _ticks_per_frame(info: ClipInfo) -> int:
    rate = info.rate or Fraction(30)
    return max(1, round(1 / rate / info.time_base))


def _cells(row: FrameRow) -> list[str]:
    box = [str(v) for v in row.box] if row.box is not None else ["", "", "", ""]
    return [str(row.frame), f"{row.time:.3f}", _safe_cell(row.class_name), f"{row.probability:.4f}", *box]


def _safe_cell(text: str) -> str:
    """A class name as a spreadsheet shows it: a leading ``=``, ``+``, ``-`` or ``@`` is not read as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
