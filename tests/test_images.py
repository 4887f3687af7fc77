"""gradcam.images: every hostile upload becomes an upright RGB array or a clear, specific error."""

from __future__ import annotations

import io
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradcam import load_image
from gradcam.config import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_JPEG_PIXELS, MAX_JPEG_SCANS, MIN_IMAGE_SIDE
from gradcam.errors import GradCAMError, ImageTooComplexError, ImageTooLargeError, ImageTooSmallError, InvalidImageError
from tests.hostile import (
    BLUE,
    JARGON,
    JPEG_FRAMES,
    RED,
    HostileCase,
    case_named,
    handmade_tiff,
    hostile_cases,
    many_scan_jpeg,
    minimal_jpeg,
    write_case,
)

from .helpers import in_child

CASES = hostile_cases()
OK = [case for case in CASES if case.outcome == "ok"]
ERRORS = [case for case in CASES if case.outcome == "error"]


def by_name(cases: list[HostileCase]) -> dict[str, object]:
    return {"argvalues": cases, "ids": [case.name for case in cases]}


def assert_loaded(rgb: np.ndarray, case: HostileCase) -> None:
    assert isinstance(rgb, np.ndarray)
    assert rgb.dtype == np.uint8
    assert rgb.shape == case.shape
    assert rgb.flags.c_contiguous and rgb.flags.writeable
    for (y, x), colour in case.pixels:
        got = rgb[y, x].astype(int)
        assert np.abs(got - colour).max() <= case.tolerance, f"{case.name} at (y={y}, x={x}): {tuple(got)} != {colour}"


def assert_friendly(exc: BaseException, case: HostileCase) -> None:
    assert type(exc) is case.error, f"{case.name}: expected {case.error.__name__}, got {type(exc).__name__}: {exc}"
    assert isinstance(exc, GradCAMError)  # the UI shows it as one line instead of logging a bug
    message = str(exc)
    assert re.search(case.message, message), f"{case.name}: {message!r} does not match {case.message!r}"
    assert not JARGON.search(message), f"{case.name}: library jargon reaches the user: {message!r}"
    assert "\n" not in message and message.endswith("."), message


# --- the corpus, from bytes and from a file ---------------------------------------------------


def test_corpus_covers_the_cases_every_reader_must_handle() -> None:
    names = {case.name for case in CASES}
    assert len(names) == len(CASES)
    assert {"text", "text_named_png", "empty", "svg", "jpeg_half", "header_100000px", "over_pixel_limit"} <= names
    assert {"one_pixel", "tall_20x2000", "rgba_transparent", "cmyk_jpeg", "gray_16bit", "rgb_16bit"} <= names
    assert {"animated_gif", "multipage_tiff", "exif_orientation_6", "ico", "all_black", "one_colour"} <= names
    assert all(len(case.data) < 32_000 for case in CASES), "the corpus must stay small"


@pytest.mark.parametrize("case", **by_name(OK))
def test_good_files_load_as_upright_rgb_from_bytes(case: HostileCase) -> None:
    assert_loaded(load_image(case.data), case)


@pytest.mark.parametrize("case", **by_name(OK))
def test_good_files_load_as_upright_rgb_from_a_path(case: HostileCase, tmp_path: Path) -> None:
    assert_loaded(load_image(write_case(case, tmp_path)), case)


@pytest.mark.parametrize("case", **by_name(ERRORS))
def test_bad_files_raise_a_specific_friendly_error_from_bytes(case: HostileCase) -> None:
    with pytest.raises(case.error, match=case.message) as caught:
        load_image(case.data)
    assert_friendly(caught.value, case)


@pytest.mark.parametrize("case", **by_name(ERRORS))
def test_bad_files_raise_a_specific_friendly_error_from_a_path(case: HostileCase, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    with pytest.raises(case.error, match=case.message) as caught:
        load_image(str(path))
    assert_friendly(caught.value, case)
    assert str(tmp_path) not in str(caught.value), "server paths must not reach the user"


@pytest.mark.parametrize("case", **by_name(CASES))
def test_reading_a_file_leaves_no_file_open(case: HostileCase, tmp_path: Path) -> None:
    path = write_case(case, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_image(path)
        except InvalidImageError:
            pass
        # An image still holding its file warns here, when reference counting frees it (no gc.collect
        # needed: it takes a second with torch loaded, and would blame earlier tests' garbage).
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks


def test_library_reasons_stay_in_the_chained_exception_for_the_operator() -> None:
    with pytest.raises(InvalidImageError, match="damaged") as caught:
        load_image(case_named("bmp_bad_compression").data)
    assert caught.value.__cause__ is not None
    assert "compression" in str(caught.value.__cause__)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="megapixel limit") as caught:
        load_image(case_named("header_100000px").data)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombError)


# --- the details the corpus cases stand for ---------------------------------------------------


def test_transparent_pixels_become_white_whatever_colour_they_hide() -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (200, 30, 30)  # alpha 0 everywhere
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, "PNG")
    assert (load_image(buffer.getvalue()) == 255).all()


def test_16_bit_grayscale_uses_the_full_16_bit_range() -> None:
    values = np.array([[0, 1, 128, 255, 256, 32768, 65280, 65535] * 2] * 8, np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    rgb = load_image(buffer.getvalue())
    expected = np.round(values / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_exif_orientation_turns_the_photo_upright() -> None:
    rgb = load_image(case_named("exif_orientation_6").data)
    stored = np.asarray(Image.open(io.BytesIO(case_named("exif_orientation_6").data)))
    assert stored.shape == (32, 48, 3) and rgb.shape == (48, 32, 3)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60)
    ys, xs = np.nonzero(red)
    assert ys.max() < 20 and xs.min() > 12, "the marked corner must end top-right"
    assert (stored[:12, :12, 0] > 200).all(), "stored sideways, marked top-left"


def test_first_frame_even_when_a_pil_image_was_left_on_a_later_frame() -> None:
    image = Image.open(io.BytesIO(case_named("animated_gif").data))
    image.seek(2)
    rgb = load_image(image)
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    image.load()  # the caller's image is not closed


def test_a_pil_image_in_any_mode_is_accepted() -> None:
    for mode, colour in [("L", 90), ("RGB", (1, 2, 3)), ("RGBA", (1, 2, 3, 255)), ("CMYK", (0, 0, 0, 0)), ("1", 1)]:
        rgb = load_image(Image.new(mode, (10, 12), colour))
        assert rgb.shape == (12, 10, 3) and rgb.dtype == np.uint8, mode


@pytest.mark.parametrize("name", ["empty.png", "empty.jpg"])
def test_an_empty_file_is_named_in_the_message(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=rf"^{re.escape(name)} is empty\. Please choose an image file\.$"):
        load_image(path)


def test_a_missing_file_or_a_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"missing\.png is not a file\."):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError, match=r"is not a file\."):
        load_image(tmp_path)


def test_the_size_limits_come_from_the_configuration() -> None:
    with pytest.raises(ImageTooSmallError, match=rf"at least {MIN_IMAGE_SIDE} pixels"):
        load_image(np.zeros((MIN_IMAGE_SIDE - 1, 100), np.uint8))
    assert load_image(np.zeros((MIN_IMAGE_SIDE, 100), np.uint8)).shape == (MIN_IMAGE_SIDE, 100, 3)
    limit = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (MAX_IMAGE_PIXELS // 8000 + 1, 8000, 3))  # no memory
    with pytest.raises(ImageTooLargeError, match=rf"8000 x {limit.shape[0]} pixels, which is larger than"):
        load_image(limit)


# --- numpy arrays -----------------------------------------------------------------------------


def gradient(shape: tuple[int, ...]) -> np.ndarray:
    return (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape)


@pytest.mark.parametrize("shape", [(12, 20), (12, 20, 1)], ids=["2d", "one_channel"])
def test_gray_arrays_repeat_into_three_channels(shape: tuple[int, ...]) -> None:
    array = gradient(shape)
    rgb = load_image(array)
    assert rgb.shape == (12, 20, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], array.reshape(12, 20))


def test_an_rgb_array_comes_back_equal_but_as_a_new_array() -> None:
    array = gradient((12, 20, 3))
    rgb = load_image(array)
    np.testing.assert_array_equal(rgb, array)
    assert not np.shares_memory(rgb, array)


def test_an_rgba_array_is_composited_over_white() -> None:
    array = np.zeros((12, 20, 4), np.uint8)
    array[:, :10] = (10, 20, 30, 255)  # opaque
    array[:, 10:] = (10, 20, 30, 0)  # transparent
    array[0, 0] = (0, 0, 0, 128)  # half-transparent black
    rgb = load_image(array)
    assert rgb.shape == (12, 20, 3)
    assert tuple(rgb[5, 5]) == (10, 20, 30)
    assert (rgb[:, 10:] == 255).all()
    assert np.abs(rgb[0, 0].astype(int) - 127).max() <= 1


def test_a_strided_array_gives_a_contiguous_correct_image() -> None:
    array = gradient((12, 20, 3))
    view = array[::-1, ::2]
    rgb = load_image(view)
    np.testing.assert_array_equal(rgb, view)
    assert rgb.flags.c_contiguous


@pytest.mark.parametrize(
    "array",
    [gradient((12, 20)), gradient((12, 20, 1)), gradient((12, 20, 3)), gradient((12, 20, 4))],
    ids=["2d", "one_channel", "rgb", "rgba"],
)
def test_the_input_array_is_not_modified(array: np.ndarray) -> None:
    before = array.copy()
    rgb = load_image(array)
    rgb[...] = 0
    np.testing.assert_array_equal(array, before)
    array.setflags(write=False)  # a read-only array (as Explanation holds) is accepted
    load_image(array)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int64, np.bool_])
def test_an_array_of_the_wrong_dtype_is_refused(dtype: type) -> None:
    with pytest.raises(InvalidImageError, match=rf"Expected a uint8 image array, got {np.dtype(dtype).name}\."):
        load_image(np.zeros((12, 20, 3), dtype))


@pytest.mark.parametrize("shape", [(20,), (12, 20, 2), (12, 20, 5), (1, 12, 20, 3)])
def test_an_array_of_the_wrong_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(f"got {shape}")):
        load_image(np.zeros(shape, np.uint8))


def test_a_tiny_array_is_too_small() -> None:
    with pytest.raises(ImageTooSmallError, match=r"only 3 x 2 pixels"):
        load_image(np.zeros((2, 3, 3), np.uint8))


# --- only the formats we promise, decoded in process -------------------------------------------

#: The corpus's files in formats we refuse, and the format Pillow's full set of readers sees in each.
FOREIGN = {
    "jpeg2000": "JPEG2000", "avif": "AVIF", "qoi": "QOI", "tga": "TGA", "pcx": "PCX", "sgi": "SGI", "icns": "ICNS",
    "dds": "DDS", "xbm": "XBM", "msp": "MSP", "im": "IM", "ppm": "PPM", "psd": "PSD", "eps": "EPS",
    "eps_named_jpg": "EPS",
}


@pytest.fixture
def readers_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every format reader Pillow starts (its factory, which parses the header) and every decoder."""
    Image.init()
    started: list[str] = []
    for name, (factory, accept) in list(Image.OPEN.items()):

        def recording(fp: object, filename: object, _name: str = name, _factory: object = factory) -> object:
            started.append(_name)
            return _factory(fp, filename)  # type: ignore[operator]

        monkeypatch.setitem(Image.OPEN, name, (recording, accept))
    getdecoder = Image._getdecoder

    def decoder(*args: object, **kwargs: object) -> object:
        started.append(f"decoder:{args[1]}")
        return getdecoder(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "_getdecoder", decoder)
    return started


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_formats_we_do_not_promise_are_refused_before_their_reader_runs(name: str, readers_run: list[str]) -> None:
    case = case_named(name)
    with Image.open(io.BytesIO(case.data)) as image:  # the case is real: Pillow, unrestricted, reads it
        assert image.format == FOREIGN[name]
    readers_run.clear()
    with pytest.raises(InvalidImageError, match=r"^This file is not an image we can read\. Please use a JPEG, PNG"):
        load_image(case.data)
    assert readers_run == [], f"{name}: {readers_run} ran on a file we do not decode"


def test_the_message_names_the_formats_people_can_use() -> None:
    with pytest.raises(InvalidImageError, match=r"Please use a JPEG, PNG, GIF, BMP, TIFF, WebP or HEIC file\.$"):
        load_image(case_named("eps_named_jpg").data)


def test_postscript_named_cat_jpg_never_reaches_ghostscript(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from PIL import EpsImagePlugin

    def no_ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript was asked to render an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    case = case_named("eps_named_jpg")
    assert len(case.data) == 58 and case.filename == "cat.jpg"
    with pytest.raises(InvalidImageError, match="not an image we can read"):
        load_image(write_case(case, tmp_path))


def test_a_pil_image_the_caller_opened_in_a_foreign_format_is_refused_too() -> None:
    with Image.open(io.BytesIO(case_named("qoi").data)) as image:
        with pytest.raises(InvalidImageError, match="not an image"):
            load_image(image)


def test_heic_photos_are_read_when_pillow_heif_is_installed() -> None:
    pytest.importorskip("pillow_heif")
    case = case_named("heic")
    assert_loaded(load_image(case.data), case)


# --- bounded work per file ---------------------------------------------------------------------


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding(readers_run: list[str]) -> None:
    # 16 megapixels and 400 extra scans: decoding it takes seconds (minutes with more scans); refusing it, none.
    data = many_scan_jpeg((4000, 4000), 400)
    assert len(data) < 200_000
    with pytest.raises(ImageTooComplexError, match=rf"more than {MAX_JPEG_SCANS} passes") as caught:
        load_image(data)
    assert_friendly(caught.value, case_named("jpeg_many_scans"))
    assert not [name for name in readers_run if name.startswith("decoder:")], readers_run


def test_the_scan_limit_is_exact() -> None:
    base = many_scan_jpeg((40, 24), 0)
    scans = base.count(b"\xff\xda")
    assert 2 < scans < MAX_JPEG_SCANS, "the encoder writes an ordinary progression"
    assert load_image(many_scan_jpeg((40, 24), MAX_JPEG_SCANS - scans)).shape == (24, 40, 3)
    with pytest.raises(ImageTooComplexError):
        load_image(many_scan_jpeg((40, 24), MAX_JPEG_SCANS - scans + 1))


def test_scan_markers_inside_metadata_are_not_counted() -> None:
    image = Image.new("RGB", (40, 24), (90, 140, 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True, comment=b"\xff\xda" * 200)  # a comment segment full of scan markers
    assert load_image(buffer.getvalue()).shape == (24, 40, 3)


def test_an_icon_hiding_a_huge_picture_is_refused_before_decoding(readers_run: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns "not the expected size" once it has decoded the picture
        with pytest.raises(ImageTooLargeError, match="megapixel limit"):
            load_image(case_named("ico_hidden_bomb").data)
    assert readers_run == []


def test_a_jpeg_compressed_tiff_still_loads() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "TIFF", compression="jpeg")
    rgb = load_image(buffer.getvalue())
    assert rgb.shape == (48, 64, 3) and np.abs(rgb[24, 32].astype(int) - (200, 30, 30)).max() <= 12


# --- big photos shrunk (max_side) ---------------------------------------------------------------


def with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with the size in its frame header replaced: a header that claims ``width`` x ``height``."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        start = jpeg.find(marker)
        if start >= 0:
            head = start + 5  # marker (2), length (2), precision (1), then height and width
            return jpeg[:head] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[head + 4 :]
    raise AssertionError("no frame header")


@pytest.fixture(scope="module")
def photo_48mp() -> bytes:
    """A 48-megapixel JPEG (8000 x 6000) of a flat blue with a red top-left block, under 1 MB."""
    image = Image.new("RGB", (8000, 6000), (90, 140, 200))
    image.paste((255, 0, 0), (0, 0, 800, 600))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    assert len(buffer.getvalue()) < 1_000_000
    return buffer.getvalue()


def test_a_48_megapixel_photo_is_shrunk_when_asked(photo_48mp: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    resized: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def recording(self: Image.Image, *args: object, **kwargs: object) -> Image.Image:
        resized.append(self.size)
        return resize(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", recording)
    rgb = load_image(photo_48mp, max_side=1280)
    assert rgb.shape == (960, 1280, 3)
    assert np.abs(rgb[30, 30].astype(int) - (255, 0, 0)).max() <= 8
    assert np.abs(rgb[500, 700].astype(int) - (90, 140, 200)).max() <= 8
    assert resized == [(2000, 1500)], "decoded at a quarter of its size by the JPEG library, then resized"


def test_without_max_side_a_48_megapixel_photo_is_refused_as_before(photo_48mp: bytes) -> None:
    with pytest.raises(ImageTooLargeError, match=r"8000 x 6000 pixels, which is larger than the 40 megapixel limit"):
        load_image(photo_48mp)


def test_a_max_side_too_large_to_bring_the_photo_under_the_limit_is_refused(photo_48mp: bytes) -> None:
    with pytest.raises(ImageTooLargeError, match="40 megapixel limit"):
        load_image(photo_48mp, max_side=7000)  # 1/1 scale: draft cannot reduce it


def test_jpegs_beyond_the_jpeg_limit_or_progressive_ones_beyond_the_pixel_limit_are_refused() -> None:
    baseline = with_size(_jpeg((40, 24), progressive=False), 12_000, 9_000)  # 108 megapixels in the header
    with (
        pytest.warns(Image.DecompressionBombWarning),  # Pillow's own warning, over 89 megapixels
        pytest.raises(ImageTooLargeError, match=r"12000 x 9000 pixels, which is larger than the 100 megapixel limit"),
    ):
        load_image(baseline, max_side=1280)
    progressive = with_size(_jpeg((40, 24), progressive=True), 8_000, 6_000)  # keeps every coefficient in memory
    with pytest.raises(ImageTooLargeError, match=r"8000 x 6000 pixels, which is larger than the 40 megapixel limit"):
        load_image(progressive, max_side=1280)
    assert MAX_JPEG_PIXELS == 100_000_000


def _jpeg(size: tuple[int, int], *, progressive: bool) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(buffer, "JPEG", progressive=progressive)
    return buffer.getvalue()


def test_other_formats_keep_the_pixel_limit_and_are_resized_after_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="40 megapixel limit"):
        load_image(case_named("over_pixel_limit").data, max_side=1280)
    rgb = load_image(case_named("tall_20x2000").data, max_side=1000)
    assert rgb.shape == (1000, 10, 3)
    assert np.abs(rgb[100, 5].astype(int) - RED).max() <= 2 and np.abs(rgb[900, 5].astype(int) - BLUE).max() <= 2


def test_shrinking_keeps_the_photo_upright() -> None:
    rgb = load_image(case_named("exif_orientation_6").data, max_side=24)
    assert rgb.shape == (24, 16, 3)
    assert rgb[2, 13, 0] > 200 and rgb[2, 13, 1] < 80, "the marked corner stays top-right"


@pytest.mark.parametrize("source", ["bytes", "array", "pil"])
def test_max_side_rounds_like_the_app_and_never_enlarges(source: str) -> None:
    array = np.full((533, 799, 3), 77, np.uint8)
    image = {"bytes": _png_bytes(array), "array": array, "pil": Image.fromarray(array)}[source]
    assert load_image(image, max_side=128).shape == (round(533 * 128 / 799), 128, 3)
    np.testing.assert_array_equal(load_image(image, max_side=800), load_image(image))


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("max_side", [0, -5, 12.5, True])
def test_a_bad_max_side_is_a_programming_error(max_side: object) -> None:
    with pytest.raises(ValueError, match="max_side must be a positive integer"):
        load_image(np.zeros((12, 20, 3), np.uint8), max_side=max_side)  # type: ignore[arg-type]


# --- JPEG frame types: reduced-scale decoding only where the JPEG library scales ----------------

#: DCT frames libjpeg-turbo decodes at 1/2, 1/4 or 1/8 scale: Huffman or arithmetic coded, sequential or progressive.
SCALABLE = (0xC0, 0xC1, 0xC2, 0xC9, 0xCA)
#: Decoded, but only at full size: libjpeg-turbo ignores the scale of a lossless frame.
LOSSLESS = 0xC3
#: Processes libjpeg-turbo does not decode: hierarchical (differential) frames and arithmetic-coded lossless ones.
REFUSED = tuple(frame for frame in JPEG_FRAMES if frame not in (*SCALABLE, LOSSLESS))
_FRAME_MESSAGE = r"^This JPEG is stored in a way that cameras and photo editors do not use"


def _shape(data: bytes, max_side: int | None) -> tuple[int, ...]:
    return load_image(data, max_side=max_side).shape


@pytest.mark.slow  # a child process per case
@pytest.mark.parametrize("components", [1, 3], ids=["gray", "colour"])
@pytest.mark.parametrize("frame", list(JPEG_FRAMES), ids=[f"SOF{frame - 0xC0}" for frame in JPEG_FRAMES])
def test_no_jpeg_frame_type_brings_the_process_down(frame: int, components: int) -> None:
    # 4000 pixels wide: more than twice max_side, so the app's reduced-scale decoding is asked for.
    data = minimal_jpeg(4000, 16, frame, components)
    assert len(data) < 200
    child = in_child(_shape, data, 1280)
    assert child.exitcode == 0, f"{JPEG_FRAMES[frame]} JPEG: the process ended with {child.exitcode} (negative: signal)"
    if frame in REFUSED:
        assert child.returned is not None and child.returned[0] == "raised", child
        kind, message = str(child.returned[1]).split(": ", 1)
        assert kind == "InvalidImageError" and re.search(_FRAME_MESSAGE, message), child
    else:
        assert child.returned == ("returned", (MIN_IMAGE_SIDE, 1280, 3)), f"{JPEG_FRAMES[frame]} JPEG: {child}"


def test_a_lossless_jpeg_is_decoded_at_full_size_and_never_at_a_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    def no_draft(*args: object, **kwargs: object) -> None:
        raise AssertionError("reduced-scale decoding asked of a lossless JPEG")  # instead of overflowing the heap

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", no_draft)
    for components in (1, 3):
        data = minimal_jpeg(4000, 16, LOSSLESS, components)
        rgb = load_image(data, max_side=1280)
        assert rgb.shape == (MIN_IMAGE_SIDE, 1280, 3) and (rgb == 128).all()
        assert load_image(data).shape == (16, 4000, 3)


def test_a_lossless_jpeg_keeps_the_pixel_limit_even_when_it_is_to_be_shrunk() -> None:
    # A baseline JPEG of this size would be decoded at 1/8 scale; a lossless one would be decoded whole.
    assert load_image(minimal_jpeg(8000, 6000, 0xC0), max_side=1280).shape == (960, 1280, 3)
    with pytest.raises(ImageTooLargeError, match=r"8000 x 6000 pixels, which is larger than the 40 megapixel limit"):
        load_image(minimal_jpeg(8000, 6000, LOSSLESS), max_side=1280)


@pytest.mark.parametrize("frame", REFUSED, ids=[JPEG_FRAMES[frame] for frame in REFUSED])
def test_jpeg_processes_the_library_does_not_decode_are_refused_before_any_decoder_runs(
    frame: int, readers_run: list[str]
) -> None:
    with pytest.raises(InvalidImageError, match=_FRAME_MESSAGE) as caught:
        load_image(minimal_jpeg(4000, 16, frame), max_side=1280)
    assert type(caught.value) is InvalidImageError
    message = str(caught.value)
    assert not JARGON.search(message) and message.endswith(".") and "\n" not in message
    assert not [name for name in readers_run if name.startswith("decoder:")], readers_run


@pytest.mark.parametrize("frame", SCALABLE, ids=[JPEG_FRAMES[frame] for frame in SCALABLE])
def test_dct_jpegs_huffman_or_arithmetic_are_still_decoded_at_a_reduced_scale(
    frame: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    resized: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def recording(self: Image.Image, *args: object, **kwargs: object) -> Image.Image:
        resized.append(self.size)
        return resize(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", recording)
    assert load_image(minimal_jpeg(4000, 16, frame), max_side=1280).shape == (MIN_IMAGE_SIDE, 1280, 3)
    assert resized == [(2000, 8)], "decoded at half its size by the JPEG library, then resized"


# --- TIFF: the strips and tiles a decoder would decode, bounded before Pillow opens the file ------


def test_a_small_tiff_in_huge_tiles_is_refused_before_any_reader_runs(readers_run: list[str]) -> None:
    case = case_named("tiff_huge_tiles")
    assert len(case.data) < 1000
    message = r"add up to 3,221 megapixels, more than the 40 megapixel limit"
    with pytest.raises(ImageTooLargeError, match=message) as caught:
        load_image(case.data, max_side=1280)
    assert_friendly(caught.value, case)
    assert readers_run == [], "refused from the tags, before Pillow's TIFF reader parsed them"


def test_tiles_are_counted_whole_but_an_honest_tiled_tiff_loads() -> None:
    block = zlib.compress(bytes(256 * 256))
    # 6000 x 6400 = 38.4 megapixels in 24 x 25 tiles of 256 x 256 pixels: 39.3 megapixels of tiles, under the limit.
    assert load_image(handmade_tiff(6000, 6400, [block] * 600, tile=(256, 256), compression=8)).shape == (6400, 6000, 3)
    # 6000 x 6600 is under the limit too, but its 24 x 26 tiles hold 40.9 megapixels.
    with pytest.raises(ImageTooLargeError, match=r"tiles of 256 x 256 pixels that add up to 40\.9 megapixels"):
        load_image(handmade_tiff(6000, 6600, [block] * 624, tile=(256, 256), compression=8))
    rgb = load_image(case_named("tiff_tiles").data)
    np.testing.assert_array_equal(rgb[..., 0], (np.arange(32 * 64) // 8).reshape(32, 64))


def test_more_tiles_listed_than_the_image_needs_count_too() -> None:
    block = zlib.compress(bytes(1024 * 1024))
    assert load_image(handmade_tiff(1024, 1024, [block], tile=(1024, 1024), compression=8)).shape == (1024, 1024, 3)
    with pytest.raises(ImageTooLargeError, match=r"tiles of 1024 x 1024 pixels that add up to 40\.9 megapixels"):
        load_image(handmade_tiff(1024, 1024, [block] * 39, tile=(1024, 1024), compression=8))


def test_strips_beyond_the_rows_of_the_image_are_refused_before_pillow_lays_them_out(readers_run: list[str]) -> None:
    case = case_named("tiff_many_strips")
    with pytest.raises(ImageTooLargeError, match=case.message) as caught:
        load_image(case.data)
    assert_friendly(caught.value, case)
    assert readers_run == []
    # The same strips, one per row and no more: each strip's last rows and the whole image decode.
    rows = np.arange(8 * 40_000, dtype=np.uint8).reshape(8, 40_000)
    rgb = load_image(handmade_tiff(40_000, 8, [row.tobytes() for row in rows], rows_per_strip=1))
    np.testing.assert_array_equal(rgb[..., 1], rows)


@pytest.mark.parametrize(
    ("compression", "stored"),
    [(1, 32_000 - 1), (32773, 32_000 // 64 - 1), (5, 8), (8, 31)],
    ids=["raw", "packbits", "lzw", "deflate"],
)
def test_a_strip_with_fewer_bytes_than_its_compression_could_hold_its_pixels_in_is_refused(
    compression: int, stored: int, readers_run: list[str]
) -> None:
    # One strip of 4000 x 8 = 32000 gray pixels; deflate needs at least 32000 / 1032 = 31.01 bytes for them.
    data = handmade_tiff(4000, 8, [bytes(stored)], compression=compression)
    with pytest.raises(InvalidImageError, match=r"^This image file is damaged or incomplete and cannot be read\.$"):
        load_image(data)
    assert readers_run == []


def test_a_tag_written_twice_is_refused_as_libtiff_and_pillow_read_different_tiles(readers_run: list[str]) -> None:
    # libtiff keeps the first TileWidth (16384: 3.2 gigapixels of tiles), Pillow the last (16: nothing to see).
    twice = [(322, (4, "I"), (16,)), (323, (4, "I"), (16,))]
    data = handmade_tiff(196_608, 8, [bytes(16)] * 12, tile=(16_384, 16_384), compression=8, extra=twice)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.tag_v2[322], image.tag_v2[323]) == (16, 16), "Pillow's view of the tile size"
    readers_run.clear()
    with pytest.raises(InvalidImageError, match=r"^This image file is damaged and cannot be read\.$"):
        load_image(data)
    assert readers_run == []


def test_big_tiffs_are_read_and_big_endian_ones_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 200, 30)).save(buffer, "TIFF", big_tiff=True)
    assert buffer.getvalue()[:4] == b"II\x2b\x00"
    assert tuple(load_image(buffer.getvalue())[8, 12]) == (10, 200, 30)
    with pytest.raises(InvalidImageError, match="damaged"):  # Pillow reads it as a classic TIFF, libtiff does not
        load_image(b"MM\x00\x2b" + buffer.getvalue()[4:])


# --- paths: regular files only, and no more bytes than the cap --------------------------------


@pytest.mark.slow  # a child process
def test_a_pipe_or_a_link_to_a_device_is_refused_without_being_read(tmp_path: Path) -> None:
    pipe = tmp_path / "cat.png"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    device = tmp_path / "dog.png"
    device.symlink_to("/dev/zero")  # reading it would never end
    child = in_child(_read_path_error, pipe, timeout=10)
    assert child.returned == ("returned", "cat.png is a pipe (FIFO), not a regular file, so it is not read."), child
    child = in_child(_read_path_error, device, timeout=10, memory_mib=500)
    assert child.returned == ("returned", "dog.png is a device, not a regular file, so it is not read."), child


def _read_path_error(path: Path) -> str:
    try:
        load_image(path)
    except InvalidImageError as exc:
        assert type(exc) is InvalidImageError
        return str(exc)
    raise AssertionError(f"{path} was read")


@pytest.mark.slow  # a child process
def test_a_pipe_put_in_place_of_the_file_after_it_was_looked_at_does_not_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regular = tmp_path / "photo.png"
    regular.write_bytes(case_named("bmp").data)
    pipe = tmp_path / "swapped.png"
    os.mkfifo(pipe)
    real_stat = os.stat
    # os.stat says "a regular file" (as it did a moment before the swap); the open must not wait.
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if str(p) == str(pipe) else p, *a, **k))
    child = in_child(_read_path_error, pipe, timeout=10)
    assert child.returned == ("returned", "swapped.png is a pipe (FIFO), not a regular file, so it is not read."), child


@pytest.mark.slow  # a child process
def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as file:  # sparse: no disk used
        file.write(case_named("bmp").data)
        file.truncate(MAX_IMAGE_FILE_BYTES + 1)
    child = in_child(_read_path_error, huge, timeout=10, memory_mib=100)  # reading it would need 370 MB
    assert child.returned == (
        "returned",
        f"huge.png is {MAX_IMAGE_FILE_BYTES + 1:,} bytes, over the {MAX_IMAGE_FILE_BYTES:,} byte limit for an image "
        "file, so it is not read.",
    ), child
    assert MAX_IMAGE_FILE_BYTES == MAX_IMAGE_PIXELS * 8 + 50_000_000


def test_a_link_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.png").write_bytes(case_named("bmp").data)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert load_image(tmp_path / "link.png").shape == (16, 16, 3)


def test_a_long_banner_shrunk_for_the_app_stays_explainable() -> None:
    banner = np.zeros((16, 4000, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(banner).save(buffer, "PNG")
    shrunk = load_image(buffer.getvalue(), max_side=1280)
    assert shrunk.shape == (MIN_IMAGE_SIDE, 1280, 3)  # 1280 x 5 by the ratio: a little stretched instead
    assert load_image(shrunk).shape == shrunk.shape
