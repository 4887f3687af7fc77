"""Decode time of the worst uploads we can build within the limits (10 MB upload, the pixel limit).

Each file is made in code, checked to be under the upload limit, then read with
:func:`gradcam.load_image` (as the app does, ``max_side=1280``) a few times; the
table prints the best time, the file's size and what became of it. The many-scan
JPEG is built by the tests' hostile corpus (``tests.hostile``), so both use one
recipe. Run on an idle machine: ``python benchmarks/bench_decode.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradcam import GradCAMError, load_image
from gradcam.config import MAX_IMAGE_PIXELS, MAX_JPEG_SCANS
from tests.hostile import many_scan_jpeg

UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_SIDE = 1280
#: 40 megapixels, 4:3.
SIZE = (7300, 5475)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int], cell: int = 16) -> Image.Image:
    """Blocky noise: detail everywhere, yet it compresses to a few MB at 40 megapixels."""
    small = np.random.default_rng(0).integers(0, 256, (size[1] // cell + 1, size[0] // cell + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((small.shape[1] * cell, small.shape[0] * cell), Image.Resampling.NEAREST).crop(
        (0, 0, *size)
    )


def _at_scan_limit(size: tuple[int, int]) -> bytes:
    base = many_scan_jpeg(size, 0)
    return many_scan_jpeg(size, MAX_JPEG_SCANS - base.count(b"\xff\xda"))


def _many_frames(size: tuple[int, int], frames: int) -> bytes:
    """A GIF whose second frame is repeated: Pillow's writer would merge identical frames."""
    red, blue = Image.new("RGB", size, (255, 0, 0)), Image.new("RGB", size, (0, 0, 255))
    two = _save(red, "GIF", save_all=True, append_images=[blue])
    second = two.rfind(b"\x21\xf9")  # the second frame's control extension, up to the trailer
    return two[:-1] + two[second:-1] * (frames - 1) + b";"


def files() -> dict[str, Callable[[], bytes]]:
    """Name -> builder of each upload."""
    flat = Image.new("RGB", SIZE, (90, 140, 200))
    return {
        "JPEG 40 MP, progressive, at the scan limit": lambda: _at_scan_limit(SIZE),
        "JPEG 40 MP, progressive, scan limit + 1": lambda: many_scan_jpeg(SIZE, MAX_JPEG_SCANS),
        "JPEG 40 MP, progressive, detailed": lambda: _save(_noise(SIZE), "JPEG", progressive=True, quality=60),
        "JPEG 99 MP, sequential (shrunk 1/8)": lambda: _save(Image.new("RGB", (11_500, 8_600), (90, 140, 200)), "JPEG"),
        "PNG 40 MP, RGBA 16-bit, flat": lambda: _save(Image.new("RGBA", SIZE, (10, 20, 30, 128)), "PNG"),
        "PNG 40 MP, 16-bit gray, flat": lambda: _save(Image.fromarray(np.full(SIZE[::-1], 300, np.uint16)), "PNG"),
        "PNG 40 MP, 1-bit, interlaced": lambda: _save(flat.convert("1"), "PNG", interlace=True),
        "GIF 40 MP, first of 2 frames": lambda: _save(
            flat.convert("P"), "GIF", save_all=True, append_images=[flat.convert("P")]
        ),
        "GIF 8 x 8, 100000 frames": lambda: _many_frames((8, 8), 100_000),
        "TIFF 40 MP, one row per strip": lambda: _save(
            flat, "TIFF", tiffinfo={278: 1}, compression="tiff_adobe_deflate"
        ),
        "TIFF 40 MP, JPEG strips": lambda: _save(flat, "TIFF", compression="jpeg"),
        "WebP 16383 x 2440, lossless": lambda: _save(
            Image.new("RGB", (16_383, 2_440), (90, 140, 200)), "WEBP", lossless=True
        ),
        "BMP 40 MP, 8-bit RLE": lambda: _save(flat.convert("P"), "BMP"),
        "HEIC 40 MP, flat": lambda: _save(flat, "HEIF"),
    }


def main() -> None:
    """Builds each file, times its reading and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="reads per file; the best is shown")
    args = parser.parse_args()
    print(
        f"limits: {MAX_IMAGE_PIXELS / 1e6:.0f} MP, {MAX_JPEG_SCANS} JPEG scans, {UPLOAD_LIMIT >> 20} MB; "
        f"max_side={MAX_SIDE}"
    )
    print(f"{'file':<44} {'bytes':>10} {'seconds':>8}  result")
    for name, build in files().items():
        try:
            data = build()
        except (OSError, KeyError, ValueError) as exc:  # a writer missing in this installation
            print(f"{name:<44} {'-':>10} {'-':>8}  not built: {exc}")
            continue
        if len(data) > UPLOAD_LIMIT:
            print(f"{name:<44} {len(data):>10} {'-':>8}  over the upload limit")
            continue
        best, result = float("inf"), ""
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                result = "x".join(map(str, load_image(data, max_side=MAX_SIDE).shape[1::-1]))
            except GradCAMError as exc:
                result = f"refused: {type(exc).__name__}"
            best = min(best, time.perf_counter() - start)
        print(f"{name:<44} {len(data):>10} {best:>8.3f}  {result}")


if __name__ == "__main__":
    main()
