"""Checks on one value a visitor sent: a number in a range, a short text, one of a few choices.

Each check returns the value it accepts or raises :class:`InvalidInput` with a
message for the person, echoing what they sent cut to a readable length. Only
:mod:`demo.request` calls them: it holds the rule of every setting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from demo.settings import MAX_UPLOAD_BYTES, Range
from gradcam import GradCAMError
from gradcam.names import short

#: How many characters of a visitor's input are echoed in a message.
ECHO = 40


class InvalidInput(GradCAMError, ValueError):
    """A value the app cannot use, with a message for the person who sent it."""


def shorten(value: object) -> str:
    """``value`` as the person wrote it, cut to :data:`ECHO` characters and "…" when longer."""
    return short(value, ECHO + 1, quoted=False)


def number(value: object, name: str, allowed: Range) -> float:
    """A finite number within ``allowed`` (inclusive); None becomes its default.

    Args:
        value: what was sent: an int or a float (not a bool, not a string), or None.
        name: what the number is, as the page calls it ("Box threshold").
        allowed: the range.

    Returns:
        The value as a float.

    Raises:
        InvalidInput: for another type, NaN, infinity or a value out of range.
    """
    if value is None:
        return allowed.default
    expected = f"{name} must be a number from {allowed.low:g} to {allowed.high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{expected}; got {shorten(value)} ({_kind(value)}).")
    if isinstance(value, int) and not allowed.low <= value <= allowed.high:  # a huge int would overflow a float
        raise InvalidInput(f"{expected}; got {shorten(value)}.")
    result = float(value)
    if not math.isfinite(result) or not allowed.low <= result <= allowed.high:
        raise InvalidInput(f"{expected}; got {shorten(value)}.")
    return result


def text(value: object, name: str, max_len: int, *, default: str | None = None) -> str:
    """A string of at most ``max_len`` characters; ``None`` becomes ``default`` when one is given.

    Raises:
        InvalidInput: for another type, or a longer string.
    """
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text; got {shorten(value)} ({_kind(value)}).")
    if len(value) > max_len:
        raise InvalidInput(f"{name} is too long ({len(value):,} characters; at most {max_len}): {shorten(value)}")
    return value


def choice(value: object, name: str, options: Iterable[str], *, default: str | None = None) -> str:
    """One of ``options``; ``None`` (or an empty text) becomes ``default`` when one is given.

    Raises:
        InvalidInput: for anything else, naming the options.
    """
    allowed = list(options)
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, str) and value in allowed:
        return value
    shown = ", ".join(allowed[:8]) + (", …" if len(allowed) > 8 else "")
    raise InvalidInput(f"{name} must be one of: {shown}; got {shorten(value)}.")


def data_url_size(value: str) -> int:
    """The decoded size in bytes of a base64 ``data:`` URL, without decoding it."""
    payload = value.split(",", 1)[1] if "," in value else ""
    return len(payload) * 3 // 4 - payload[-2:].count("=")


def data_url(value: str, limit: int = MAX_UPLOAD_BYTES) -> str:
    """A ``data:`` URL whose image is at most ``limit`` bytes.

    Raises:
        InvalidInput: when it is larger.
    """
    if data_url_size(value) > limit:
        raise InvalidInput(f"The image is too large: at most {limit // 1024 // 1024} MB, please.")
    return value


def _kind(value: object) -> str:
    names = {
        type(None): "nothing",
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), "something else")
