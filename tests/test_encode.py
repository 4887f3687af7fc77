"""Encoding pictures: PNG bytes and files decode to the same RGB pixels; JPEG is close; bad input is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gradcam import encode


def opened(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as picture:
        return str(picture.format), np.asarray(picture.convert("RGB"))


@pytest.fixture
def picture(rng) -> np.ndarray:
    """A non-square RGB picture whose red and blue channels differ everywhere, so a BGR swap shows."""
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image[..., 0] = 250
    image[..., 2] = 5
    return image


@pytest.mark.parametrize("compact", [False, True])
def test_png_bytes_decode_to_the_same_rgb_pixels(picture, compact):
    before = picture.copy()
    kind, pixels = opened(encode.png(picture, compact=compact))
    assert kind == "PNG" and np.array_equal(pixels, picture)
    assert np.array_equal(picture, before), "the picture was modified"


def test_compact_png_is_smaller(rng):
    smooth = np.repeat(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], 120, axis=0).repeat(3, axis=2)
    assert len(encode.png(smooth, compact=True)) < len(encode.png(smooth))


def test_jpeg_bytes_are_close_to_the_picture_and_quality_matters(picture):
    kind, pixels = opened(encode.jpeg(picture))
    assert kind == "JPEG" and pixels.shape == picture.shape
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 60  # red stays red, blue stays low: no BGR swap
    assert len(encode.jpeg(picture, 30)) < len(encode.jpeg(picture, 95))


def test_files_hold_the_same_bytes(picture, tmp_path):
    encode.write_png(tmp_path / "a.png", picture)
    encode.write_jpeg(tmp_path / "a.jpg", picture, 70)
    assert (tmp_path / "a.png").read_bytes() == encode.png(picture)
    assert (tmp_path / "a.jpg").read_bytes() == encode.jpeg(picture, 70)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
    ids=["grey", "rgba", "float"],
)
def test_what_is_not_an_rgb_picture_is_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="RGB uint8"):
        encode.png(bad)
    with pytest.raises(ValueError, match="RGB uint8"):
        encode.write_jpeg(tmp_path / "x.jpg", bad)
    assert not (tmp_path / "x.jpg").exists()


def test_a_jpeg_quality_out_of_range_is_refused(picture):
    with pytest.raises(ValueError, match="between 1 and 100"):
        encode.jpeg(picture, 0)


def test_an_unwritable_path_is_an_os_error(picture, tmp_path):
    with pytest.raises(OSError):
        encode.write_png(tmp_path / "missing" / "a.png", picture)
