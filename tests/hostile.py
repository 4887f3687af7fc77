"""A corpus of hostile image uploads, made in code, for every layer that reads user files.

Each :class:`HostileCase` is one file a user could upload (its name and bytes) and
what reading it must give: an upright RGB image of a known shape with known
colours at a few pixels, or a specific :mod:`gradcam.errors` exception whose
message, written for people, matches a regex (``re.search``, so it also finds
the message inside a web page or a CLI line). The image loader, the CLI and the
web app tests all run the same corpus::

    from tests.hostile import JARGON, hostile_cases, write_case

    for case in hostile_cases():
        path = write_case(case, tmp_path)  # or upload case.data as case.filename
        ...  # case.outcome == "ok": case.shape, case.pixels; "error": case.error, case.message

Nothing is downloaded and every file is small (under 32 kB): the oversized cases
are a PNG whose header alone claims 100000 x 100000 pixels, a real 1-bit
all-black PNG just over ``MAX_IMAGE_PIXELS`` that compresses to 5 kB, and an
icon hiding such a PNG behind a 16 x 16 directory entry. Files in formats we do
not decode (PostScript named ``cat.jpg``, JPEG 2000, AVIF, PSD...) must be refused
before any decoder runs, and files that would decode for minutes (a progressive
JPEG of hundreds of scans) before decoding.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from gradcam.config import MAX_IMAGE_PIXELS, MAX_JPEG_SCANS, MIN_IMAGE_SIDE
from gradcam.errors import ImageTooComplexError, ImageTooLargeError, ImageTooSmallError, InvalidImageError

Outcome = Literal["ok", "error"]
RGB = tuple[int, int, int]
#: ``((y, x), (r, g, b))``: the colour expected at one pixel of the loaded image.
Pixel = tuple[tuple[int, int], RGB]

RED: RGB = (255, 0, 0)
GREEN: RGB = (0, 255, 0)
BLUE: RGB = (0, 0, 255)
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)

#: Text that must never reach the person who uploaded the file: library and Python internals.
JARGON = re.compile(
    r"cannot identify|\bPIL\b|Pillow|Errno|Traceback|Exception|Error\b|broken PNG|checksum|decoder|"
    r"truncated|bytes not processed|Unsupported|BytesIO|_io\.|b'|0x[0-9a-fA-F]|<[\w.]+ object"
)

_LIMIT = rf"larger than the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit\. Please use a smaller image\."
_NOT_AN_IMAGE = r"not an image we can read\. Please use a JPEG, PNG"
#: Ends with the period: a message with the library's reason appended, "(broken PNG file ...)", fails.
_DAMAGED = r"This image file is damaged (or incomplete )?and cannot be read\."
_EMPTY = r"is empty\. Please choose an image file\."
_TOO_MANY_SCANS = rf"more than {MAX_JPEG_SCANS} passes, far more than cameras and photo editors write"

#: The 58-byte PostScript file of issue 13: Ghostscript would loop on it forever.
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"


@dataclass(frozen=True)
class HostileCase:
    """One uploaded file and what reading it must give.

    Attributes:
        name: short id, used as the pytest id.
        filename: the name the file is uploaded or saved under (its extension may lie).
        data: the file's bytes.
        outcome: ``"ok"`` or ``"error"``.
        shape: for ``"ok"``, the loaded array's shape ``(height, width, 3)``.
        pixels: for ``"ok"``, colours expected at some pixels, ``((y, x), (r, g, b))``.
        tolerance: largest allowed difference per channel at those pixels (lossy formats).
        error: for ``"error"``, the exception class expected (exactly this class).
        message: for ``"error"``, a regex the exception's message must match (``re.search``).
        why: what the case is about, for people reading a failure.
    """

    name: str
    filename: str
    data: bytes
    outcome: Outcome
    shape: tuple[int, int, int] | None = None
    pixels: tuple[Pixel, ...] = ()
    tolerance: int = 0
    error: type[Exception] | None = None
    message: str | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if self.outcome == "ok":
            assert self.shape is not None and self.error is None, self.name
        elif self.outcome == "error":
            assert self.error is not None and self.message is not None and not self.pixels, self.name
        else:
            raise ValueError(f"{self.name}: outcome must be 'ok' or 'error', got {self.outcome!r}")

    def __repr__(self) -> str:  # the bytes would flood pytest's output
        return f"HostileCase({self.name!r}, {self.filename!r}, {len(self.data)} bytes, {self.outcome!r})"


def write_case(case: HostileCase, directory: str | Path) -> Path:
    """Writes the case's bytes to ``directory / case.filename`` and returns the path."""
    path = Path(directory) / case.filename
    path.write_bytes(case.data)
    return path


def hostile_cases() -> list[HostileCase]:
    """The whole corpus, a new list on every call (the bytes are built once)."""
    return list(_build())


def case_named(name: str) -> HostileCase:
    """The corpus case called ``name``."""
    for case in _build():
        if case.name == name:
            return case
    raise KeyError(name)


# --- builders ---------------------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """The PNG signature and IHDR chunk (no interlacing)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, *, extra: bytes = b"") -> bytes:
    """A PNG written by hand: ``rows`` are the raw scanlines, each starting with its filter byte."""
    idat = _chunk(b"IDAT", zlib.compress(rows, 9))
    return _png_header(width, height, bit_depth, colour_type) + extra + idat + _chunk(b"IEND", b"")


def _blank_png_rows(width: int, height: int, bits_per_pixel: int) -> bytes:
    """All-zero scanlines (filter 0) for a ``width`` x ``height`` image."""
    return (b"\x00" + bytes((width * bits_per_pixel + 7) // 8)) * height


def _solid(mode: str, size: tuple[int, int], colour: object) -> Image.Image:
    return Image.new(mode, size, colour)  # type: ignore[arg-type]


def _not_an_image() -> list[HostileCase]:
    text = b"Dear user,\nthis is a plain text file, not a picture.\n"
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64" fill="red"/></svg>\n'
    )
    return [
        HostileCase(
            "text", "notes.txt", text, "error", error=InvalidImageError, message=_NOT_AN_IMAGE, why="plain text"
        ),
        HostileCase(
            "text_named_png", "photo.png", text, "error", error=InvalidImageError, message=_NOT_AN_IMAGE,
            why="text with an image extension: the content decides, not the name",
        ),
        HostileCase("empty", "empty.png", b"", "error", error=InvalidImageError, message=_EMPTY, why="zero bytes"),
        HostileCase(
            "svg", "drawing.svg", svg, "error", error=InvalidImageError, message=_NOT_AN_IMAGE,
            why="vector images are not decoded (and must not be: XML parsers are an attack surface)",
        ),
    ]


def _damaged() -> list[HostileCase]:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    png = _save(image, "PNG")
    bad_header = bytearray(png)
    bad_header[29] ^= 0xFF  # last byte of the IHDR CRC (8 signature + 4 length + 4 type + 13 data + 4 CRC)
    raw = image.tobytes()
    rows = b"".join(b"\x00" + raw[y * 96 : (y + 1) * 96] for y in range(32))
    text_chunk = bytearray(_chunk(b"tEXt", b"Comment\x00hello"))
    text_chunk[-1] ^= 0xFF
    bad_chunk = _png(32, 32, 8, 2, rows, extra=bytes(text_chunk))
    garbage = _png_header(32, 32, 8, 2) + _chunk(b"IDAT", b"not a zlib stream at all") + _chunk(b"IEND", b"")
    jpeg = _save(image, "JPEG", quality=90)
    bmp = bytearray(_save(image, "BMP"))
    bmp[30:34] = struct.pack("<I", 7)  # compression field of the BITMAPINFOHEADER: no such method
    return [
        HostileCase(
            "png_bad_crc_header", "bad_header.png", bytes(bad_header), "error", error=InvalidImageError,
            message=rf"{_NOT_AN_IMAGE}|{_DAMAGED}", why="IHDR checksum wrong: the file is not recognised as a PNG",
        ),
        HostileCase(
            "png_bad_crc_chunk", "bad_chunk.png", bad_chunk, "error", error=InvalidImageError,
            message=rf"{_NOT_AN_IMAGE}|{_DAMAGED}",
            why="a text chunk's checksum is wrong: the library's 'broken PNG file' must not leak",
        ),
        HostileCase(
            "png_truncated", "truncated.png", png[: len(png) * 2 // 3], "error", error=InvalidImageError,
            message=_DAMAGED, why="a PNG cut inside its pixel data",
        ),
        HostileCase(
            "png_garbage_pixels", "garbage.png", garbage, "error", error=InvalidImageError, message=_DAMAGED,
            why="valid header, pixel data that is not a zlib stream",
        ),
        HostileCase(
            "bmp_bad_compression", "odd.bmp", bytes(bmp), "error", error=InvalidImageError, message=_DAMAGED,
            why="a BMP header naming an unknown compression: the library's 'Unsupported BMP ...' must not leak",
        ),
        HostileCase(
            "jpeg_half", "half.jpg", jpeg[: len(jpeg) // 2], "error", error=InvalidImageError, message=_DAMAGED,
            why="a JPEG cut in half (an interrupted upload)",
        ),
    ]


def _sizes() -> list[HostileCase]:
    bomb = _png(100_000, 100_000, 1, 0, b"\x00\x00")
    # Over the project's limit, under Pillow's own bomb check: a real 1-bit PNG, all black, a few kB.
    width, height = 7000, MAX_IMAGE_PIXELS // 7000 + 1
    big = _png(width, height, 1, 0, _blank_png_rows(width, height, 1))
    tall = np.zeros((2000, 20, 3), np.uint8)
    tall[:1000] = RED
    tall[1000:] = BLUE
    tall[0, 0] = GREEN
    wide = np.ascontiguousarray(np.transpose(tall, (1, 0, 2)))
    small = MIN_IMAGE_SIDE
    return [
        HostileCase(
            "header_100000px", "bomb.png", bomb, "error", error=ImageTooLargeError, message=_LIMIT,
            why="a PNG header claiming 100000 x 100000 pixels (a decompression bomb): refused before decoding",
        ),
        HostileCase(
            "over_pixel_limit", "huge.png", big, "error", error=ImageTooLargeError,
            message=rf"{width} x {height} pixels, which is {_LIMIT}",
            why="a valid image just over MAX_IMAGE_PIXELS: the message says its size",
        ),
        HostileCase(
            "one_pixel", "dot.png", _save(_solid("RGB", (1, 1), RED), "PNG"), "error", error=ImageTooSmallError,
            message=rf"only 1 x 1 pixels\. Please use one at least {small} pixels on each side\.", why="1 x 1",
        ),
        HostileCase(
            "one_side_too_short", "strip.png", _save(_solid("RGB", (64, small - 1), RED), "PNG"), "error",
            error=ImageTooSmallError, message=rf"only 64 x {small - 1} pixels", why="just under MIN_IMAGE_SIDE",
        ),
        HostileCase(
            "smallest_allowed", "small.png", _save(_solid("RGB", (small, small), GREEN), "PNG"), "ok",
            shape=(small, small, 3), pixels=(((0, 0), GREEN), ((small - 1, small - 1), GREEN)),
            why="exactly MIN_IMAGE_SIDE on each side",
        ),
        HostileCase(
            "tall_20x2000", "tall.png", _save(Image.fromarray(tall), "PNG"), "ok", shape=(2000, 20, 3),
            pixels=(((0, 0), GREEN), ((0, 19), RED), ((999, 10), RED), ((1000, 10), BLUE), ((1999, 19), BLUE)),
            why="extreme aspect ratio, height 2000 and width 20: not transposed, not cropped",
        ),
        HostileCase(
            "wide_2000x20", "wide.png", _save(Image.fromarray(wide), "PNG"), "ok", shape=(20, 2000, 3),
            pixels=(((0, 0), GREEN), ((19, 0), RED), ((10, 999), RED), ((10, 1000), BLUE), ((19, 1999), BLUE)),
            why="extreme aspect ratio the other way",
        ),
    ]


def _modes() -> list[HostileCase]:
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # (16, 16): column x has value 16 x
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (200, 30, 30, 0)  # transparent, but not white underneath: compositing must ignore it
    rgba[:, 8:] = (0, 255, 0, 255)
    rgba[0, 15] = (0, 0, 0, 128)  # half-transparent black over white: mid gray
    la = np.zeros((16, 16, 2), np.uint8)
    la[:, :8] = (0, 0)  # transparent black
    la[:, 8:] = (50, 255)
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)  # index 0 black (transparent), 1 red
    palette.paste(1, (8, 0, 16, 16))
    keyed = np.zeros((16, 16, 3), np.uint8)
    keyed[:, :8] = (10, 20, 30)  # the tRNS colour key: transparent
    keyed[:, 8:] = BLUE
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    cmyk.paste((255, 0, 255, 0), (8, 0, 16, 16))  # full cyan and yellow: green
    gray16 = np.zeros((16, 16), np.uint16)
    gray16[:, :4], gray16[:, 4:8], gray16[:, 8:12], gray16[:, 12:] = 65535, 32768, 257, 0
    # 16-bit RGB (48 bits per pixel): Pillow cannot write it, so the PNG is made by hand.
    rgb16 = np.zeros((16, 16, 3), ">u2")
    rgb16[:, :8] = (0xFFFF, 0x8000, 0x0000)
    rgb16[:, 8:] = (0x0000, 0xFFFF, 0xFFFF)
    rgb16_rows = b"".join(b"\x00" + rgb16[y].tobytes() for y in range(16))
    return [
        HostileCase(
            "grayscale", "gray.png", _save(Image.fromarray(gray), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((0, 0), BLACK), ((5, 1), (16, 16, 16)), ((15, 15), (240, 240, 240))), why="mode L",
        ),
        HostileCase(
            "rgba_transparent", "alpha.png", _save(Image.fromarray(rgba), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((3, 3), WHITE), ((15, 0), WHITE), ((3, 12), GREEN), ((0, 15), (127, 127, 127))), tolerance=1,
            why="RGBA: transparent pixels composited over white, not shown as their hidden colour",
        ),
        HostileCase(
            "la_transparent", "la.png", _save(Image.fromarray(la, "LA"), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((3, 3), WHITE), ((3, 12), (50, 50, 50))), why="gray with alpha (LA)",
        ),
        HostileCase(
            "palette_transparent", "palette.png", _save(palette, "PNG", transparency=0), "ok", shape=(16, 16, 3),
            pixels=(((3, 3), WHITE), ((3, 12), RED)), why="palette image whose index 0 is transparent",
        ),
        HostileCase(
            "rgb_colour_key", "keyed.png", _save(Image.fromarray(keyed), "PNG", transparency=(10, 20, 30)), "ok",
            shape=(16, 16, 3), pixels=(((3, 3), WHITE), ((3, 12), BLUE)),
            why="RGB PNG with a tRNS colour key: that colour is transparent",
        ),
        HostileCase(
            "cmyk_jpeg", "cmyk.jpg", _save(cmyk, "JPEG", quality=95), "ok", shape=(16, 16, 3),
            pixels=(((3, 2), RED), ((3, 13), GREEN)), tolerance=24, why="CMYK JPEG (print workflows)",
        ),
        HostileCase(
            "gray_16bit", "gray16.png", _save(Image.fromarray(gray16), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((0, 0), WHITE), ((0, 5), (128, 128, 128)), ((0, 9), (1, 1, 1)), ((0, 13), BLACK)),
            why="16-bit grayscale (I;16): 65535 -> 255, 32768 -> 128, 257 -> 1, not clipped to white",
        ),
        HostileCase(
            "rgb_16bit", "rgb16.png", _png(16, 16, 16, 2, rgb16_rows), "ok", shape=(16, 16, 3),
            pixels=(((0, 0), (255, 128, 0)), ((15, 15), (0, 255, 255))), tolerance=1,
            why="16-bit per channel RGB PNG",
        ),
    ]


def _containers() -> list[HostileCase]:
    frames = [_solid("RGB", (24, 16), RED), _solid("RGB", (24, 16), BLUE), _solid("RGB", (24, 16), GREEN)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pages = [_solid("RGB", (24, 16), GREEN), _solid("RGB", (40, 40), RED)]
    tiff = _save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    upright = np.full((48, 32, 3), 128, np.uint8)  # what the camera saw: 32 wide, 48 tall
    upright[:16, -16:] = RED  # top-right corner marked
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as the sensor stored it: 48 wide, 32 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    rotated = _save(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    icon = _save(_solid("RGB", (32, 32), (10, 200, 30)), "ICO", sizes=[(32, 32), (16, 16)])
    colour = (12, 34, 56)
    png_as_jpg = _save(_solid("RGB", (16, 16), colour), "PNG")
    return [
        HostileCase(
            "animated_gif", "anim.gif", gif, "ok", shape=(16, 24, 3), pixels=(((0, 0), RED), ((15, 23), RED)),
            why="animation: the first frame (red), not a later one",
        ),
        HostileCase(
            "multipage_tiff", "pages.tiff", tiff, "ok", shape=(16, 24, 3), pixels=(((0, 0), GREEN), ((15, 23), GREEN)),
            why="multi-page TIFF: the first page (green, 24 x 16), not the second (red, 40 x 40)",
        ),
        HostileCase(
            "exif_orientation_6", "rotated.jpg", rotated, "ok", shape=(48, 32, 3),
            pixels=(((4, 27), RED), ((4, 4), (128, 128, 128)), ((43, 27), (128, 128, 128))), tolerance=24,
            why="a phone photo stored sideways with EXIF orientation 6: turned upright, marked corner top-right",
        ),
        HostileCase(
            "ico", "favicon.ico", icon, "ok", shape=(32, 32, 3), pixels=(((0, 0), (10, 200, 30)),),
            why="a Windows icon: its largest size",
        ),
        HostileCase(
            "all_black", "black.png", _save(_solid("RGB", (16, 16), BLACK), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((0, 0), BLACK), ((15, 15), BLACK)), why="a flat black image is still an image",
        ),
        HostileCase(
            "one_colour", "flat.png", _save(_solid("RGB", (16, 16), colour), "PNG"), "ok", shape=(16, 16, 3),
            pixels=(((0, 0), colour), ((15, 15), colour)), why="a flat image is still an image",
        ),
        HostileCase(
            "png_named_jpg", "mislabelled.jpg", png_as_jpg, "ok", shape=(16, 16, 3), pixels=(((8, 8), colour),),
            why="a PNG with a .jpg name: the content decides",
        ),
        HostileCase(
            "bmp", "picture.bmp", _save(_solid("RGB", (16, 16), colour), "BMP"), "ok", shape=(16, 16, 3),
            pixels=(((8, 8), colour),), why="BMP",
        ),
        HostileCase(
            "webp", "picture.webp", _save(_solid("RGB", (16, 16), colour), "WEBP", lossless=True), "ok",
            shape=(16, 16, 3), pixels=(((8, 8), colour),), why="lossless WebP",
        ),
    ]


def many_scan_jpeg(size: tuple[int, int], extra_scans: int, mode: str = "RGB") -> bytes:
    """A flat progressive JPEG whose last scan is repeated ``extra_scans`` times before its end.

    Each repeated scan is a few dozen bytes but makes the JPEG library pass over
    the whole image again: without a limit on scans, a 100 kB file of 4000 x 4000
    pixels and a few hundred scans decodes for seconds, and for minutes with more.
    """
    data = _save(Image.new(mode, size, 128 if mode == "L" else (90, 140, 200)), "JPEG", progressive=True, quality=75)
    last = data.rfind(b"\xff\xda")  # the last start-of-scan marker; the file ends with the 2-byte end marker
    return data[:-2] + data[last:-2] * extra_scans + data[-2:]


#: JPEG start-of-frame markers by the process they name (ITU-T T.81, Table B.1).
JPEG_FRAMES = {
    0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive", 0xC3: "lossless",
    0xC5: "differential sequential", 0xC6: "differential progressive", 0xC7: "differential lossless",
    0xC9: "arithmetic sequential", 0xCA: "arithmetic progressive", 0xCB: "arithmetic lossless",
    0xCD: "arithmetic differential sequential", 0xCE: "arithmetic differential progressive",
    0xCF: "arithmetic differential lossless",
}
_JPEG_ARITHMETIC = range(0xC9, 0xD0)
_JPEG_LOSSLESS = (0xC3, 0xC7, 0xCB, 0xCF)
_JPEG_PROGRESSIVE = (0xC2, 0xC6, 0xCA, 0xCE)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def minimal_jpeg(width: int, height: int, frame: int = 0xC3, components: int = 1) -> bytes:
    """A JPEG written by hand, 43 to 162 bytes whatever the size its frame header claims.

    SOI; a quantisation table (DCT frames); a start-of-frame segment of marker
    ``frame`` (see :data:`JPEG_FRAMES`; SOF3, lossless, by default) with 8-bit
    samples; Huffman tables whose only code, one ``0`` bit, means "no change"
    (a DC difference of 0, an end of block, or for a lossless frame a sample
    equal to its prediction), or none for arithmetic frames (their default
    conditioning); one scan (lossless: predictor 1; progressive: the first DC
    scan); 16 zero bytes of entropy-coded data; EOI. The JPEG library pads a
    scan that ends early with zero bits, so the whole image decodes (where the
    library decodes that process at all): a Huffman-coded frame as flat gray
    128, an arithmetic-coded one as whatever zero bits mean to that decoder.

    Such a lossless file wider than twice the app's working size killed the
    server: Pillow's reduced-scale decoding (``draft``) sized its buffer for a
    quarter of the width, and libjpeg-turbo, which does not scale lossless
    frames, wrote full rows into it.
    """
    lossless = frame in _JPEG_LOSSLESS
    ids = range(1, components + 1)
    head = b"\xff\xd8"
    if not lossless:
        head += _jpeg_segment(0xDB, bytes(1) + bytes([1] * 64))  # table 0, 8-bit, every step 1
    sampling = b"".join(bytes((i, 0x11, 0)) for i in ids)  # component id, 1 x 1 sampling, quantisation table 0
    head += _jpeg_segment(frame, struct.pack(">BHHB", 8, height, width, components) + sampling)
    if frame not in _JPEG_ARITHMETIC:
        one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
        head += _jpeg_segment(0xC4, b"\x00" + one_code + (b"" if lossless else b"\x10" + one_code))  # DC 0 (and AC 0)
    if lossless:
        spectral = (1, 0)  # predictor 1 (the sample to the left); Se unused
    elif frame in _JPEG_PROGRESSIVE:
        spectral = (0, 0)  # the first scan of a progressive image holds the DC coefficients only
    else:
        spectral = (0, 63)
    scan = bytes([components]) + b"".join(bytes((i, 0x00)) for i in ids) + bytes((*spectral, 0))
    return head + _jpeg_segment(0xDA, scan) + bytes(16) + b"\xff\xd9"


#: TIFF field types: (code, struct format) of SHORT and LONG.
_TIFF_SHORT, _TIFF_LONG = (3, "H"), (4, "I")
#: A TIFF entry: tag, field type, values.
TiffEntry = tuple[int, tuple[int, str], tuple[int, ...]]


def handmade_tiff(
    width: int,
    height: int,
    blocks: Sequence[bytes],
    *,
    tile: tuple[int, int] | None = None,
    rows_per_strip: int | None = None,
    compression: int = 1,
    byte_counts: Sequence[int] | None = None,
    extra: Sequence[TiffEntry] = (),
) -> bytes:
    """A little-endian 8-bit grayscale TIFF written by hand, one IFD, its strips or tiles given as bytes.

    Equal blocks are stored once, so many strips or tiles can share one
    compressed stream (the file stays small however many of them there are).

    Args:
        width: the width the header claims.
        height: the height the header claims.
        blocks: the data of each strip (or tile), in order; their count is the offsets' count.
        tile: ``(tile width, tile height)`` for a tiled image; strips otherwise.
        rows_per_strip: the RowsPerStrip tag (omitted when None: the whole image in one strip).
        compression: the Compression tag (1 none, 5 LZW, 8 deflate, 32773 PackBits).
        byte_counts: the byte counts written, when they should lie (default: each block's length).
        extra: more entries, after those of the same tag (a duplicate tag comes second).
    """
    stored: dict[bytes, int] = {}
    for block in blocks:
        stored.setdefault(block, 0)
    offsets_tag, counts_tag = (324, 325) if tile else (273, 279)
    counts = tuple(byte_counts) if byte_counts is not None else tuple(len(b) for b in blocks)
    entries: list[TiffEntry] = [
        (256, _TIFF_LONG, (width,)), (257, _TIFF_LONG, (height,)), (258, _TIFF_SHORT, (8,)),
        (259, _TIFF_SHORT, (compression,)), (262, _TIFF_SHORT, (1,)), (277, _TIFF_SHORT, (1,)),
        (284, _TIFF_SHORT, (1,)), (offsets_tag, _TIFF_LONG, (0,) * len(blocks)), (counts_tag, _TIFF_LONG, counts),
    ]
    if tile:
        entries += [(322, _TIFF_LONG, (tile[0],)), (323, _TIFF_LONG, (tile[1],))]
    if rows_per_strip is not None:
        entries.append((278, _TIFF_LONG, (rows_per_strip,)))
    entries = sorted([*entries, *extra], key=lambda entry: entry[0])  # stable: a duplicate stays second
    # Layout: header (8), IFD (2 + 12 n + 4), out-of-line values, then the blocks.
    position = 8 + 2 + 12 * len(entries) + 4
    places: list[int] = []  # where each entry's values lie when they do not fit in the entry (0: inside)
    for _, (_, kind), values in entries:
        size = struct.calcsize("<" + kind * len(values))
        places.append(position if size > 4 else 0)
        position += size if size > 4 else 0
    for block in stored:
        stored[block] = position
        position += len(block)
    offsets = tuple(stored[block] for block in blocks)
    ifd = struct.pack("<H", len(entries))
    values_data = b""
    for (tag, (code, kind), values), place in zip(entries, places):
        values = offsets if tag == offsets_tag and values == (0,) * len(blocks) else values
        packed = struct.pack("<" + kind * len(values), *values)
        if place:
            ifd += struct.pack("<HHII", tag, code, len(values), place)
            values_data += packed
        else:
            ifd += struct.pack("<HHI", tag, code, len(values)) + packed.ljust(4, b"\x00")
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + values_data + b"".join(stored)


def _box(kind: bytes, payload: bytes, version: int | None = None, flags: int = 0) -> bytes:
    """An ISO base media file format box; a full box (version and flags first) when ``version`` is given."""
    if version is not None:
        payload = bytes([version]) + flags.to_bytes(3, "big") + payload
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, tuple[int, int]]:
    """The boxes at one level of ``data[start:end]``: type -> (payload start, payload end), the first of each type."""
    found: dict[bytes, tuple[int, int]] = {}
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8:
            raise ValueError(f"a box of {size} bytes at {start}")
        found.setdefault(kind, (start + 8, start + size))
        start += size
    return found


def heic_tile(size: tuple[int, int], colour: RGB = RED) -> tuple[bytes, bytes]:
    """One HEVC-coded picture of ``size`` from the HEIF encoder: its configuration box (hvcC) and its coded data."""
    data = _save(_solid("RGB", size, colour), "HEIF", quality=30)
    start, end = _boxes(data)[b"meta"]
    meta = _boxes(data, start + 4, end)  # a full box: its version and flags first
    start, end = meta[b"iprp"]
    hvcc_start, hvcc_end = _boxes(data, *_boxes(data, start, end)[b"ipco"])[b"hvcC"]
    iloc = data[meta[b"iloc"][0] : meta[b"iloc"][1]]  # version 0, 4-byte offsets and lengths, one item, one extent
    # Version 0; 4-byte offsets, lengths and base offset; one item of one extent.
    assert iloc[:6] == b"\x00\x00\x00\x00\x44\x40", "the encoder's item locations are laid out as expected"
    (base,) = struct.unpack(">I", iloc[12:16])  # after sizes (2), item count (2), item (2), data reference (2)
    offset, length = struct.unpack(">II", iloc[18:26])  # after the extent count (2)
    offset += base
    return data[hvcc_start - 8 : hvcc_end], data[offset : offset + length]


def handmade_heic_grid(
    tile: tuple[bytes, bytes], tile_size: tuple[int, int], grid: tuple[int, int], output: tuple[int, int]
) -> bytes:
    """A HEIF file whose primary image is a grid of ``rows x columns`` tiles, written by hand.

    Every tile is its own item, and all their data is the one coded picture of
    ``tile`` (from :func:`heic_tile`), stored once: the file stays small however
    many tiles there are. The grid's header (and its ispe property) claims
    ``output`` as the image's size, which may be far smaller than the tiles.

    Args:
        tile: the hvcC box and the coded data of one picture.
        tile_size: the size the tiles' ispe property states (the coded picture's size).
        grid: ``(rows, columns)``, each 1 to 256.
        output: ``(width, height)`` of the grid image.
    """
    hvcc, coded = tile
    rows, columns = grid
    tiles = list(range(2, 2 + rows * columns))  # item 1 is the grid
    grid_data = struct.pack(">BBBBII", 0, 1, rows - 1, columns - 1, *output)  # flags 1: 32-bit sizes
    infe = [_box(b"infe", struct.pack(">HH4s", 1, 0, b"grid") + b"\x00", version=2)]
    infe += [_box(b"infe", struct.pack(">HH4s", item, 0, b"hvc1") + b"\x00", version=2) for item in tiles]
    sizes = b"".join(_box(b"ispe", struct.pack(">II", *size), version=0) for size in (tile_size, output))
    # Properties 1 hvcC, 2 the tiles' ispe, 3 the grid's ispe; 0x80 marks an essential one.
    ipma = struct.pack(">IHBB", 1 + len(tiles), 1, 1, 3)
    ipma += b"".join(struct.pack(">HBBB", item, 2, 0x81, 0x02) for item in tiles)
    properties = _box(b"iprp", _box(b"ipco", hvcc + sizes) + _box(b"ipma", ipma, version=0))
    dimg = _box(b"dimg", struct.pack(">HH", 1, len(tiles)) + struct.pack(f">{len(tiles)}H", *tiles))
    references = _box(b"iref", dimg, version=0)

    def meta(mdat_offset: int) -> bytes:
        locations = struct.pack(">HHHHII", 1, 1, 0, 1, 0, len(grid_data))  # the grid: construction method 1 (idat)
        locations += b"".join(struct.pack(">HHHHII", item, 0, 0, 1, mdat_offset, len(coded)) for item in tiles)
        children = [
            _box(b"hdlr", struct.pack(">I4s12s", 0, b"pict", bytes(12)) + b"\x00", version=0),
            _box(b"pitm", struct.pack(">H", 1), version=0),
            _box(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", 1 + len(tiles)) + locations, version=1),
            _box(b"iinf", struct.pack(">H", len(infe)) + b"".join(infe), version=0),
            references,
            properties,
            _box(b"idat", grid_data),
        ]
        return _box(b"meta", b"".join(children), version=0)

    head = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic")
    offset = len(head) + len(meta(0)) + 8  # the coded data, after the mdat box's header
    return head + meta(offset) + _box(b"mdat", coded)


def _psd(width: int, height: int, colour: RGB) -> bytes:
    """A minimal Photoshop file written by hand: header, empty sections, raw planar RGB."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    planes = b"".join(bytes([value]) * (width * height) for value in colour)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + planes


def _foreign() -> list[HostileCase]:
    """Real images in formats Pillow reads but we do not: refused before any decoder runs."""
    rgb = _solid("RGB", (16, 16), RED)
    files = [
        ("jpeg2000", "photo.jp2", _save(rgb, "JPEG2000"), "JPEG 2000 (OpenJPEG has had many decoder bugs)"),
        ("avif", "photo.avif", _save(rgb, "AVIF"), "AVIF: not among the formats we promise"),
        ("qoi", "photo.qoi", _save(rgb, "QOI"), "QOI"),
        ("tga", "photo.tga", _save(rgb, "TGA"), "Targa"),
        ("pcx", "photo.pcx", _save(rgb, "PCX"), "PCX"),
        ("sgi", "photo.sgi", _save(rgb, "SGI"), "SGI"),
        ("icns", "icon.icns", _save(_solid("RGBA", (16, 16), (255, 0, 0, 255)), "ICNS"), "macOS icon"),
        ("dds", "texture.dds", _save(rgb, "DDS"), "DirectDraw texture"),
        ("xbm", "bitmap.xbm", _save(rgb.convert("1"), "XBM"), "X bitmap (C source text)"),
        ("msp", "paint.msp", _save(rgb.convert("1"), "MSP"), "Microsoft Paint"),
        ("im", "photo.im", _save(rgb, "IM"), "IFUNC image"),
        ("ppm", "photo.ppm", _save(rgb, "PPM"), "Netpbm"),
        ("psd", "layers.psd", _psd(16, 16, RED), "Photoshop"),
        ("eps", "drawing.eps", _save(rgb, "EPS"), "Encapsulated PostScript: decoding runs Ghostscript"),
    ]
    cases = [
        HostileCase(name, filename, data, "error", error=InvalidImageError, message=_NOT_AN_IMAGE, why=why)
        for name, filename, data, why in files
    ]
    cases.append(
        HostileCase(
            "eps_named_jpg", "cat.jpg", EPS_LOOP, "error", error=InvalidImageError, message=_NOT_AN_IMAGE,
            why="PostScript named cat.jpg: given to Ghostscript, it hangs the worker forever; it must not reach it",
        )
    )
    return cases


def _slow() -> list[HostileCase]:
    """Files that would take far longer to decode than any real photo, and honest files of the same kinds."""
    width, height = 7000, MAX_IMAGE_PIXELS // 7000 + 1
    inner = _png(width, height, 1, 0, _blank_png_rows(width, height, 1))
    # An icon directory claiming one 16 x 16 picture, and a PNG of over 40 megapixels there.
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(inner), 22) + inner
    colours = [RED, BLUE]
    frames = [_solid("RGB", (8, 8), colours[i % 2]) for i in range(600)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20, loop=0)
    mpo = _save(_solid("RGB", (24, 16), GREEN), "MPO", save_all=True, append_images=[_solid("RGB", (24, 16), RED)])
    heic = _save(_solid("RGB", (32, 24), RED), "HEIF", quality=90) if _heif() else b""
    cases = [
        HostileCase(
            "jpeg_many_scans", "slow.jpg", many_scan_jpeg((2000, 2000), 600, "L"), "error",
            error=ImageTooComplexError, message=_TOO_MANY_SCANS,
            why="a progressive JPEG whose last scan is repeated 600 times: each repeat is another pass over the image",
        ),
        HostileCase(
            "jpeg_progressive", "progressive.jpg", many_scan_jpeg((40, 24), 0), "ok", shape=(24, 40, 3),
            pixels=(((0, 0), (90, 140, 200)), ((23, 39), (90, 140, 200))), tolerance=8,
            why="an ordinary progressive JPEG (about 10 scans) still loads",
        ),
        HostileCase(
            "ico_hidden_bomb", "bomb.ico", icon, "error", error=ImageTooLargeError,
            message=rf"{width} x {height} pixels, which is {_LIMIT}",
            why="an icon whose directory says 16 x 16 around a PNG of over 40 megapixels",
        ),
        HostileCase(
            "gif_600_frames", "frames.gif", gif, "ok", shape=(8, 8, 3), pixels=(((0, 0), RED), ((7, 7), RED)),
            why="600 frames: only the first is decoded",
        ),
        HostileCase(
            "mpo", "stereo.jpg", mpo, "ok", shape=(16, 24, 3), pixels=(((8, 12), GREEN),), tolerance=8,
            why="a multi-picture JPEG (3D cameras, some phones): the first picture",
        ),
    ]
    if heic:
        cases.append(
            HostileCase(
                "heic", "IMG_0001.HEIC", heic, "ok", shape=(24, 32, 3), pixels=(((12, 16), RED),), tolerance=12,
                why="HEIC, the iPhone's default photo format",
            )
        )
    return cases


def _jpeg_processes() -> list[HostileCase]:
    """JPEGs of the rarer coding processes, each a header and a few bytes wider than twice the app's working size."""
    gray = (128, 128, 128)
    return [
        HostileCase(
            "jpeg_lossless_wide", "lossless.jpg", minimal_jpeg(4000, 16), "ok", shape=(16, 4000, 3),
            pixels=(((0, 0), gray), ((15, 3999), gray)),
            why="a 65-byte lossless JPEG (SOF3) 4000 pixels wide: its reduced-scale decoding killed the server",
        ),
        HostileCase(
            "jpeg_arithmetic", "arithmetic.jpg", minimal_jpeg(4000, 16, 0xC9), "ok", shape=(16, 4000, 3),
            why="an arithmetic-coded JPEG (SOF9): a DCT frame, decoded at a reduced scale like any other",
        ),
        HostileCase(
            "jpeg_hierarchical", "hierarchical.jpg", minimal_jpeg(4000, 16, 0xC7), "error", error=InvalidImageError,
            message=r"This JPEG is stored in a way that cameras and photo editors do not use",
            why="a hierarchical (differential lossless, SOF7) JPEG: refused before any decoder runs",
        ),
    ]


def _tiff_layouts() -> list[HostileCase]:
    """TIFFs whose strips or tiles would make the decoder produce far more than the header's size."""
    rows = (np.arange(32 * 64) // 8).astype(np.uint8).reshape(32, 64)  # (32, 64): row y, column x holds (64 y + x) // 8
    tiles = [zlib.compress(rows[y : y + 16, x : x + 16].tobytes()) for y in (0, 16) for x in (0, 16, 32, 48)]
    huge_tiles = handmade_tiff(196_608, 8, [bytes(16)] * 12, tile=(16_384, 16_384), compression=8)
    return [
        HostileCase(
            "tiff_huge_tiles", "tiles.tif", huge_tiles, "error", error=ImageTooLargeError,
            message=r"TIFF image is stored in tiles of 16384 x 16384 pixels",
            why="a 1.6-megapixel TIFF in 12 tiles of 16384 x 16384: each tile is decoded whole (21.7 s, 770 MB)",
        ),
        HostileCase(
            "tiff_many_strips", "strips.tif", handmade_tiff(40_000, 8, [b"\x00"] * 1_008, rows_per_strip=1), "error",
            error=ImageTooLargeError, message=r"TIFF image is stored in 1,008 strips that add up to 40\.3 megapixels",
            why="8 rows listed as 1008 strips: Pillow lays out and decodes every strip listed",
        ),
        HostileCase(
            "tiff_tiles", "tiled.tif", handmade_tiff(64, 32, tiles, tile=(16, 16), compression=8), "ok",
            shape=(32, 64, 3), pixels=(((0, 0), BLACK), ((31, 63), (255, 255, 255)), ((16, 16), (130, 130, 130))),
            why="an honest tiled TIFF (deflate, 8 tiles of 16 x 16) still loads, tiles in their places",
        ),
    ]


def rle_bmp(width: int, height: int, rows: bytes | None = None) -> bytes:
    """An 8-bit run-length encoded BMP (BI_RLE8) written by hand, bottom-up, gray palette.

    ``rows`` is the encoded pixel data; by default each row is runs of 255
    pixels of index 128 and an end of line, which Pillow's decoder (Python)
    reads quickly; an end of line after a single pixel is the slow case (Pillow
    pads the row one byte at a time).
    """
    if rows is None:
        line = b"\xff\x80" * (width // 255) + (bytes([width % 255, 0x80]) if width % 255 else b"") + b"\x00\x00"
        rows = line * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows


def gif_with(before_image: bytes, size: tuple[int, int] = (16, 16)) -> bytes:
    """A one-frame GIF (palette index 1 everywhere) with ``before_image`` between its header and its image."""
    data = _save(Image.new("P", size, 1), "GIF")
    start = 13 + ((3 << ((data[10] & 7) + 1)) if data[10] & 0x80 else 0)  # after the global colour table, if any
    return data[:start] + before_image + data[start:]


def _structures() -> list[HostileCase]:
    """Small files whose structure would make a reader do far more than their header says."""
    jpeg = _save(_solid("RGB", (64, 48), GREEN), "JPEG")
    cases = [
        HostileCase(
            "jpeg_many_segments", "segments.jpg", jpeg[:2] + b"\xff\xfe\x00\x02" * 5000 + jpeg[2:], "error",
            error=ImageTooComplexError, message=r"JPEG file is made of far more pieces than cameras",
            why="5000 empty comments: Pillow's reader parses each in Python (2.4 million took 3.3 s)",
        ),
        HostileCase(
            "gif_many_comments", "comments.gif", gif_with(b"\x21\xfe\x00" * 5000), "error",
            error=ImageTooComplexError, message=r"GIF file is made of far more pieces than cameras",
            why="5000 empty comments before the image: Pillow joins them all (3.3 million: over two minutes)",
        ),
        HostileCase(
            "bmp_rle_slow", "slow.bmp", rle_bmp(40_000, 1000, b"\x01\x05\x00\x00" * 1000 + b"\x00\x01"), "error",
            error=ImageTooLargeError, message=r"BMP image is 40000 x 1000 pixels and run-length encoded",
            why="a 5 kB run-length BMP of 40 megapixels, one pixel per row: Pillow's Python decoder took 5.9 s",
        ),
    ]
    if _heif():
        grid = handmade_heic_grid(heic_tile((512, 512)), (512, 512), (13, 13), (64, 64))
        cases.append(
            HostileCase(
                "heic_huge_grid", "grid.heic", grid, "error", error=ImageTooLargeError,
                message=r"HEIC image is stored in tiles that add up to 44\.3 megapixels",
                why="a 64 x 64 HEIC grid of 169 tiles of 512 x 512: libheif decodes every tile whole",
            )
        )
    return cases


def _heif() -> bool:
    """Whether HEIC files can be written here (``pillow_heif`` installed)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


_BUILDERS: tuple[Callable[[], list[HostileCase]], ...] = (
    _not_an_image, _damaged, _sizes, _modes, _containers, _foreign, _slow, _jpeg_processes, _tiff_layouts,
    _structures,
)


@lru_cache(maxsize=1)
def _build() -> tuple[HostileCase, ...]:
    cases = tuple(case for build in _BUILDERS for case in build())
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return cases
