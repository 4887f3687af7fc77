"""What a file's structure would make a decoder do, read from its bytes before any decoder runs.

A header promises little (a 64 x 64 image, a 16 x 16 icon) and a decoder may
do much: decode tiles far larger than the image, or parse millions of empty
segments one by one in Python. Each check here reads the structure that
decides the work, from the bytes, as the library that will do the work reads
it, and refuses in one sentence what goes beyond the limits of
:mod:`gradcam.config`:

* JPEG: segments, stray bytes, scans and frame type (a lossless frame is never
  decoded at a reduced scale: libjpeg-turbo cannot scale it, and Pillow's
  buffer would overflow);
* PNG: chunks up to the end of the first image;
* GIF: extensions, sub-blocks and comment bytes before the first image;
* BMP: run-length encoded images (decoded by Pillow in Python) above a smaller limit;
* ICO: the size (and compression) each picture declares in its own header;
* TIFF: the first directory as libtiff reads it: tiles counted whole, strips
  listed beyond the image, bytes too few for a strip's pixels, layout tags twice;
* HEIF: the pixels of every tile the primary image is made of (libheif decodes
  each grid tile whole, even far outside the image).

:func:`check_layout` runs the checks for a file's format; :mod:`gradcam.images`
calls it before Pillow opens the bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gradcam.config import (
    MAX_GIF_BLOCKS,
    MAX_GIF_COMMENT_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    MAX_RLE_BMP_PIXELS,
)
from gradcam.errors import ImageTooComplexError, ImageTooLargeError, InvalidImageError

DAMAGED = "This image file is damaged and cannot be read."
INCOMPLETE = "This image file is damaged or incomplete and cannot be read."
_TOO_LONG = "and would take too long to read"


def too_large_message(width: int | None = None, height: int | None = None, limit: int = MAX_IMAGE_PIXELS) -> str:
    """The refusal of an image over a pixel limit, with its size when known."""
    size = f" is {width} x {height} pixels, which" if width and height else ""
    return f"This image{size} is larger than the {limit // 1_000_000} megapixel limit. Please use a smaller image."


def _megapixels(pixels: int) -> str:
    """Millions of pixels as people read them: "40.9", "3,221"."""
    return f"{pixels / 1e6:,.1f}" if pixels < 100_000_000 else f"{pixels / 1e6:,.0f}"


def _over_limit(kind: str, pixels: int, what: str, advice: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"This {kind} image is stored in {what} that add up to {_megapixels(pixels)} megapixels, more than the "
        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixel limit, {_TOO_LONG}. Please save it again as {advice}."
    )


def _too_many_pieces(kind: str, advice: str) -> ImageTooComplexError:
    return ImageTooComplexError(
        f"This {kind} file is made of far more pieces than cameras and image editors write, {_TOO_LONG}. "
        f"Please save it again as {advice}."
    )


def check_layout(data: bytes, formats: tuple[str, ...]) -> JpegLayout | None:
    """Checks the structure of a file of one of ``formats`` (Pillow's names), before it is opened.

    Args:
        data: the file's bytes.
        formats: the formats that may be opened; a file in another one is left to the opener to refuse.

    Returns:
        A JPEG's layout (its frame type and scans, for the decoding), or None for other formats.

    Raises:
        InvalidImageError: a structure no decoder should be given (damaged, contradictory,
            a JPEG process the library does not decode); subclasses for work beyond the limits.
    """
    if data[:2] == b"\xff\xd8" and "JPEG" in formats:
        layout = jpeg_layout(data)
        layout.check()
        return layout
    if data[:8] == _PNG_MAGIC and "PNG" in formats:
        _check_png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a") and "GIF" in formats:
        _check_gif(data)
    elif data[:2] == b"BM" and "BMP" in formats:
        _check_bmp(data, 14)
    elif data[:4] == _ICO_MAGIC and "ICO" in formats:  # Pillow decodes an icon's picture as it opens the file
        _check_ico(data)
    elif data[:4] in _TIFF_MAGIC and "TIFF" in formats:  # Pillow lays out every strip listed as it opens the file
        check_tiff_blocks(data)
    elif data[4:8] == b"ftyp" and "HEIF" in formats:
        _check_heif(data)
    return None


# --- JPEG -----------------------------------------------------------------------------------------

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
#: Stray bytes (neither a marker nor a segment) a JPEG may hold: Pillow's reader skips them one by one.
_JPEG_STRAY_BYTES = 65_536
_UNUSUAL_JPEG = (
    "This JPEG is stored in a way that cameras and photo editors do not use (hierarchical or arithmetic-coded "
    "lossless), and cannot be read. Please save it again as an ordinary JPEG or as a PNG."
)


@dataclass(frozen=True)
class JpegLayout:
    """What walking a JPEG's segments tells before any decoder runs.

    Attributes:
        scans: start-of-scan segments, counted up to ``MAX_JPEG_SCANS + 1``.
        frames: the start-of-frame markers met (one in a well-formed file).
        segments: segments met, counted up to ``MAX_JPEG_SEGMENTS + 1``.
        stray: bytes between segments that are none, counted up to ``_JPEG_STRAY_BYTES + 1``.
    """

    scans: int
    frames: frozenset[int]
    segments: int = 0
    stray: int = 0

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

    def check(self) -> None:
        """Refuses a process the library does not decode, and far too many scans, segments or stray bytes.

        Raises:
            InvalidImageError: hierarchical or arithmetic-coded lossless.
            ImageTooComplexError: more than ``MAX_JPEG_SCANS`` scans, ``MAX_JPEG_SEGMENTS``
                segments or 64 kB of stray bytes.
        """
        if not self.decodable:
            raise InvalidImageError(_UNUSUAL_JPEG)
        if self.scans > MAX_JPEG_SCANS:
            raise ImageTooComplexError(
                f"This JPEG is stored in more than {MAX_JPEG_SCANS} passes, far more than cameras and photo editors "
                f"write, {_TOO_LONG}. Please save it again as an ordinary JPEG or as a PNG."
            )
        if self.segments > MAX_JPEG_SEGMENTS or self.stray > _JPEG_STRAY_BYTES:
            raise _too_many_pieces("JPEG", "an ordinary JPEG or as a PNG")


def jpeg_layout(data: bytes) -> JpegLayout:
    """Counts the scans and segments of the JPEG at the start of ``data`` and reads its frame type.

    Walks the segments as the JPEG library does: stops at the end of the image
    (EOI) or of the data, and once a count is over its limit (so the walk itself
    stays short); a scan's entropy-coded data runs up to the next marker.
    Segments are skipped by their lengths, so a thumbnail inside EXIF data is not
    mistaken for the image.
    """
    position, scans, segments, stray, end = 2, 0, 0, 0, len(data)  # after the SOI marker
    frames: set[int] = set()
    while position + 1 < end and scans <= MAX_JPEG_SCANS and segments <= MAX_JPEG_SEGMENTS:
        if stray > _JPEG_STRAY_BYTES:
            break
        if data[position] != 0xFF:  # stray bytes: on to the next 0xFF
            following = data.find(b"\xff", position)
            following = end if following < 0 else following
            stray += following - position
            position = following
            continue
        marker = data[position + 1]
        if marker in (0xFF, 0x00):  # a fill byte, or an escaped 0xFF where none belongs
            stray += 1 if marker == 0xFF else 2
            position += 1 if marker == 0xFF else 2
            continue
        segments += 1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # restart markers and TEM: no length
            position += 2
            continue
        if marker == _JPEG_EOI or position + 4 > end:
            break
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
    return JpegLayout(scans, frozenset(frames), segments, stray)


# --- PNG, GIF, BMP, ICO ---------------------------------------------------------------------------

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ICO_MAGIC = b"\x00\x00\x01\x00"


def _check_png(data: bytes, start: int = 0) -> None:
    """Refuses a PNG of more chunks than ``MAX_PNG_CHUNKS`` where Pillow reads them, up to its first image's end.

    Pillow reads every chunk up to the end of the file (IEND), but in an
    animated PNG only up to the end of the first frame's image data.

    Args:
        data: the file.
        start: where the PNG starts (0 for a PNG file, the picture's offset in an icon).
    """
    position, chunks, animated, seen_data = start + 8, 0, False, False
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IEND" or (animated and seen_data and kind != b"IDAT"):
            return
        animated |= kind == b"acTL"
        seen_data |= kind == b"IDAT"
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_many_pieces("PNG", "an ordinary PNG")
        position += 12 + length


def _check_gif(data: bytes) -> None:
    """Refuses a GIF whose reader would take too many steps, or too long joining comments, before its first image."""
    position = 13  # header (6) and logical screen descriptor (7)
    if len(data) >= 13 and data[10] & 0x80:  # a global colour table
        position += 3 << ((data[10] & 7) + 1)
    pieces = comments = 0
    while position < len(data) and pieces <= MAX_GIF_BLOCKS:
        introducer = data[position]
        if introducer in (0x2C, 0x3B):  # the first image, or the end
            return
        pieces += 1
        if introducer != 0x21:  # a stray byte: Pillow steps over it
            position += 1
            continue
        comment = position + 1 < len(data) and data[position + 1] == 0xFE
        position += 2
        while position < len(data) and pieces <= MAX_GIF_BLOCKS:  # the sub-blocks, up to an empty one
            size = data[position]
            position += 1 + size
            if not size:
                break
            pieces += 1
            comments += size if comment else 0
        if comments > MAX_GIF_COMMENT_BYTES:
            raise ImageTooComplexError(
                f"This GIF holds more than {MAX_GIF_COMMENT_BYTES // 1024} kB of comments, {_TOO_LONG}. "
                "Please save it again without them, or as a PNG."
            )
    if pieces > MAX_GIF_BLOCKS:
        raise _too_many_pieces("GIF", "an ordinary GIF, or as a PNG")


def _check_bmp(data: bytes, start: int, name: str = "BMP") -> None:
    """Refuses a run-length encoded bitmap above ``MAX_RLE_BMP_PIXELS`` (Pillow decodes those in Python).

    Args:
        data: the file.
        start: where the bitmap's info header starts (14 in a BMP file, the picture's offset in an icon).
        name: what the bitmap is, for the message.
    """
    head = data[start : start + 20]
    if len(head) < 20 or struct.unpack("<I", head[:4])[0] < 40:  # an OS/2 header: never compressed
        return
    width, height, _, _, compression = struct.unpack("<iiHHI", head[4:20])
    height = abs(height) // 2 if name == "icon" else abs(height)  # an icon's height counts its mask too
    if compression in (1, 2) and abs(width) * height > MAX_RLE_BMP_PIXELS:
        raise ImageTooLargeError(
            f"This {name} image is {abs(width)} x {height} pixels and run-length encoded, which is slow to read: "
            f"such images may have at most {MAX_RLE_BMP_PIXELS // 1_000_000} megapixels. "
            "Please save it again uncompressed, or as a PNG."
        )


def _check_ico(data: bytes) -> None:
    """Refuses an icon holding a picture over the pixel limit, a run-length bitmap over its own, a PNG of many chunks.

    Each picture is checked where its own header says, not by the icon's directory (which can lie).
    """
    count = int.from_bytes(data[4:6], "little")
    for index in range(count):
        entry = data[6 + 16 * index : 22 + 16 * index]
        if len(entry) < 16:
            break
        offset = int.from_bytes(entry[12:16], "little")
        head = data[offset : offset + 24]
        if head[:8] == _PNG_MAGIC and len(head) == 24:
            width, height = struct.unpack(">II", head[16:24])
            _check_png(data, offset)
        elif len(head) >= 12:  # a bitmap: its height counts the colour rows and the mask rows
            width, height = struct.unpack("<ii", head[4:12])
            width, height = abs(width), abs(height) // 2
            _check_bmp(data, offset, "icon")
        else:
            continue
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(too_large_message(width, height))


# --- TIFF -----------------------------------------------------------------------------------------

#: The headers Pillow's TIFF reader accepts (classic and BigTIFF, and two with the version's bytes swapped).
_TIFF_MAGIC = (b"II\x2a\x00", b"MM\x00\x2a", b"II\x00\x2a", b"MM\x2a\x00", b"II\x2b\x00", b"MM\x00\x2b")
#: TIFF compression names (Pillow's) whose strips or tiles are JPEG streams.
TIFF_JPEG = ("jpeg", "tiff_jpeg")
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


def tiff_jpeg_scans(image: Image.Image, data: bytes) -> tuple[int, int]:
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
            raise InvalidImageError(DAMAGED)
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
            raise InvalidImageError(DAMAGED) from exc
        #: tag -> (field type, value count, the value field: the values, or where they are).
        self.entries: dict[int, tuple[int, int, bytes]] = {}
        for index in range(min(count, max(0, len(data) - start) // size)):
            tag, kind, values, field = struct.unpack_from(self.order + layout, data, start + index * size)
            if tag in self.entries:
                if tag in _TIFF_LAYOUT:
                    raise InvalidImageError(DAMAGED)
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
            raise InvalidImageError(DAMAGED)
        return int(values[0])


def check_tiff_blocks(data: bytes) -> None:
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
        raise ImageTooLargeError(too_large_message(width, height))
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
            raise InvalidImageError(INCOMPLETE)  # fewer bytes than any encoder could store those pixels in



# --- HEIF -----------------------------------------------------------------------------------------

#: Item types of HEIF images derived from others (their "dimg" references): a grid of tiles, an
#: overlay, an identity transform, a tone map. libheif decodes every image they refer to, whole.
_HEIF_DERIVED = (b"grid", b"iovl", b"iden", b"tmap")


def _heif_boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes of one level of ``data[start:end]``: (type, payload start, payload end).

    Raises:
        InvalidImageError: a box whose size does not fit.
    """
    boxes = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, start + 8)
            head = 16
        elif size == 0:  # to the end
            size = end - start
        if size < head or start + size > end:
            raise InvalidImageError(DAMAGED)
        boxes.append((kind, start + head, start + size))
        start += size
    return boxes


class _HeifItems:
    """A HEIF file's items as libheif reads them: types, references, and the size (ispe) of each image."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.types: dict[int, bytes] = {}
        self.references: dict[tuple[bytes, int], list[int]] = {}  # (reference type, from item) -> to items
        self.sizes: dict[int, tuple[int, int]] = {}
        self.primary: int | None = None
        boxes = {kind: (first, last) for kind, first, last in reversed(_heif_boxes(data, start + 4, end))}
        if b"pitm" in boxes:
            first, _ = boxes[b"pitm"]
            self.primary = struct.unpack_from(">H" if data[first] == 0 else ">I", data, first + 4)[0]
        if b"iinf" in boxes:
            self._items(data, *boxes[b"iinf"])
        if b"iref" in boxes:
            self._references(data, *boxes[b"iref"])
        if b"iprp" in boxes:
            self._properties(data, *boxes[b"iprp"])

    def _items(self, data: bytes, first: int, last: int) -> None:
        skip = 4 + (2 if data[first] == 0 else 4)  # version and flags, entry count
        for kind, start, _ in _heif_boxes(data, first + skip, last):
            if kind == b"infe" and data[start] >= 2:  # versions 2 and 3: item id (16 or 32 bits), protection, type
                wide = data[start] >= 3
                item = struct.unpack_from(">I" if wide else ">H", data, start + 4)[0]
                self.types[item] = data[start + (10 if wide else 8) : start + (14 if wide else 12)]

    def _references(self, data: bytes, first: int, last: int) -> None:
        form = ">I" if data[first] else ">H"
        width = struct.calcsize(form)
        for kind, start, _ in _heif_boxes(data, first + 4, last):
            (source,) = struct.unpack_from(form, data, start)
            (count,) = struct.unpack_from(">H", data, start + width)
            targets = struct.unpack_from(">" + form[1] * count, data, start + width + 2)
            self.references.setdefault((kind, source), []).extend(targets)

    def _properties(self, data: bytes, first: int, last: int) -> None:
        children = {kind: (start, end) for kind, start, end in reversed(_heif_boxes(data, first, last))}
        if b"ipco" not in children or b"ipma" not in children:
            return
        properties = _heif_boxes(data, *children[b"ipco"])  # numbered from 1
        start, _ = children[b"ipma"]
        version, flags = data[start], data[start + 3]
        (entries,) = struct.unpack_from(">I", data, start + 4)
        position = start + 8
        for _ in range(entries):
            item = struct.unpack_from(">I" if version >= 1 else ">H", data, position)[0]
            position += 4 if version >= 1 else 2
            count = data[position]
            position += 1
            for _ in range(count):
                if flags & 1:
                    index = struct.unpack_from(">H", data, position)[0] & 0x7FFF
                    position += 2
                else:
                    index = data[position] & 0x7F
                    position += 1
                if 0 < index <= len(properties) and properties[index - 1][0] == b"ispe":
                    self.sizes.setdefault(item, struct.unpack_from(">II", data, properties[index - 1][1] + 4))

    def decoded_pixels(self, item: int, depth: int = 0) -> int:
        """The pixels libheif decodes to make ``item``: a coded image's own, a derived image's parts' (each whole)."""
        if depth > 8:  # derived images of derived images, a cycle: no encoder writes that
            raise InvalidImageError(DAMAGED)
        parts = self.references.get((b"dimg", item), [])
        if self.types.get(item) in _HEIF_DERIVED and parts:
            return sum(self.decoded_pixels(part, depth + 1) for part in parts)
        width, height = self.sizes.get(item, (0, 0))
        return width * height


def _check_heif(data: bytes) -> None:
    """Refuses a HEIF image made of more pixels than the limit: the sum over the tiles it is decoded from.

    libheif decodes every tile of a grid whole, even those the grid's size leaves
    out: a 45 kB file of a 64 x 64 grid of 992 tiles of 4096 x 4096 pixels is 16.6
    gigapixels of decoding. The primary image's alpha plane (an auxiliary image
    decoded with it) counts too.

    Raises:
        InvalidImageError: the item boxes cannot be read.
        ImageTooLargeError: the pixels decoded add up to more than the limit.
    """
    try:
        top = _heif_boxes(data, 0, len(data))
        meta = next(((first, last) for kind, first, last in top if kind == b"meta"), None)
        if meta is None:  # no items: not a HEIF image (a video's ftyp), left to the opener
            return
        items = _HeifItems(data, *meta)
        if items.primary is None:
            return
        pixels = items.decoded_pixels(items.primary)
        for (kind, source), targets in items.references.items():
            if kind == b"auxl" and items.primary in targets:  # the primary's alpha, decoded with it
                pixels += items.decoded_pixels(source)
    except (struct.error, IndexError) as exc:
        raise InvalidImageError(DAMAGED) from exc
    if pixels > MAX_IMAGE_PIXELS:
        raise _over_limit("HEIC", pixels, "tiles", "an ordinary JPEG or PNG")
