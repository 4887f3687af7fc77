"""The sentences a file refused before decoding is answered with.

Shared by the structure checks (:mod:`gradcam.decode_limits`, :mod:`gradcam.decode_tiles`) and the gate
that opens files (:mod:`gradcam.images`).
"""

from __future__ import annotations

from gradcam.config import MAX_IMAGE_PIXELS
from gradcam.errors import ImageTooComplexError, ImageTooLargeError

DAMAGED = "This image file is damaged and cannot be read."
INCOMPLETE = "This image file is damaged or incomplete and cannot be read."
TOO_LONG = "and would take too long to read"


def too_large_message(width: int | None = None, height: int | None = None, limit: int = MAX_IMAGE_PIXELS) -> str:
    """The refusal of an image over a pixel limit, with its size when known."""
    size = f" is {width} x {height} pixels, which" if width and height else ""
    return f"This image{size} is larger than the {limit // 1_000_000} megapixel limit. Please use a smaller image."


def megapixels(pixels: int) -> str:
    """Millions of pixels as people read them: "40.9", "3,221"."""
    return f"{pixels / 1e6:,.1f}" if pixels < 100_000_000 else f"{pixels / 1e6:,.0f}"


def over_limit(kind: str, pixels: int, what: str, advice: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"This {kind} image is stored in {what} that add up to {megapixels(pixels)} megapixels, more than the "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixel limit, {TOO_LONG}. Please save it again as {advice}."
    )


def too_many_pieces(kind: str, advice: str) -> ImageTooComplexError:
    return ImageTooComplexError(
        f"This {kind} file is made of far more pieces than cameras and image editors write, {TOO_LONG}. "
        f"Please save it again as {advice}."
    )
