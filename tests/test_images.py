"""gradcam.images: every hostile upload becomes an upright RGB array or a clear, specific error."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradcam import load_image
from gradcam.config import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from gradcam.errors import GradCAMError, ImageTooLargeError, ImageTooSmallError, InvalidImageError
from tests.hostile import JARGON, HostileCase, case_named, hostile_cases, write_case

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
    assert all(len(case.data) < 20_000 for case in CASES), "the corpus must stay small"


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
