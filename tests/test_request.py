"""One request, checked once: every setting's rule, the photo's bounds, the defaults."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace

import pytest

from demo.checks import InvalidInput
from demo.errors import UserError
from demo.request import TOP_PREDICTION, Look, Photo, parse, read_photo
from demo.settings import COLORMAPS, MAX_UPLOAD_BYTES, OPACITY, THRESHOLD
from gradcam.errors import InvalidImageError

MODELS = ["VGG19", "EfficientNet-Lite0"]


def _parse(**changes):
    values = {
        "image": b"photo",
        "target": TOP_PREDICTION,
        "model": "VGG19",
        "threshold": 0.15,
        "alpha": 0.5,
        "colormap": "jet",
    }
    values.update(changes)
    return parse(*values.values(), models=MODELS, default_model="EfficientNet-Lite0")


def test_a_request_holds_the_checked_values():
    request = _parse(target="  tiger   cat ", threshold=0.3, alpha=0.25, colormap="viridis")
    assert request.target == "tiger cat" and request.model == "VGG19" and request.threshold == 0.3
    assert request.look == Look(0.25, "viridis")
    assert request.photo == Photo(b"photo", hashlib.sha256(b"photo").hexdigest())


@pytest.mark.parametrize("target", [TOP_PREDICTION, None, "", "   "])
def test_the_top_prediction_is_a_target_of_none(target):
    assert _parse(target=target).target is None


def test_missing_settings_take_the_defaults_and_the_default_model():
    request = parse(b"photo", None, None, None, None, None, models=MODELS, default_model="EfficientNet-Lite0")
    assert request.model == "EfficientNet-Lite0" and request.threshold == THRESHOLD.default
    assert request.look == Look(OPACITY.default, COLORMAPS[0])
    assert _parse(model="").model == "EfficientNet-Lite0"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 0.01}, "Box threshold must be a number from 0.05 to 0.95; got 0.01"),
        ({"threshold": "abc"}, "Box threshold must be a number"),
        ({"alpha": float("inf")}, "Heatmap opacity must be a number from 0 to 1"),
        ({"colormap": "hot"}, "Colours must be one of: jet, viridis, cividis, magma; got hot"),
        ({"model": ["x"]}, "Model must be one of: VGG19, EfficientNet-Lite0"),
        ({"target": 5}, "Class to explain must be text"),
        ({"target": "a" * 201}, r"Class to explain is too long \(201 characters; at most 200\)"),
    ],
)
def test_each_setting_has_one_rule_and_one_sentence(changes, message):
    with pytest.raises(InvalidInput, match=message):
        _parse(**changes)


def test_the_page_and_the_api_share_the_ranges_of_the_settings():
    # The page's sliders are built from the same ranges (demo.page.layout reads demo.settings).
    assert (THRESHOLD.low, THRESHOLD.high) == (0.05, 0.95) and (OPACITY.low, OPACITY.high) == (0.0, 1.0)
    assert set(COLORMAPS) == {"jet", "viridis", "cividis", "magma"}


def test_no_photo_is_one_sentence():
    for nothing in (None, b"", "", SimpleNamespace(path=None, url=None)):
        with pytest.raises(UserError, match="Please add an image first"):
            read_photo(nothing)


def test_a_gradio_payload_is_read_from_its_path_with_its_name(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(b"cat bytes")
    photo = read_photo(SimpleNamespace(path=str(path), url=None, orig_name="my cat.png"))
    assert photo.data == b"cat bytes" and photo.name == "my cat.png"
    assert read_photo(str(path)).name == "cat.png"


def test_a_data_url_is_decoded_after_its_size_is_checked():
    url = "data:image/png;base64," + base64.b64encode(b"pasted").decode()
    assert read_photo(SimpleNamespace(path=None, url=url, orig_name=None)).data == b"pasted"
    huge = "data:image/png;base64," + "A" * (MAX_UPLOAD_BYTES // 3 * 4 + 400)
    with pytest.raises(InvalidInput, match="too large"):
        read_photo(SimpleNamespace(path=None, url=huge, orig_name=None))


def test_a_file_is_read_at_most_to_the_upload_limit(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as file:
        file.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(InvalidInput, match="too large"):
        read_photo(str(big))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        read_photo(str(tmp_path / "empty.png"))
    with pytest.raises(InvalidImageError, match="could not be read"):
        read_photo(str(tmp_path / "missing.png"))


def test_the_layer_is_one_the_model_offers_and_its_automatic_one_is_none():
    offered = {"VGG19": ("features_conv", "avgpool", "features_conv.34")}

    def layer(value, unknown="raise"):
        return parse(
            b"photo", None, "VGG19", None, None, None, value, models=MODELS, layers=offered.get, unknown_layer=unknown
        ).layer

    assert layer(None) is None and layer("") is None and layer("features_conv") is None
    assert layer("features_conv.34") == "features_conv.34"
    with pytest.raises(InvalidInput, match="Layer must be one of: features_conv, avgpool, features_conv.34; got bn2"):
        layer("bn2")
    assert layer("bn2", unknown="automatic") is None  # the page's picker may still hold the last model's layer
    with pytest.raises(InvalidInput, match="Layer is too long"):
        layer("x" * 5000)
