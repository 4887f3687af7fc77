"""Reading and writing short video clips, in this process and within bounds.

:func:`open_clip` is the one gate between a stranger's video and the rest of the
package, as :func:`gradcam.images.load_image` is for photos. It

* reads only the containers people record clips in: MP4 and MOV (the ISO base
  media file format, told by its ``ftyp`` box or QuickTime's first atoms) and
  WebM or Matroska (told by their EBML header). The container is sniffed from
  the bytes before any demuxer runs, and then only that demuxer is used: FFmpeg
  never guesses another format, and a file that is a picture (HEIC and AVIF are
  ``ftyp`` files too), a playlist or anything else is refused as "not a video we
  can read". The file reaches FFmpeg's libraries (through PyAV) as a Python file
  object, so a clip cannot name other files or URLs for the demuxer to open;
* decodes only the codecs of cameras, phones and the web (``VIDEO_CODECS``);
* bounds the work before decoding, from the header, and again while decoding,
  from each frame: the duration (``MAX_VIDEO_SECONDS``), the number of frames
  (``MAX_VIDEO_FRAMES``), the frame size (``MAX_VIDEO_PIXELS``) and, when the
  caller gives one, the wall time. A 10-hour clip of one frame, a frame of
  tens of megapixels or a stream whose timestamps run past the limit are refused
  in a fraction of a second;
* hands over one frame at a time, as an RGB uint8 array shrunk to ``max_side``
  by FFmpeg's scaler, so memory does not grow with the clip's length.

:class:`ClipWriter` writes the explained frames as **H.264 in MP4** (libx264,
yuv420p, no B-frames, the index at the front of the file). H.264 is chosen over
VP9 on purpose: every browser plays it (Chromium, Firefox and Safari on phones
and laptops alike), and libx264 encodes a frame several times faster than
libvpx-vp9 on a CPU, so encoding stays a small share of the model's time. The
index at the front lets a browser start playing before the file has loaded; no
B-frames keep each frame's timestamp and duration exactly those of the input, so
the explained clip lasts exactly as long as the original.

Every refusal is a :class:`gradcam.errors.InvalidVideoError` whose message is
one sentence for the person who sent the file; FFmpeg's reason stays chained.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import av.error
import numpy as np

from gradcam.config import (
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_PIXELS,
    MAX_VIDEO_SECONDS,
    MIN_IMAGE_SIDE,
    VIDEO_CODECS,
)
from gradcam.errors import InvalidVideoError, VideoTooLargeError, VideoTooLongError

VideoSource = str | os.PathLike[str] | bytes

#: The containers, as people know them, named in messages.
SUPPORTED_VIDEO = "MP4, MOV or WebM"

_NOT_A_VIDEO = f"This file is not a video we can read. Please use an {SUPPORTED_VIDEO} clip."
_DAMAGED = "This video file is damaged or incomplete and cannot be read."
_NO_PICTURES = "No picture could be read from this video: it is damaged, or holds only sound."
_SLOW = "This video takes far too long to read. Please use a shorter clip, or one of a smaller size."

#: ISO base media brands of still pictures (HEIC, AVIF): ``ftyp`` files that are not clips.
_PICTURE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"avio"})
#: QuickTime atoms a MOV file may start with, instead of an ``ftyp`` box.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
#: The one FFmpeg demuxer each sniffed container is read with.
_DEMUXERS = {"MP4": "mov,mp4,m4a,3gp,3g2,mj2", "MOV": "mov,mp4,m4a,3gp,3g2,mj2", "WebM": "matroska,webm"}
#: Packets a damaged stream may fail to decode before the clip is refused.
_MAX_BAD_PACKETS = 30
#: Demuxer bounds: bytes and microseconds read to find the streams.
_PROBE = {"probesize": str(8 * 1024 * 1024), "analyzeduration": str(5_000_000)}
#: Encoder settings: a fast preset (a 640 x 360 frame in under 2 ms of one core), visually clean quality, no
#: B-frames (exact timestamps), one thread (frames this small gain nothing from more, and the model has the cores).
_X264 = {"preset": "superfast", "crf": "23", "bf": "0", "threads": "1"}


def sniff_video(head: bytes) -> str | None:
    """The container of a file from its first bytes: "MP4", "MOV", "WebM", or None when it is not a clip we read.

    Args:
        head: the file's first bytes (64 are enough).
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _PICTURE_BRANDS:
            return None
        return "MOV" if brand == b"qt  " else "MP4"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "MOV"
    if head[:4] == _EBML_MAGIC:
        return "WebM"  # WebM is Matroska; the same demuxer reads both
    return None


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says, checked against the limits.

    Attributes:
        container: "MP4", "MOV" or "WebM".
        codec: the video codec's FFmpeg name ("h264").
        width: frame width in pixels, as stored.
        height: frame height in pixels, as stored.
        duration: seconds, as the header says (0.0 when it does not).
        frames: the number of frames, as the header says (0 when it does not).
        rate: the average frame rate, frames per second (0 when unknown).
        time_base: seconds per timestamp tick of the video stream.
    """

    container: str
    codec: str
    width: int
    height: int
    duration: float
    frames: int
    rate: Fraction
    time_base: Fraction

    def size(self, max_side: int | None = None) -> tuple[int, int]:
        """``(width, height)`` of the frames handed over: shrunk to ``max_side``, both even (as H.264 needs)."""
        width, height = self.width, self.height
        if max_side is not None and max(width, height) > max_side:
            scale = max_side / max(width, height)
            width, height = max(2, round(width * scale)), max(2, round(height * scale))
        return max(2, width - width % 2), max(2, height - height % 2)


@dataclass(frozen=True)
class ClipFrame:
    """One decoded frame.

    Attributes:
        image: RGB uint8 ``(height, width, 3)``, at the size asked for.
        index: its position in the clip, from 0.
        pts: its timestamp in ticks of :attr:`ClipInfo.time_base`, from the first frame's (0).
        duration: how long it is shown, in ticks (0 when the stream does not say).
    """

    image: np.ndarray
    index: int
    pts: int
    duration: int

    def time(self, time_base: Fraction) -> float:
        """Its timestamp in seconds."""
        return float(self.pts * time_base)


class Clip:
    """An opened clip whose header passed the limits; frames are decoded one at a time by :meth:`frames`.

    Use :func:`open_clip`; close it (or use it as a context manager) when done.
    """

    def __init__(self, file: BinaryIO, container: av.container.InputContainer, info: ClipInfo) -> None:
        self._file = file
        self._container = container
        self.info = info

    def frames(self, max_side: int | None = None, *, deadline: float | None = None) -> Iterator[ClipFrame]:
        """The clip's frames in display order, each checked against the limits as it is decoded.

        Args:
            max_side: shrink frames whose longer side is longer to this many pixels (see :meth:`ClipInfo.size`).
            deadline: a ``time.monotonic()`` time after which reading stops with an error.

        Raises:
            VideoTooLongError: a frame beyond ``MAX_VIDEO_SECONDS`` or ``MAX_VIDEO_FRAMES``.
            VideoTooLargeError: a frame larger than ``MAX_VIDEO_PIXELS`` (a stream that changes size).
            InvalidVideoError: a damaged stream, no picture at all, or the deadline passed.
        """
        stream = self._container.streams.video[0]
        width, height = self.info.size(max_side)
        tick = self.info.time_base
        first: int | None = None
        index = bad = 0
        try:
            for packet in self._container.demux(stream):
                if deadline is not None and time.monotonic() > deadline:
                    raise InvalidVideoError(_SLOW)
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        raise InvalidVideoError(_DAMAGED) from None
                    continue
                for frame in decoded:
                    if frame.width * frame.height > MAX_VIDEO_PIXELS:
                        raise VideoTooLargeError(_too_large(frame.width, frame.height))
                    if index >= MAX_VIDEO_FRAMES:
                        raise VideoTooLongError(_too_many_frames())
                    pts = frame.pts if frame.pts is not None else _pts_of(index, self.info)
                    first = pts if first is None else first
                    if (pts - first) * tick > MAX_VIDEO_SECONDS:
                        raise VideoTooLongError(_too_long(float((pts - first) * tick)))
                    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
                    yield ClipFrame(rgb, index, pts - first, max(0, int(frame.duration or 0)))
                    index += 1
        except av.error.FFmpegError as exc:  # the demuxer: a broken container
            raise InvalidVideoError(_DAMAGED) from exc
        if index == 0:
            raise InvalidVideoError(_NO_PICTURES)

    def close(self) -> None:
        """Releases the demuxer, the decoder and the file."""
        self._container.close()
        self._file.close()

    def __enter__(self) -> Clip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_clip(source: VideoSource) -> Clip:
    """Opens a clip and checks its header against the limits; nothing is decoded yet.

    Args:
        source: a file path or the file's bytes.

    Returns:
        The opened clip.

    Raises:
        InvalidVideoError: not a clip we read (sniffed from its bytes), a damaged
            container, no video stream, a codec outside ``VIDEO_CODECS``, or frames
            smaller than ``MIN_IMAGE_SIDE``.
        VideoTooLongError: longer than ``MAX_VIDEO_SECONDS`` or more than ``MAX_VIDEO_FRAMES`` frames.
        VideoTooLargeError: frames larger than ``MAX_VIDEO_PIXELS``.
    """
    file = _file(source)
    try:
        container_name = sniff_video(file.read(64))
        file.seek(0)
        if container_name is None:
            raise InvalidVideoError(_NOT_A_VIDEO)
        try:
            container = av.open(file, "r", format=_DEMUXERS[container_name], options=_PROBE, metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise InvalidVideoError(_DAMAGED) from exc
        try:
            info = _checked_info(container, container_name)
        except BaseException:
            container.close()
            raise
    except BaseException:
        file.close()
        raise
    return Clip(file, container, info)


def _file(source: VideoSource) -> BinaryIO:
    if isinstance(source, bytes):
        if not source:
            raise InvalidVideoError("The file is empty. Please choose a video clip.")
        return io.BytesIO(source)
    path = Path(source)
    if not path.is_file():
        raise InvalidVideoError(f"{path} is not a file.")
    if path.stat().st_size == 0:
        raise InvalidVideoError(f"{path.name} is empty. Please choose a video clip.")
    return path.open("rb")


def _checked_info(container: av.container.InputContainer, container_name: str) -> ClipInfo:
    if not container.streams.video:
        raise InvalidVideoError("This file holds no video (only sound, or nothing we can show).")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in VIDEO_CODECS:
        raise InvalidVideoError(
            f"This video is stored as {codec!r}, which we do not read. Please use a clip from a phone or a camera, "
            "or save it as MP4 (H.264)."
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_VIDEO_PIXELS:
        raise VideoTooLargeError(_too_large(width, height))
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InvalidVideoError(
            f"This video is only {width} x {height} pixels. "
            f"Please use one at least {MIN_IMAGE_SIDE} pixels on each side."
        )
    time_base = stream.time_base or Fraction(1, 90_000)
    seconds = [float(stream.duration * time_base)] if stream.duration else []
    if container.duration:
        seconds.append(container.duration / av.time_base)
    duration = max(seconds, default=0.0)
    if duration > MAX_VIDEO_SECONDS:
        raise VideoTooLongError(_too_long(duration))
    frames = int(stream.frames or 0)
    if frames > MAX_VIDEO_FRAMES:
        raise VideoTooLongError(_too_many_frames())
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the model on 2 cores
    return ClipInfo(container_name, codec, width, height, duration, frames, Fraction(rate), Fraction(time_base))


def _pts_of(index: int, info: ClipInfo) -> int:
    """A frame's timestamp from its position, for streams that give none (the average rate, else 30 per second)."""
    rate = info.rate or Fraction(30)
    return round(index / rate / info.time_base)


def _duration_words(seconds: float) -> str:
    if seconds >= 3600:
        hours = seconds / 3600
        return f"{hours:.0f} hours" if hours >= 1.5 else "an hour"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def _too_long(seconds: float) -> str:
    return (
        f"This clip lasts {_duration_words(seconds)}; we explain clips of up to {MAX_VIDEO_SECONDS} seconds. "
        "Please cut it shorter."
    )


def _too_many_frames() -> str:
    return (
        f"This clip has more than {MAX_VIDEO_FRAMES} frames; we explain clips of up to {MAX_VIDEO_SECONDS} seconds "
        f"at up to {MAX_VIDEO_FRAMES // MAX_VIDEO_SECONDS} frames a second. Please cut it shorter."
    )


def _too_large(width: int, height: int) -> str:
    return (
        f"This video's frames are {width} x {height} pixels, more than the "
        f"{MAX_VIDEO_PIXELS / 1_000_000:.1f} megapixels of a 4K clip. Please use a smaller one."
    )


class ClipWriter:
    """Writes RGB frames as H.264 in an MP4 file that browsers play (see the module's docstring).

    Args:
        path: the file to write (its folder must exist).
        width: frame width, even.
        height: frame height, even.
        time_base: seconds per tick of the timestamps given to :meth:`write`.
        rate: the nominal frame rate (frames per second), for players that show it.

    Use as a context manager: the file is finished on a normal exit, and deleted when
    the body raises.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, time_base: Fraction, rate: Fraction):
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"H.264 in yuv420p needs even frame sides, got {width} x {height}.")
        self.path = Path(path)
        self.frames = 0
        self._container = av.open(str(self.path), "w", format="mp4", container_options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=rate if rate > 0 else Fraction(30))
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.time_base = time_base
        self._stream.codec_context.time_base = time_base
        self._stream.codec_context.options = dict(_X264)
        self._time_base = time_base
        self._durations: dict[int, int] = {}

    def write(self, image: np.ndarray, pts: int, duration: int) -> None:
        """Encodes one frame shown from ``pts`` for ``duration`` ticks (both in the writer's time base).

        Raises:
            ValueError: a frame that is not RGB uint8 at the writer's size.
        """
        if image.dtype != np.uint8 or image.shape != (self._stream.height, self._stream.width, 3):
            raise ValueError(
                f"Expected an RGB uint8 frame ({self._stream.height}, {self._stream.width}, 3), "
                f"got {image.dtype} {image.shape}."
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base, frame.duration = pts, self._time_base, duration
        self._durations[pts] = duration
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            # The encoder leaves durations unset; the muxer needs the last frame's to end the clip where it ends.
            packet.duration = self._durations.pop(packet.pts, packet.duration) if packet.pts is not None else 0
            self._container.mux(packet)

    def close(self) -> None:
        """Flushes the encoder and writes the index at the front of the file."""
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
            return
        try:
            self._container.close()
        except av.error.FFmpegError:
            pass  # a half-written file is deleted anyway
        self.path.unlink(missing_ok=True)
