"""Reading images from untrusted files into RGB arrays.

Every upload goes through :func:`load_image`: it refuses what is not an image,
is empty, damaged, too large in pixels (decompression bombs) or too small, and
normalises the rest to an upright RGB uint8 array: EXIF orientation applied,
transparency composited over white, CMYK, palette, grayscale and 16-bit images
converted, the first frame of an animation or a multi-page file taken.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gradcam.config import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from gradcam.errors import ImageTooLargeError, ImageTooSmallError, InvalidImageError

ImageSource = str | os.PathLike[str] | bytes | Image.Image | np.ndarray

SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF or WebP"


def _open(source: str | os.PathLike[str] | bytes) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise InvalidImageError("The file is empty. Please choose an image file.")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        if not stream.is_file():
            raise InvalidImageError(f"{stream} is not a file.")
        if stream.stat().st_size == 0:
            raise InvalidImageError(f"{stream.name} is empty. Please choose an image file.")
    try:
        # Pillow only warns between its own limit and twice that; our smaller
        # limit is checked on the size read from the header, before decoding.
        return Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_too_large_message()) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"This file is not an image we can read. Please use a {SUPPORTED} file.") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # the library's reason stays in the chained exception
        raise InvalidImageError("This image file is damaged and cannot be read.") from exc


def _too_large_message(width: int | None = None, height: int | None = None) -> str:
    size = f" is {width} x {height} pixels, which" if width and height else ""
    return f"This image{size} is larger than the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit. Please use a smaller image."


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.nan_to_num(values) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # "transparency" also marks a colour key: a tRNS chunk in an L or RGB PNG, a GIF's transparent index.
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))  # a copy: asarray would be read-only
    return np.array(image.convert("RGB"))


def load_image(source: ImageSource) -> np.ndarray:
    """Reads an image into an upright RGB uint8 array ``(height, width, 3)``.

    Args:
        source: a file path, the file's bytes, a PIL image, or a numpy array
            (``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8).

    Returns:
        A new RGB uint8 array.

    Raises:
        InvalidImageError: empty, unreadable, damaged or truncated input.
        ImageTooLargeError: more than ``MAX_IMAGE_PIXELS`` pixels.
        ImageTooSmallError: a side shorter than ``MIN_IMAGE_SIDE`` pixels.
    """
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
    else:
        opened = source if isinstance(source, Image.Image) else _open(source)
        try:
            rgb = _decode(opened)
        finally:
            if opened is not source:
                opened.close()  # multi-frame files and early errors would otherwise leave the file open
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"This image is only {width} x {height} pixels. Please use one at least {MIN_IMAGE_SIDE} pixels on each side."
        )
    return np.ascontiguousarray(rgb)


def _decode(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(_too_large_message(width, height))
    try:
        image.seek(0)  # first frame of an animation, first page of a TIFF
        image.load()  # a truncated file raises here
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise InvalidImageError("This image file is damaged or incomplete and cannot be read.") from exc
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        pass  # unreadable EXIF: keep the image as stored
    return _to_rgb(image)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise InvalidImageError(f"Expected a uint8 image array, got {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidImageError(f"Expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}.")
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(_too_large_message(array.shape[1], array.shape[0]))
    if array.shape[2] == 4:
        return _to_rgb(Image.fromarray(array, "RGBA"))
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return array.copy()
