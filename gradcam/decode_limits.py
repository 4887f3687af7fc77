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
* TIFF and HEIF: their tiles and strips (:mod:`gradcam.decode_tiles`).

:func:`check_layout` runs the checks for a file's format; :mod:`gradcam.images`
calls it before Pillow opens the bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from gradcam.config import (
    MAX_GIF_BLOCKS,
    MAX_GIF_COMMENT_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    MAX_RLE_BMP_PIXELS,
)
from gradcam.decode_tiles import TIFF_MAGIC, check_heif, check_tiff_blocks
from gradcam.errors import ImageTooComplexError, ImageTooLargeError, InvalidImageError
from gradcam.refusals import TOO_LONG, too_large_message, too_many_pieces


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
    elif data[:4] in TIFF_MAGIC and "TIFF" in formats:  # Pillow lays out every strip listed as it opens the file
        check_tiff_blocks(data)
    elif data[4:8] == b"ftyp" and "HEIF" in formats:
        check_heif(data)
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
                f"write, {TOO_LONG}. Please save it again as an ordinary JPEG or as a PNG."
            )
        if self.segments > MAX_JPEG_SEGMENTS or self.stray > _JPEG_STRAY_BYTES:
            raise too_many_pieces("JPEG", "an ordinary JPEG or as a PNG")


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
            raise too_many_pieces("PNG", "an ordinary PNG")
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
                f"This GIF holds more than {MAX_GIF_COMMENT_BYTES // 1024} kB of comments, {TOO_LONG}. "
                "Please save it again without them, or as a PNG."
            )
    if pieces > MAX_GIF_BLOCKS:
        raise too_many_pieces("GIF", "an ordinary GIF, or as a PNG")


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
