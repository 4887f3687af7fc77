"""Clips the tests make: a cat walking across the frame, and hostile files, all written with PyAV in code."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "demo" / "examples"
#: The cat's size on the frame of :func:`walking_cat` (width, height).
CAT = (240, 160)


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = 10,
    codec: str = "libx264",
    container: str = "mp4",
    pix_fmt: str = "yuv420p",
    time_base: Fraction | None = None,
    pts: list[int] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """RGB frames as a clip, the way a camera or an editor writes one."""
    out = av.open(str(path), "w", format=container, container_options=container_options)
    stream = out.add_stream(codec, rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = pix_fmt
    if options:
        stream.codec_context.options = options
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts[i] if pts is not None else i
        if time_base is not None:
            frame.time_base = time_base
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def cat_picture() -> np.ndarray:
    """The cat of ``chelsea.png`` at :data:`CAT`'s size."""
    cat = np.array(Image.open(EXAMPLES / "chelsea.png").convert("RGB"))
    return cv2.resize(cat, CAT, interpolation=cv2.INTER_AREA)


def walking_cat(frames: int = 20, size: tuple[int, int] = (640, 360)) -> tuple[list[np.ndarray], list[tuple]]:
    """Frames in which the cat of ``chelsea.png`` crosses a plain grey frame, and its box on each."""
    width, height = size
    cat = cat_picture()
    cat_w, cat_h = CAT
    background = np.full((height, width, 3), 196, np.uint8)
    pictures, boxes = [], []
    for i in range(frames):
        x = round(i * (width - cat_w) / max(1, frames - 1))
        y = (height - cat_h) // 2 + round(20 * np.sin(i / 3))
        picture = background.copy()
        picture[y : y + cat_h, x : x + cat_w] = cat
        pictures.append(picture)
        boxes.append((x, y, x + cat_w - 1, y + cat_h - 1))
    return pictures, boxes


def grey_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """``count`` frames of a small moving gradient (cheap to encode)."""
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    return [np.broadcast_to((ramp + 9 * i) % 256, (height, width, 3)).astype(np.uint8) for i in range(count)]


def ten_hours_of_one_frame(path: Path) -> Path:
    """One frame shown for ten hours: a tiny file whose clip is 36,000 seconds long."""
    frames = grey_frames(2)
    return write_clip(path, frames, fps=1, time_base=Fraction(1, 1), pts=[0, 36_000])


def timestamps_beyond_the_header(path: Path) -> Path:
    """A WebM whose frames carry timestamps past 30 s while its header names no duration (written as a live stream)."""
    out = av.open(str(path), "w", format="webm", container_options={"live": "1"})
    stream = out.add_stream("libvpx-vp9", rate=1)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
    for i, rgb in enumerate(grey_frames(3)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = i * 40, Fraction(1, 1)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def huge_frame(path: Path) -> Path:
    """One frame of 4,100 x 2,200 pixels (9 megapixels, more than 4K)."""
    return write_clip(path, [np.zeros((2200, 4100, 3), np.uint8)], options={"preset": "ultrafast"})


def corrupted(path: Path) -> Path:
    """A clip whose container is whole (its index first) and whose every coded picture is noise."""
    source = write_clip(path, grey_frames(20), container_options={"movflags": "+faststart"})
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 8
    noise = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    data[start:] = noise
    path.write_bytes(bytes(data))
    return path


def truncated(path: Path, source: Path) -> Path:
    """The first half of a real clip (its index at the end is lost)."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
