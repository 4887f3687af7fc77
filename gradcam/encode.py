"""PNG and JPEG encoding of RGB pictures: bytes for pages and reports, files for folders.

The one place the package encodes a picture. Pictures are RGB uint8
``(height, width, 3)``; OpenCV, which encodes them, speaks BGR, so the
channels are swapped here, once.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

#: JPEG quality of the light copies shown on a page.
JPEG_QUALITY = 88
# Fast PNGs: light, Huffman-only compression (lossless; zlib's slower levels save little on photos).
_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
# Compact PNGs: OpenCV's default compression, for small pictures kept inside a file.
_COMPACT_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an RGB uint8 image (height, width, 3), got {image.dtype} {image.shape}.")
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _encoded(extension: str, image: np.ndarray, parameters: list[int]) -> bytes:
    ok, encoded = cv2.imencode(extension, _bgr(image), parameters)
    if not ok:
        raise OSError(f"Could not encode a {image.shape[1]} x {image.shape[0]} picture as {extension[1:].upper()}.")
    return encoded.tobytes()


def png(image: np.ndarray, *, compact: bool = False) -> bytes:
    """An RGB uint8 picture as PNG bytes, lossless.

    Args:
        image: RGB uint8 ``(height, width, 3)``.
        compact: compress harder (a smaller file, several times slower): for
            small pictures kept inside a page; the default is fast.

    Raises:
        ValueError: for an array that is not an RGB uint8 picture.
        OSError: when the encoder fails.
    """
    return _encoded(".png", image, _COMPACT_PNG if compact else _FAST_PNG)


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB uint8 picture as JPEG bytes: a light picture to show.

    Raises:
        ValueError: for an array that is not an RGB uint8 picture, or a quality outside 1-100.
        OSError: when the encoder fails.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}.")
    return _encoded(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Writes an RGB uint8 picture as a fast PNG file (see :func:`png`).

    Raises:
        ValueError: for an array that is not an RGB uint8 picture.
        OSError: when the file cannot be written.
    """
    Path(path).write_bytes(png(image))


def write_jpeg(path: str | os.PathLike[str], image: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Writes an RGB uint8 picture as a JPEG file (see :func:`jpeg`).

    Raises:
        ValueError: for an array that is not an RGB uint8 picture.
        OSError: when the file cannot be written.
    """
    Path(path).write_bytes(jpeg(image, quality))
