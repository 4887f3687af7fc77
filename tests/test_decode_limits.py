"""gradcam.decode_limits: what a file's structure would make a reader do, refused before any reader runs.

Each case is a file whose header promises little and whose reader would do much;
each is built here, is refused in well under a second (the benchmark measures
the honest worst cases), and has a neighbour just inside the limit that loads.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gradcam import load_image
from gradcam.config import (
    MAX_GIF_BLOCKS,
    MAX_GIF_COMMENT_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    MAX_RLE_BMP_PIXELS,
)
from gradcam.decode_limits import jpeg_layout
from gradcam.errors import GradCAMError, ImageTooComplexError, ImageTooLargeError, InvalidImageError
from tests.hostile import (
    JARGON,
    _chunk,
    _heif,
    _png_header,
    _save,
    gif_with,
    handmade_heic_grid,
    heic_tile,
    rle_bmp,
)

_PIECES = r"file is made of far more pieces than cameras and image editors write, and would take too long to read\."


@pytest.fixture
def decoders_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the format readers Pillow starts (their factories parse the header) and the decoders it makes."""
    Image.init()
    started: list[str] = []
    for name, (factory, accept) in list(Image.OPEN.items()):

        def recording(fp: object, filename: object, _name: str = name, _factory: object = factory) -> object:
            started.append(_name)
            return _factory(fp, filename)  # type: ignore[operator]

        monkeypatch.setitem(Image.OPEN, name, (recording, accept))
    return started


def refused(data: bytes, error: type[GradCAMError], message: str) -> str:
    with pytest.raises(error, match=message) as caught:
        load_image(data, max_side=1280)
    text = str(caught.value)
    assert type(caught.value) is error and not JARGON.search(text) and text.endswith(".") and "\n" not in text, text
    return text


# --- JPEG -------------------------------------------------------------------------------------------


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    return _save(Image.new("RGB", size, (20, 200, 40)), "JPEG")


def test_a_jpeg_of_more_segments_than_the_limit_is_refused_before_pillow_reads_them(decoders_run: list[str]) -> None:
    base = _jpeg()
    spare = MAX_JPEG_SEGMENTS - jpeg_layout(base).segments
    at_limit = base[:2] + b"\xff\xfe\x00\x02" * spare + base[2:]  # empty comments
    assert load_image(at_limit).shape == (48, 64, 3)
    decoders_run.clear()
    refused(base[:2] + b"\xff\xfe\x00\x02" * (spare + 1) + base[2:], ImageTooComplexError, "JPEG " + _PIECES)
    assert decoders_run == []


def test_stray_bytes_between_segments_are_skipped_a_few_but_not_a_flood(decoders_run: list[str]) -> None:
    base = _jpeg()
    end = 4 + int.from_bytes(base[4:6], "big")  # after the first segment (APP0): the file still starts as a JPEG
    assert base[2:4] == b"\xff\xe0"
    assert load_image(base[:end] + bytes(100) + base[end:]).shape == (48, 64, 3)  # the JPEG library skips them too
    refused(base[:end] + bytes(70_000) + base[end:], ImageTooComplexError, "JPEG " + _PIECES)
    refused(base[:end] + b"\xff" * 70_000 + base[end:], ImageTooComplexError, "JPEG " + _PIECES)  # fill bytes


# --- PNG ---------------------------------------------------------------------------------------------


def _png_chunks(before: int, after: int = 0) -> bytes:
    rows = b"\x00" + bytes(64)
    idat = _chunk(b"IDAT", zlib.compress(rows * 64))
    empty = _chunk(b"ruSt", b"")  # an ancillary chunk of no known type: Pillow reads and skips it
    return _png_header(64, 64, 8, 0) + empty * before + idat + empty * after + _chunk(b"IEND", b"")


def test_a_png_of_more_chunks_than_the_limit_is_refused_before_pillow_reads_them(decoders_run: list[str]) -> None:
    assert load_image(_png_chunks(MAX_PNG_CHUNKS - 2)).shape == (64, 64, 3)  # with IHDR and IDAT: the limit
    decoders_run.clear()
    refused(_png_chunks(MAX_PNG_CHUNKS - 1), ImageTooComplexError, "PNG " + _PIECES)
    refused(_png_chunks(10, MAX_PNG_CHUNKS), ImageTooComplexError, "PNG " + _PIECES)  # after the image too
    assert decoders_run == []


def test_an_animated_png_counts_only_the_chunks_of_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    apng = _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=10)
    end = apng.rfind(b"IEND") - 4
    later = apng[:end] + _chunk(b"ruSt", b"") * (MAX_PNG_CHUNKS + 1) + apng[end:]  # after the first frame's data
    rgb = load_image(later)
    assert rgb.shape == (16, 16, 3) and tuple(rgb[0, 0]) == (255, 0, 0)


def test_text_and_colour_profile_chunks_that_inflate_without_end_are_refused() -> None:
    small = _png_header(16, 16, 8, 0)
    idat, end = _chunk(b"IDAT", zlib.compress((b"\x00" + bytes(16)) * 16)), _chunk(b"IEND", b"")
    profile = _chunk(b"iCCP", b"p\x00\x00" + zlib.compress(bytes(20_000_000), 9))  # 20 MB from 20 kB
    refused(small + profile + idat + end, InvalidImageError, r"^This image file is damaged")
    text = _chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * 2_000_000, 9))  # over Pillow's 1 MB per chunk
    refused(small + text + idat + end, InvalidImageError, r"^This image file is damaged")


# --- GIF ---------------------------------------------------------------------------------------------


def test_a_gif_of_more_pieces_before_its_image_than_the_limit_is_refused(decoders_run: list[str]) -> None:
    assert load_image(gif_with(b"\x21\xfe\x00" * MAX_GIF_BLOCKS)).shape == (16, 16, 3)  # empty comments
    decoders_run.clear()
    refused(gif_with(b"\x21\xfe\x00" * (MAX_GIF_BLOCKS + 1)), ImageTooComplexError, "GIF " + _PIECES)
    many_sub_blocks = b"\x21\x01" + b"\x01x" * (MAX_GIF_BLOCKS + 1) + b"\x00"  # one extension, one-byte sub-blocks
    refused(gif_with(many_sub_blocks), ImageTooComplexError, "GIF " + _PIECES)
    refused(gif_with(b"\x00" * (MAX_GIF_BLOCKS + 1)), ImageTooComplexError, "GIF " + _PIECES)  # stray bytes
    assert decoders_run == []


def test_a_gif_comment_longer_than_the_limit_is_refused_a_short_one_read() -> None:
    def comment(size: int) -> bytes:
        whole, rest = divmod(size, 255)
        return b"\x21\xfe" + (b"\xff" + b"c" * 255) * whole + (bytes([rest]) + b"c" * rest if rest else b"") + b"\x00"

    assert load_image(gif_with(comment(MAX_GIF_COMMENT_BYTES))).shape == (16, 16, 3)
    refused(gif_with(comment(MAX_GIF_COMMENT_BYTES + 1)), ImageTooComplexError, r"more than 64 kB of comments")


def test_a_gif_frame_reaching_beyond_its_screen_counts_with_the_size_it_makes() -> None:
    data = bytearray(gif_with(b""))
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 10_000, 10_000)  # the frame, not the 16 x 16 screen
    with pytest.warns(Image.DecompressionBombWarning):
        refused(bytes(data), ImageTooLargeError, r"10000 x 10000 pixels, which is larger than the 40 megapixel")


# --- BMP and icons ---------------------------------------------------------------------------------------


def test_a_run_length_bmp_over_its_limit_is_refused_before_pillow_opens_it(decoders_run: list[str]) -> None:
    side = int(MAX_RLE_BMP_PIXELS**0.5)
    assert side * side == MAX_RLE_BMP_PIXELS
    rgb = load_image(rle_bmp(side, side))  # runs of 255 pixels: quick to decode
    assert rgb.shape == (side, side, 3) and tuple(rgb[0, 0]) == (128, 128, 128)
    decoders_run.clear()
    refused(rle_bmp(side + 1, side), ImageTooLargeError, r"2001 x 2000 pixels and run-length encoded.* at most 4 mega")
    assert decoders_run == []
    assert MAX_RLE_BMP_PIXELS * 10 <= MAX_IMAGE_PIXELS, "uncompressed BMPs keep the ordinary limit"


def test_an_icon_holding_a_run_length_bitmap_over_the_limit_is_refused_before_it_is_decoded(
    decoders_run: list[str],
) -> None:
    bitmap = rle_bmp(2001, 2000)[14:]  # the bitmap of an icon: no file header
    info = bytearray(bitmap)
    info[8:12] = struct.pack("<i", 4000)  # an icon's bitmap height counts its mask rows too
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 8, len(info), 22) + bytes(info)
    refused(icon, ImageTooLargeError, r"icon image is 2001 x 2000 pixels and run-length encoded")
    assert decoders_run == [], "Pillow decodes an icon's picture as it opens the file"


def test_an_icon_holding_a_png_of_too_many_chunks_is_refused_before_it_is_decoded(decoders_run: list[str]) -> None:
    png = _png_chunks(MAX_PNG_CHUNKS)
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 64, 64, 0, 0, 1, 32, len(png), 22) + png
    refused(icon, ImageTooComplexError, "PNG " + _PIECES)
    assert decoders_run == []
    fewer = _png_chunks(100)
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 64, 64, 0, 0, 1, 32, len(fewer), 22) + fewer
    assert load_image(icon).shape == (64, 64, 3)


# --- HEIC --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tile() -> tuple[bytes, bytes]:
    if not _heif():
        pytest.skip("pillow_heif is not installed")
    return heic_tile((512, 512))


def test_a_heic_grid_is_counted_by_its_tiles_whole_not_by_the_size_it_claims(tile: tuple[bytes, bytes]) -> None:
    # libheif decodes every tile whole: 900 tiles of 512 x 512 are 236 megapixels for a 64 x 64 image.
    grid = handmade_heic_grid(tile, (512, 512), (30, 30), (64, 64))
    assert len(grid) < 50_000
    refused(grid, ImageTooLargeError, r"HEIC image is stored in tiles that add up to 236 megapixels, more than the 40")
    # Within the limit, the same tiles still make an image: 6 x 6 tiles (9.4 megapixels) for 3000 x 3000.
    honest = load_image(handmade_heic_grid(tile, (512, 512), (6, 6), (3000, 3000)), max_side=600)
    assert honest.shape == (600, 600, 3) and honest[300, 300, 0] > 200 and honest[300, 300, 1] < 60


def test_heic_grids_written_by_the_encoder_still_load() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    _heif()
    pillow_heif.options.GRID_TILE_SIZE = 256
    try:
        data = _save(Image.new("RGB", (1000, 700), (200, 30, 30)), "HEIF", quality=50)
    finally:
        pillow_heif.options.GRID_TILE_SIZE = 0
    assert data.count(b"grid") >= 1
    rgb = load_image(data)
    assert rgb.shape == (700, 1000, 3) and rgb[350, 500, 0] > 150


# --- WebP ---------------------------------------------------------------------------------------------------


def test_an_animated_webp_is_limited_by_its_canvas_and_decoded_to_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    webp = bytearray(_save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    assert webp[12:16] == b"VP8X"
    rgb = load_image(bytes(webp))
    assert rgb.shape == (16, 16, 3) and tuple(rgb[8, 8]) == (255, 0, 0)
    webp[24:30] = (16_383 - 1).to_bytes(3, "little") * 2  # the canvas: 16383 x 16383, 268 megapixels
    with pytest.raises(ImageTooLargeError, match="megapixel limit"):
        load_image(bytes(webp))


def test_float_and_32_bit_images_scale_into_8_bits() -> None:
    small = np.array([[0.0, 1.0, 254.6, 255.0, np.nan, -5.0, 7.0, 8.0]] * 8, np.float32)
    rgb = load_image(Image.fromarray(small, "F"))
    assert rgb[0, :, 0].tolist() == [0, 1, 255, 255, 0, 0, 7, 8]
    wide = np.array([[0, 300, 32768, 65535, 70_000, -1, 257, 514]] * 8, np.int32)
    rgb = load_image(Image.fromarray(wide, "I"))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255, 255, 0, 1, 2] and (rgb[..., 0] == rgb[..., 2]).all()
    buffer = io.BytesIO()
    Image.fromarray(small, "F").save(buffer, "TIFF", compression="tiff_adobe_deflate")
    assert load_image(buffer.getvalue())[0, :, 1].tolist() == [0, 1, 255, 255, 0, 0, 7, 8]
