"""Reading images from untrusted files into RGB arrays.

Every upload goes through :func:`load_image`, the one gate between a stranger's
bytes and the rest of the package. It

* decodes only the formats people upload photos in (``config.IMAGE_FORMATS``:
  JPEG, PNG, GIF, BMP, TIFF, WebP, ICO and HEIC), all in this process: the
  format is sniffed from the content before any decoder runs, so a PostScript
  file named ``cat.jpg`` never reaches Ghostscript and a JPEG 2000, PSD or SVG
  file is refused as "not an image we can read";
* bounds the work per file: the pixel limit is checked on the size read from
  the header (decompression bombs), a JPEG may hold at most
  ``MAX_JPEG_SCANS`` scans (each scan is a pass over the whole image, so a
  100 kB file of thousands of scans would otherwise decode for minutes), the
  pictures inside an icon obey the pixel limit (checked before opening it:
  Pillow decodes an icon as it opens it), a TIFF's strips and tiles must hold
  no more than the pixel limit either (tiles are decoded whole, and Pillow lays
  out every strip listed as it opens the file: read from the tags before it
  does), and only the first frame of an animation or the first page of a TIFF
  is decoded;
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
import re
import struct
from dataclasses import dataclass
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
from gradcam.errors import (
    FileRefusedError,
    ImageTooComplexError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
)
from gradcam.files import read_regular_file

ImageSource = str | os.PathLike[str] | bytes | Image.Image | np.ndarray

#: The formats, as people know them, named in messages.
SUPPORTED = "JPEG, PNG, GIF, BMP, TIFF, WebP or HEIC"

_NOT_AN_IMAGE = f"This file is not an image we can read. Please use a {SUPPORTED} file."
_DAMAGED = "This image file is damaged and cannot be read."
_INCOMPLETE = "This image file is damaged or incomplete and cannot be read."

_JPEG_FORMATS = ("JPEG", "MPO")
#: A marker in a JPEG's entropy-coded data: 0xFF followed by neither a stuffed zero, a restart
#: marker (0xD0-0xD7) nor a fill byte (0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
#: Start-of-frame markers (0xC0-0xCF but DHT, JPG and DAC), and those of progressive frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
#: DCT frames that libjpeg-turbo decodes at a reduced scale: sequential and progressive, Huffman
#: (SOF0-SOF2) or arithmetic coded (SOF9, SOF10); the scaling is in the inverse DCT, after either coding.
_JPEG_SCALABLE = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
#: Lossless frames (SOF3): decoded at full size only. libjpeg-turbo (3.0 and later) decodes them but
#: ignores a requested scale, and Pillow's reduced-scale decoding then writes full rows into a buffer
#: sized for the reduced ones (a heap overflow: a 65-byte file killed the process).
_JPEG_LOSSLESS = 0xC3
_UNUSUAL_JPEG = (
    "This JPEG is stored in a way that cameras and photo editors do not use (hierarchical or arithmetic-coded "
    "lossless), and cannot be read. Please save it again as an ordinary JPEG or as a PNG."
)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: The EXIF orientation tag, and its values that turn the image a quarter (width and height swap).
_ORIENTATION = 0x0112
_SIDEWAYS = frozenset({5, 6, 7, 8})
_ICO_MAGIC = b"\x00\x00\x01\x00"
#: The headers Pillow's TIFF reader accepts (classic and BigTIFF, and two with the version's bytes swapped).
_TIFF_MAGIC = (b"II\x2a\x00", b"MM\x00\x2a", b"II\x00\x2a", b"MM\x2a\x00", b"II\x2b\x00", b"MM\x00\x2b")
#: TIFF compression names (Pillow's) whose strips or tiles are JPEG streams.
_TIFF_JPEG = ("jpeg", "tiff_jpeg")
_TIFF_STRIPS = (273, 279)  # StripOffsets, StripByteCounts
_TIFF_TILES = (324, 325)  # TileOffsets, TileByteCounts
_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_BITS, _TIFF_COMPRESSION = 256, 257, 258, 259
_TIFF_SAMPLES, _TIFF_ROWS_PER_STRIP, _TIFF_PLANAR, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 277, 278, 284, 322, 323
#: The tags that say how much a TIFF decoder does: a second entry of one of them is refused
#: (libtiff keeps the first, Pillow the last, so the checks would read other numbers than the decoder).
_TIFF_LAYOUT = frozenset(
    {_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_BITS, _TIFF_COMPRESSION, _TIFF_SAMPLES, _TIFF_ROWS_PER_STRIP, _TIFF_PLANAR}
    | {_TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH, *_TIFF_STRIPS, *_TIFF_TILES}
)
#: TIFF integer field types (BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG, LONG8, SLONG8) and their struct formats:
#: those libtiff reads a size from.
_TIFF_INTEGERS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}
#: The most bytes one stored byte decodes to, by TIFF compression, where that is bounded: none; PackBits (a
#: 2-byte run, 128 bytes); LZW (a code of at least 9 bits stands for at most 4096 bytes); deflate (1032:1).
_TIFF_EXPANSION = {1: 1.0, 32773: 64.0, 5: 4096 * 8 / 9, 8: 1032.0, 32946: 1032.0}


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
            ``round(side * max_side / longer_side)``). A JPEG is then decoded
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
        rgb = _decode(source, b"", max_side)
    else:
        data = _read(source)
        image = _open(data)
        try:
            rgb = _decode(image, data, max_side)
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
    image = _open(_read(source))
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


def _open(data: bytes) -> ImageFile.ImageFile:
    """Opens the file with the allowed formats' readers only: nothing else sees its bytes."""
    allowed = _formats()
    if data[:4] == _ICO_MAGIC and "ICO" in allowed:  # Pillow decodes an icon's picture as it opens the file
        for width, height in _ico_frame_sizes(data):
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageTooLargeError(_too_large_message(width, height))
    if data[:4] in _TIFF_MAGIC and "TIFF" in allowed:  # Pillow lays out every strip listed as it opens the file
        _check_tiff_blocks(data)
    try:
        # Pillow only warns between its own limit and twice that; our smaller
        # limit is checked on the size read from the header, before decoding.
        image = Image.open(io.BytesIO(data), formats=[name for name in allowed if name != "MPO"])
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_too_large_message()) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(_NOT_AN_IMAGE) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:  # the reason stays chained
        raise InvalidImageError(_DAMAGED) from exc
    if image.format not in allowed:  # a reader that hands over to another format's (never seen, but cheap)
        image.close()
        raise InvalidImageError(_NOT_AN_IMAGE)
    return image


def _too_large_message(width: int | None = None, height: int | None = None, limit: int = MAX_IMAGE_PIXELS) -> str:
    size = f" is {width} x {height} pixels, which" if width and height else ""
    return f"This image{size} is larger than the {limit // 1_000_000} megapixel limit. Please use a smaller image."


def _megapixels(pixels: int) -> str:
    """Millions of pixels as people read them: "40.9", "3,221"."""
    return f"{pixels / 1e6:,.1f}" if pixels < 100_000_000 else f"{pixels / 1e6:,.0f}"


def _fitted(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` shrunk so that the longer side is at most ``max_side``."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = _fitted(width, height, max_side)
    if size == (width, height):
        return rgb
    # reducing_gap: a fast box reduction by an integer factor first, then Lanczos for the rest.
    return np.array(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


# --- bounded decoding -------------------------------------------------------------------------


@dataclass(frozen=True)
class _JpegLayout:
    """What walking a JPEG's segments tells before any decoder runs.

    Attributes:
        scans: start-of-scan segments, counted up to ``MAX_JPEG_SCANS + 1``.
        frames: the start-of-frame markers met (one in a well-formed file).
    """

    scans: int
    frames: frozenset[int]

    @property
    def progressive(self) -> bool:
        """Whether the frame is progressive (every coefficient of the image is held while decoding)."""
        return bool(self.frames & _JPEG_PROGRESSIVE)

    @property
    def scalable(self) -> bool:
        """Whether the JPEG library can decode it at a reduced scale (a DCT frame of a process it scales)."""
        return bool(self.frames) and self.frames <= _JPEG_SCALABLE

    @property
    def decodable(self) -> bool:
        """Whether the JPEG library decodes its process at all (not hierarchical, not arithmetic lossless)."""
        return self.frames <= _JPEG_SCALABLE | {_JPEG_LOSSLESS}


def _jpeg_layout(data: bytes) -> _JpegLayout:
    """Counts the scans of the JPEG at the start of ``data`` and reads its frame type, walking its segments.

    Stops at the end of the image (EOI) or of the data, and once the count is
    over ``MAX_JPEG_SCANS``: a scan's entropy-coded data runs up to the next
    marker, which is what the JPEG library reads too. Segments are skipped by
    their lengths, so a thumbnail inside EXIF data is not mistaken for the image.
    """
    position, scans, frames, end = 2, 0, set(), len(data)  # after the SOI marker
    while position + 1 < end and scans <= MAX_JPEG_SCANS:
        if data[position] != 0xFF or data[position + 1] in (0xFF, 0x00) or 0xD0 <= data[position + 1] <= 0xD7:
            position += 1  # fill bytes, stray bytes and restart markers between segments
            continue
        marker = data[position + 1]
        if marker == _JPEG_EOI or position + 4 > end:
            break
        if marker == 0x01:  # TEM: no length
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _JPEG_SOF:
            frames.add(marker)
        position += 2 + length
        if marker == _JPEG_SOS:
            scans += 1
            found = _JPEG_MARKER.search(data, position)
            if found is None:
                break
            position = found.start()
    return _JpegLayout(scans, frozenset(frames))


def _tiff_jpeg_scans(image: Image.Image, data: bytes) -> tuple[int, int]:
    """Scans inside the JPEG-compressed strips or tiles of a TIFF's first page, and how many blocks hold them."""
    tags = getattr(image, "tag_v2", {})
    for offsets_tag, counts_tag in (_TIFF_TILES, _TIFF_STRIPS):
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets is not None and counts is not None:
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            scans = sum(data.count(b"\xff\xda", offset, offset + count) for offset, count in zip(offsets, counts))
            return scans, len(offsets)
    return 0, 1


class _TiffDirectory:
    """A TIFF's first image directory (IFD) as libtiff reads it, parsed from the bytes before Pillow opens them.

    Pillow builds one tile per listed strip as it opens a file, and libtiff, which
    decodes compressed files, reads the directory again on its own: so the layout
    is read here, from the bytes, and a tag that would read differently to the
    two (written twice: libtiff keeps the first entry, Pillow the last) is refused.

    Raises:
        InvalidImageError: the directory cannot be read, or a layout tag comes twice.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.order: str = "<" if data[:2] == b"II" else ">"
        if data[:4] == b"MM\x00\x2b":  # big-endian BigTIFF: Pillow reads it as a classic TIFF, libtiff does not
            raise InvalidImageError(_DAMAGED)
        self.big = data[:4] == b"II\x2b\x00"  # 8-byte counts and offsets
        try:
            if self.big:
                (offset,) = struct.unpack_from("<Q", data, 8)
                (count,) = struct.unpack_from("<Q", data, offset)
                start, size, layout = offset + 8, 20, "HHQ8s"
            else:
                (offset,) = struct.unpack_from(self.order + "I", data, 4)
                (count,) = struct.unpack_from(self.order + "H", data, offset)
                start, size, layout = offset + 2, 12, "HHI4s"
        except struct.error as exc:
            raise InvalidImageError(_DAMAGED) from exc
        #: tag -> (field type, value count, the value field: the values, or where they are).
        self.entries: dict[int, tuple[int, int, bytes]] = {}
        for index in range(min(count, max(0, len(data) - start) // size)):
            tag, kind, values, field = struct.unpack_from(self.order + layout, data, start + index * size)
            if tag in self.entries:
                if tag in _TIFF_LAYOUT:
                    raise InvalidImageError(_DAMAGED)
                continue  # libtiff ignores the later ones
            self.entries[tag] = (kind, values, field)

    def count(self, tag: int) -> int:
        """How many values the tag has (0 when absent)."""
        return self.entries[tag][1] if tag in self.entries else 0

    def values(self, tag: int) -> np.ndarray | None:
        """The integer values of a tag, or None when it is absent, not integers or not all in the file."""
        if tag not in self.entries or self.entries[tag][0] not in _TIFF_INTEGERS:
            return None
        kind, count, field = self.entries[tag]
        dtype = np.dtype(self.order + _TIFF_INTEGERS[kind])
        if count * dtype.itemsize <= len(field):
            return np.frombuffer(field, dtype, count)
        (offset,) = struct.unpack(self.order + ("Q" if self.big else "I"), field)
        if offset + count * dtype.itemsize > len(self.data):
            return None
        return np.frombuffer(self.data, dtype, count, offset)

    def number(self, tag: int, default: int | None = None) -> int:
        """The tag's one positive integer (``default`` when absent and a default is given).

        Raises:
            InvalidImageError: absent without a default, not one integer, or not positive.
        """
        if tag not in self.entries and default is not None:
            return default
        values = self.values(tag)
        if values is None or len(values) != 1 or values[0] < 1:
            raise InvalidImageError(_DAMAGED)
        return int(values[0])


def _check_tiff_blocks(data: bytes) -> None:
    """Refuses, before Pillow opens it, a TIFF whose strips or tiles would decode to far more than the pixel limit.

    A TIFF's first page is decoded strip by strip or tile by tile; libtiff
    decodes every tile whole, however little of it lies inside the image (a
    1.6-megapixel image in 12 tiles of 16384 x 16384 pixels is 3.2 gigapixels
    of decoding), and Pillow's reader of uncompressed files decodes every strip
    listed, beyond those the image needs (and builds them all as it opens the
    file: two million strips of a 64 x 8 image held it for 8 s). So the pixels
    of all the tiles or strips must fit the pixel limit, and no strip or tile may
    claim more pixels than its stored bytes could decode to with its compression.

    Raises:
        InvalidImageError: unreadable layout tags, or a block too short for its pixels.
        ImageTooLargeError: the tiles or strips hold more pixels than the limit.
    """
    directory = _TiffDirectory(data)
    width, height = directory.number(_TIFF_WIDTH), directory.number(_TIFF_LENGTH)
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(_too_large_message(width, height))
    samples = directory.number(_TIFF_SAMPLES, 1)
    planes = samples if directory.number(_TIFF_PLANAR, 1) == 2 else 1
    bits = directory.values(_TIFF_BITS)
    block_bits = (int(bits.max()) if bits is not None and len(bits) else 1) * (samples // planes)  # per pixel
    limit = f"more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit, and would take too long to read"
    if {_TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH, *_TIFF_TILES} & directory.entries.keys():
        block_width, block_rows = directory.number(_TIFF_TILE_WIDTH), directory.number(_TIFF_TILE_LENGTH)
        needed = -(-width // block_width) * -(-height // block_rows)
        blocks = max(needed, -(-directory.count(_TIFF_TILES[0]) // planes))
        pixels = blocks * block_width * block_rows  # every tile is decoded whole
        if pixels > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(
                f"This TIFF image is stored in tiles of {block_width} x {block_rows} pixels that add up to "
                f"{_megapixels(pixels)} megapixels, {limit}. Please save it again without tiles, or as a JPEG or PNG."
            )
        rows = np.full(blocks * planes, block_rows)
        counts = directory.values(_TIFF_TILES[1])
    else:
        block_width, block_rows = width, min(directory.number(_TIFF_ROWS_PER_STRIP, height), height)
        needed = -(-height // block_rows)
        blocks = max(needed, -(-directory.count(_TIFF_STRIPS[0]) // planes))
        pixels = width * (height + (blocks - needed) * block_rows)  # the last strip of a page holds the rows left
        if pixels > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(
                f"This TIFF image is stored in {blocks:,} strips that add up to {_megapixels(pixels)} megapixels, "
                f"{limit}. Please save it again as an ordinary TIFF, or as a JPEG or PNG."
            )
        rows = np.minimum(block_rows, height - np.arange(blocks * planes) % needed * block_rows)
        counts = directory.values(_TIFF_STRIPS[1])
    expansion = _TIFF_EXPANSION.get(directory.number(_TIFF_COMPRESSION, 1))
    if expansion is not None and counts is not None:
        decoded = -(-block_width * block_bits // 8) * rows[: len(counts)]  # bytes of each block's pixels
        if (counts.astype(np.float64) * expansion < decoded).any():
            raise InvalidImageError(_INCOMPLETE)  # fewer bytes than any encoder could store those pixels in


def _ico_frame_sizes(data: bytes) -> list[tuple[int, int]]:
    """The sizes the images inside an icon declare in their own headers (an icon's directory can lie)."""
    count = int.from_bytes(data[4:6], "little")
    sizes = []
    for index in range(count):
        entry = data[6 + 16 * index : 22 + 16 * index]
        if len(entry) < 16:
            break
        offset = int.from_bytes(entry[12:16], "little")
        head = data[offset : offset + 24]
        if head[:8] == _PNG_MAGIC and len(head) == 24:
            width, height = struct.unpack(">II", head[16:24])
        elif len(head) >= 12:  # a bitmap: its height counts the colour rows and the mask rows
            width, height = struct.unpack("<ii", head[4:12])
            width, height = abs(width), abs(height) // 2
        else:
            continue
        sizes.append((width, height))
    return sizes


def _check_work(image: Image.Image, data: bytes, max_side: int | None) -> bool:
    """Refuses, before decoding, what would take too long or too much memory to decode.

    Returns:
        Whether the image may be decoded at a reduced scale: a JPEG of a frame type
        the JPEG library scales (read from our own bytes, not from a caller's image).

    Raises:
        InvalidImageError: a JPEG of a process the JPEG library does not decode.
        ImageTooLargeError: too many pixels in the image or in a frame it holds.
        ImageTooComplexError: too many JPEG scans.
    """
    width, height = image.size
    if image.format in _JPEG_FORMATS and data:
        jpeg = _jpeg_layout(data)
        if not jpeg.decodable:
            raise InvalidImageError(_UNUSUAL_JPEG)
        if jpeg.scans > MAX_JPEG_SCANS:
            raise ImageTooComplexError(
                f"This JPEG is stored in more than {MAX_JPEG_SCANS} passes, far more than cameras and photo editors "
                "write, and would take too long to read. Please save it again as an ordinary JPEG or as a PNG."
            )
        # A reduced-scale decode holds few pixels, but a progressive file keeps every coefficient of the
        # full image in memory, and a lossless one is decoded at full size: only the others may exceed the limit.
        beyond = max_side is not None and jpeg.scalable and not jpeg.progressive
        if width * height > (MAX_JPEG_PIXELS if beyond else MAX_IMAGE_PIXELS):
            raise ImageTooLargeError(_too_large_message(width, height, MAX_JPEG_PIXELS if beyond else MAX_IMAGE_PIXELS))
        return jpeg.scalable
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(_too_large_message(width, height))
    if image.format == "TIFF" and data and image.info.get("compression") in _TIFF_JPEG:
        scans, blocks = _tiff_jpeg_scans(image, data)
        if scans > MAX_JPEG_SCANS * blocks:
            raise ImageTooComplexError(
                "This TIFF image is stored in far more passes than scanners and photo editors write, and would take "
                "too long to read. Please save it again as an ordinary TIFF, JPEG or PNG."
            )
    return False


def _decode(image: Image.Image, data: bytes, max_side: int | None) -> np.ndarray:
    """Decodes the first frame of an opened image into RGB, within the limits."""
    try:
        image.seek(0)  # first frame of an animation, first page of a TIFF
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(_INCOMPLETE) from exc
    scalable = _check_work(image, data, max_side)
    width, height = image.size
    target = _fitted(width, height, max_side)
    if scalable and target != (width, height):
        image.draft(None, target)  # DCT scaling: 1/2, 1/4 or 1/8, never below the target
        if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:  # a max_side too large to bring it under the limit
            raise ImageTooLargeError(_too_large_message(width, height))
    try:
        image.load()  # a truncated file raises here
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error) as exc:
        raise InvalidImageError(_INCOMPLETE) from exc
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
        raise ImageTooLargeError(_too_large_message(array.shape[1], array.shape[0]))
    if array.shape[2] == 4:
        return _to_rgb(Image.fromarray(array, "RGBA"))
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    return array.copy()
