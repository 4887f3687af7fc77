"""One value's checks: numbers in a range, short texts, choices and data URLs, each refusal a sentence."""

from __future__ import annotations

import base64
import math

import pytest

from demo import checks
from demo.checks import InvalidInput
from demo.settings import THRESHOLD, Range


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "got nan"),
        (math.inf, "got inf"),
        (1e308, "got 1e\\+308"),
        (10**5000, "got a number of about 5000 digits"),
        ("0.5", r"got 0.5 \(text\)"),
        (True, r"got True \(true/false\)"),
        ([0.5], r"got \[0.5\] \(a list\)"),
        (0.99, "got 0.99"),
    ],
    ids=["nan", "inf", "huge", "huge-int", "text", "bool", "list", "out-of-range"],
)
def test_a_bad_number_gets_a_clear_message(value, message):
    with pytest.raises(InvalidInput, match=f"Box threshold must be a number from 0.05 to 0.95; {message}"):
        checks.number(value, "Box threshold", THRESHOLD)


def test_good_numbers_pass_and_nothing_is_the_default():
    unit = Range(0.0, 1.0, 0.1, 0.5)
    assert checks.number(1, "x", unit) == 1.0 and checks.number(0.25, "x", unit) == 0.25
    assert checks.number(None, "x", unit) == 0.5


def test_a_long_text_is_refused_with_a_short_echo():
    with pytest.raises(InvalidInput) as info:
        checks.text("a" * 5_000_000, "Class to explain", 200)
    message = str(info.value)
    assert len(message) < 150 and "5,000,000 characters" in message and message.endswith("a…")


def test_text_defaults_and_types():
    assert checks.text(None, "Class", 10, default="Top") == "Top"
    with pytest.raises(InvalidInput, match=r"must be text; got 5 \(a whole number\)"):
        checks.text(5, "Class", 10)


def test_a_choice_is_one_of_its_options_and_nothing_is_the_default():
    assert checks.choice(None, "Colours", ["jet"], default="jet") == "jet"
    assert checks.choice("", "Model", ["A", "B"], default="B") == "B"
    with pytest.raises(InvalidInput, match="must be one of: jet, viridis; got x{40}…"):
        checks.choice("x" * 5000, "Colours", ["jet", "viridis"])
    with pytest.raises(InvalidInput, match=r"got \{'a': 1\}"):
        checks.choice({"a": 1}, "Colours", ["jet"])


def test_a_data_url_over_the_limit_is_refused_without_decoding():
    url = "data:image/png;base64," + base64.b64encode(bytes(1001)).decode()
    assert checks.data_url_size(url) == 1001
    assert checks.data_url(url, limit=1001) == url
    with pytest.raises(InvalidInput, match="too large"):
        checks.data_url(url, limit=1000)
