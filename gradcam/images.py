"""Reading images from untrusted files into RGB arrays.

Every upload goes through :func:`load_image`, the one gate between a stranger's
bytes and the rest of the package. It

* decodes only the formats people upload photos in (``config.IMAGE_FORMATS``:
  JPEG, PNG, GIF, BMP, TIFF, WebP, ICO and HEIC), all in this process: the
  format is sniffed from the content before any decoder runs, so a PostScript
  file named ``cat.jpg`` never reaches Ghostscript and a JPEG 2000, PSD or SVG
  file is refused as "not an image we can read";
* reads only regular files from paths, up to ``MAX_IMAGE_FILE_BYTES``
  (:mod:`gradcam.files`);
* bounds the work per file: the pixel limit is checked on the size read from
  the header (decompression bombs), and before Pillow opens the bytes
  :mod:`gradcam.decode_limits` reads the structure that decides a reader's
  work: a JPEG's scans (each a pass over the whole image: at most
  ``MAX_JPEG_SCANS``), segments and frame type, a PNG's chunks, a GIF's blocks
  and comments, a run-length BMP's size, the pictures inside an icon (Pillow
  decodes an icon as it opens it), a TIFF's strips and tiles, a HEIC grid's
  tiles; only the first frame of an animation or the first page of a TIFF is
  decoded;
* shrinks big photos when asked (``max_side``): a JPEG is decoded at 1/2, 1/4
  or 1/8 scale by the JPEG library itself, so a 48-megapixel phone photo costs
  what a 3-megapixel one does. Only DCT frames are (the frame type is read from
  the header first): a lossless JPEG is decoded at full size within the pixel
  limit, as the library cannot scale it, and the processes it does not decode
  (hierarchical, arithmetic-coded lossless) are refused;
* normalises the rest to an upright RGB uint8 array: EXIF orientation applied,
  transparency composited over white, CMYK, palette, grayscale and 16-bit
  images converted.

Every refusal is a :class:`gradcam.errors.InvalidImageError` whose message is
written for the person who uploaded the file; the library's own reason stays in
the chained exception for the operator.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from gradcam.config import (
    IMAGE_FORMATS,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JPEG_PIXELS,
    MAX_JPEG_SCANS,
    MIN_IMAGE_SIDE,
)
from gradcam.decode_limits import JpegLayout, check_layout
from gradcam.decode_tiles import TIFF_JPEG, tiff_jpeg_scans
from gradcam.errors import (
    FileRefusedError,
    ImageTooComplexError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
)
from gradcam.files import read_regular_file
from gradcam.refusals import DAMAGED, INCOMPLETE, too_large_message

ImageSource = str | os.PathLike[str] | bytes | Image.Image | np.ndarray

#: The formats, as people know them, named in messages.
SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF, WebP or HEIC"

_NOT_AN_IMAGE = f"This file is not an image we can read. Please use a {SUPPORTED} file."
_JPEG_FORMATS = ("JPEG", "MPO")
#: The EXIF orientation tag, and its values that turn the image a quarter (width and height swap).
_ORIENTATION = 0x0112
_SIDEWAYS = frozenset({5, 6, 7, 8})


@functools.cache
def _formats() -> tuple[str, ...]:
    """The allowed formats this installation can decode; registers the HEIF opener on first use.

    MPO (a JPEG with more pictures after the first) has no reader of its own: the
    JPEG reader opens it. So this names what an opened image's format may be, and
    :func:`_open` asks for the readers among them.
    """
    formats = [name for name in IMAGE_FORMATS if name != "HEIF"]
    if "HEIF" in IMAGE_FORMATS:
        try:
            import pillow_heif  # optional, and only its HEIF opener (not AVIF)
        except ImportError:
            pass
        else:
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            formats.append("HEIF")
    return tuple(formats)


def load_image(source: ImageSource, *, max_side: int | None = None) -> np.ndarray:
    """Reads an image into an upright RGB uint8 array ``(height, width, 3)``.

    Args:
        source: a file path, the file's bytes, a PIL image, or a numpy array
            (``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8).
        max_side: if given, an image whose longer side is longer is shrunk to
            this many pixels on that side (aspect ratio kept; sides rounded as
            ``round(side * max_side / longer_side)``, the shorter never below
            ``MIN_IMAGE_SIDE``). A JPEG is then decoded
            at a reduced scale, which also admits JPEGs of up to
            ``MAX_JPEG_PIXELS`` pixels. Without it, nothing is resized and
            every image must fit ``MAX_IMAGE_PIXELS``.

    Returns:
        A new RGB uint8 array.

    Raises:
        InvalidImageError: empty, unreadable, damaged or truncated input, or a
            format outside ``config.IMAGE_FORMATS``.
        ImageTooLargeError: more pixels than the limit (decompression bombs).
        ImageTooComplexError: a file that would take far longer to decode than
            any real photo (a JPEG of more than ``MAX_JPEG_SCANS`` scans).
        ImageTooSmallError: a side shorter than ``MIN_IMAGE_SIDE`` pixels (in
            the image as stored, before any shrinking).
        ValueError: ``max_side`` is not a positive integer.
    """
    if max_side is not None and (not isinstance(max_side, int) or isinstance(max_side, bool) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
    elif isinstance(source, Image.Image):
        if source.format is not None and source.format not in _formats():
            raise InvalidImageError(_NOT_AN_IMAGE)  # opened from a file by the caller: the same allow-list
        rgb = _decode(source, b"", max_side, None)
    else:
        data = _read(source)
        image, jpeg = _open(data)
        try:
            rgb = _decode(image, data, max_side, jpeg)
        finally:
            image.close()  # multi-frame files and early errors would otherwise keep their buffers
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"This image is only {width} x {height} pixels. "
            f"Please use one at least {MIN_IMAGE_SIDE} pixels on each side."
        )
    if max_side is not None:
        rgb = _shrink(rgb, max_side)
    return np.ascontiguousarray(rgb)


def image_size(source: str | os.PathLike[str] | bytes) -> tuple[int, int]:
    """An image's upright ``(height, width)`` read from its header, without decoding its pixels.

    The file passes the same gate as in :func:`load_image` (a regular file under
    the size cap, an allowed format sniffed from the content, the layout of icons
    and TIFFs checked before Pillow opens them), so a dataset's files are never
    opened by any other reader, not even to plan the work.

    Raises:
        InvalidImageError: the file cannot be read or opened as an allowed image.
    """
    image, _ = _open(_read(source))
    try:
        width, height = image.size
        try:
            orientation = image.getexif().get(_ORIENTATION)
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
            orientation = None  # unreadable EXIF: decoded as stored
    finally:
        image.close()
    return (width, height) if orientation in _SIDEWAYS else (height, width)


def _read(source: str | os.PathLike[str] | bytes) -> bytes:
    """The file's bytes, refusing an empty file, a path that is not a regular file, or one over the size cap.

    A path is read only if it names a regular file (symbolic links followed) of at
    most ``MAX_IMAGE_FILE_BYTES``, checked before reading: a FIFO would wait
    forever, ``/dev/zero`` would be read until memory runs out, and a 1.5 GB file
    held 2.5 GB before it could be found not to be an image.
    """
    if isinstance(source, bytes):
        if not source:
            raise InvalidImageError("The file is empty. Please choose an image file.")
        return source
    path = Path(source)
    try:
        data = read_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidImageError(f"{path} is not a file.") from exc
    except FileRefusedError as exc:
        if path.is_dir():
            raise InvalidImageError(f"{path} is not a file.") from exc
        raise InvalidImageError(str(exc)) from exc
    except OSError as exc:  # no permission, a loop of links, a socket's path
        raise InvalidImageError(f"{path.name} cannot be read ({exc.strerror or exc}).") from exc
    if not data:
        raise InvalidImageError(f"{path.name} is empty. Please choose an image file.")
    return data


def _open(data: bytes) -> tuple[ImageFile.ImageFile, JpegLayout | None]:
    """Opens the file with the allowed formats' readers only: nothing else sees its bytes.

    The structure that decides a reader's work is checked first, from the bytes
    (:func:`gradcam.decode_limits.check_layout`): some readers do much as they open.

    Returns:
        The opened image, and a JPEG's layout (None for other formats).
    """
    allowed = _formats()
    jpeg = check_layout(data, allowed)
    try:
        # Pillow only warns between its own limit and twice that; our smaller
        # limit is checked on the size read from the header, before decoding.
        image = Image.open(io.BytesIO(data), formats=[name for name in allowed if name != "MPO"])
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(too_large_message()) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(_NOT_AN_IMAGE) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:  # the reason stays chained
        raise InvalidImageError(DAMAGED) from exc
    if image.format not in allowed:  # a reader that hands over to another format's (never seen, but cheap)
        image.close()
        raise InvalidImageError(_NOT_AN_IMAGE)
    return image, jpeg if image.format in _JPEG_FORMATS else None


def _fitted(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` shrunk so that the longer side is at most ``max_side``.

    The shorter side stays at least ``MIN_IMAGE_SIDE`` (a photo accepted as it is stays accepted
    once shrunk: a 4000 x 16 banner becomes 1280 x 8, a little stretched, not a refused 1280 x 5).
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    least = min(width, height, MIN_IMAGE_SIDE)
    return max(least, round(width * scale)), max(least, round(height * scale))


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = _fitted(width, height, max_side)
    if size == (width, height):
        return rgb
    # reducing_gap: a fast box reduction by an integer factor first, then Lanczos for the rest.
    return np.array(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


# --- bounded decoding -------------------------------------------------------------------------


def _check_work(image: Image.Image, data: bytes, max_side: int | None, jpeg: JpegLayout | None) -> bool:
    """Refuses, before decoding, what would take too long or too much memory to decode.

    Args:
        image: the opened image, on its first frame.
        data: the file's bytes (empty for a caller's image).
        max_side: the caller's ``max_side``.
        jpeg: a JPEG's layout, read from our own bytes (None for other formats and a caller's image).

    Returns:
        Whether the image may be decoded at a reduced scale: a JPEG of a frame type the JPEG library scales.

    Raises:
        ImageTooLargeError: too many pixels in the image.
        ImageTooComplexError: too many scans in a TIFF's JPEG strips.
    """
    width, height = image.size
    if jpeg is not None:
        # A reduced-scale decode holds few pixels, but a progressive file keeps every coefficient of the
        # full image in memory, and a lossless one is decoded at full size: only the others may exceed the limit.
        beyond = max_side is not None and jpeg.scalable and not jpeg.progressive
        if width * height > (MAX_JPEG_PIXELS if beyond else MAX_IMAGE_PIXELS):
            raise ImageTooLargeError(too_large_message(width, height, MAX_JPEG_PIXELS if beyond else MAX_IMAGE_PIXELS))
        return jpeg.scalable
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(too_large_message(width, height))
    if image.format == "TIFF" and data and image.info.get("compression") in TIFF_JPEG:
        scans, blocks = tiff_jpeg_scans(image, data)
        if scans > MAX_JPEG_SCANS * blocks:
            raise ImageTooComplexError(
                "This TIFF image is stored in far more passes than scanners and photo editors write, and would take "
                "too long to read. Please save it again as an ordinary TIFF, JPEG or PNG."
            )
    return False


def _decode(image: Image.Image, data: bytes, max_side: int | None, jpeg: JpegLayout | None) -> np.ndarray:
    """Decodes the first frame of an opened image into RGB, within the limits."""
    try:
        image.seek(0)  # first frame of an animation, first page of a TIFF
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(INCOMPLETE) from exc
    scalable = _check_work(image, data, max_side, jpeg)
    width, height = image.size
    target = _fitted(width, height, max_side)
    if scalable and target != (width, height):
        image.draft(None, target)  # DCT scaling: 1/2, 1/4 or 1/8, never below the target
        if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:  # a max_side too large to bring it under the limit
            raise ImageTooLargeError(too_large_message(width, height))
    try:
        image.load()  # a truncated file raises here
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error) as exc:
        raise InvalidImageError(INCOMPLETE) from exc
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        pass  # unreadable EXIF: keep the image as stored
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        # Integer arithmetic: a 40-megapixel 16-bit image stays fast and small in memory.
        wide = np.asarray(image).astype(np.uint32)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("I", "F"):
        # One float32 copy, scaled in place: float64 temporaries held 1.2 GB for a 40-megapixel float TIFF.
        values = np.array(image, dtype=np.float32)  # (H, W)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        np.nan_to_num(values, copy=False)
        values *= np.float32(255.0 / peak)
        values += np.float32(0.5)
        np.clip(values, 0, 255, out=values)
        return np.repeat(values.astype(np.uint8)[:, :, None], 3, axis=2)
    # "transparency" also marks a colour key: a tRNS chunk in an L or RGB PNG, a GIF's transparent index.
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        # Pasted over white through its own alpha: no RGBA copies of the whole image beside it.
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, (0, 0), rgba)
        return np.array(white)  # a copy: asarray would be read-only
    return np.array(image.convert("RGB"))


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise InvalidImageError(f"Expected a uint8 image array, got {array.dtype}.")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"Expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}."
        )
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(too_large_message(array.shape[1], array.shape[0]))
    if array.shape[2] == 4:
        return _to_rgb(Image.fromarray(array, "RGBA"))
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return array.copy()
