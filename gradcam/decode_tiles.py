"""What a TIFF's or a HEIF's tiles and strips would make a decoder do, read from the bytes before it runs.

* TIFF: the first directory as libtiff reads it: tiles counted whole, strips
  listed beyond the image, bytes too few for a strip's pixels, layout tags twice;
* HEIF: the pixels of every tile the primary image is made of (libheif decodes
  each grid tile whole, even far outside the image).

:func:`gradcam.decode_limits.check_layout` calls :func:`check_tiff_blocks` and
:func:`check_heif` for files of these formats.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from gradcam.config import MAX_IMAGE_PIXELS
from gradcam.errors import ImageTooLargeError, InvalidImageError
from gradcam.refusals import DAMAGED, INCOMPLETE, megapixels, over_limit, too_large_message

# --- TIFF -----------------------------------------------------------------------------------------

#: The headers Pillow's TIFF reader accepts (classic and BigTIFF, and two with the version's bytes swapped).
TIFF_MAGIC = (b"II\x2a\x00", b"MM\x00\x2a", b"II\x00\x2a", b"MM\x2a\x00", b"II\x2b\x00", b"MM\x00\x2b")
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
                f"{megapixels(pixels)} megapixels, {limit}. Please save it again without tiles, or as a JPEG or PNG."
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
                f"This TIFF image is stored in {blocks:,} strips that add up to {megapixels(pixels)} megapixels, "
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


def check_heif(data: bytes) -> None:
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
        raise over_limit("HEIC", pixels, "tiles", "an ordinary JPEG or PNG")
