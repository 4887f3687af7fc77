"""Names in messages and files: the closest names to a wrong one, values cut short, file-safe names.

Every "did you mean" of the package (a class, a layer, a model) ranks the
candidates with :func:`closest`; every value quoted in an error message is cut
by :func:`short`; every name that becomes part of a file name goes through
:func:`file_safe`; a class given by name or index becomes its index through
:func:`resolve_class`.

This module is a leaf: it imports only the package's errors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import numpy as np

from gradcam.errors import UnknownClassError

#: How many names a "Closest: ..." hint lists.
HINT_NAMES = 5
# What separates the words of a name: "tiger cat", "jack-o'-lantern", "layer4.1.bn2", "vit_tiny".
_WORD_BREAK = re.compile(r"[\s\-_.]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def closest(typed: str, names: Sequence[str], n: int = HINT_NAMES, cutoff: float = 0.6) -> list[str]:
    """The names closest to what a person typed, best first, compared without case.

    Names that contain the text come first: those that start with it, or have a
    word that does, before those that merely contain it, shorter names first
    ("cat": "cat", "tiger cat", "Persian cat" before "polecat"). Then come the
    look-alikes that :mod:`difflib` finds for spelling mistakes ("tigr": "tiger").

    Args:
        typed: what was typed; surrounding and repeated spaces are ignored.
        names: the names to choose from.
        n: at most this many names.
        cutoff: how alike a look-alike must be, in [0, 1] (:func:`difflib.get_close_matches`).

    Returns:
        Up to ``n`` of ``names``, as they are written there; none for empty text.
    """
    wanted = " ".join(typed.split()).lower()
    if not wanted:
        return []
    lowered = [name.lower() for name in names]

    def rank(index: int) -> tuple[int, int]:
        name = lowered[index]
        starts = name.startswith(wanted) or any(word.startswith(wanted) for word in _WORD_BREAK.split(name))
        return (0 if starts else 1, len(name))

    containing = sorted((i for i, name in enumerate(lowered) if wanted in name), key=rank)
    found = [names[i] for i in containing[:n]]
    for close in difflib.get_close_matches(wanted, lowered, n=n, cutoff=cutoff):
        name = names[lowered.index(close)]
        if name not in found:
            found.append(name)
    return found[:n]


def closest_hint(typed: str, names: Sequence[str]) -> str:
    """``" Closest: a, b."`` for the end of an error message, or ``""`` when no name is close."""
    found = closest(typed, names)
    return f" Closest: {', '.join(found)}." if found else ""


def short(value: object, limit: int = 40, *, quoted: bool = True) -> str:
    """A value as a message quotes it: its ``repr``, cut to ``limit`` characters with "…".

    A number too long for Python to print (past its 4300-digit limit) is said by its size.
    With ``quoted=False`` a text is shown as the person wrote it, without quotes.
    """
    if isinstance(value, str):  # cut the text, then quote it: the quotes stay balanced
        room = limit - 2 if quoted else limit
        text = value if len(value) <= room else value[: room - 1] + "…"
        return repr(text) if quoted else text
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit printing limit
        digits = int(abs(value)).bit_length() * 0.30103 if isinstance(value, int) else None
        text = f"a number of about {digits:.0f} digits" if digits is not None else "?"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: for a message in one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def file_safe(name: str, fallback: str, limit: int | None = None) -> str:
    """A name as part of a file name: letters, digits, ``-`` and ``_`` only ("tiger cat" -> "tiger-cat").

    Args:
        name: any text.
        fallback: the name to use when nothing of ``name`` is left.
        limit: at most this many characters.
    """
    return _UNSAFE.sub("-", name).strip("-")[:limit] or fallback


def resolve_class(categories: Sequence[str], target: int | str) -> int:
    """A class index from an index or a (case-insensitive) class name.

    Raises:
        UnknownClassError: for an index out of range or an unknown name; the
            message lists the closest names.
    """
    if isinstance(target, str) and target.strip().isdecimal():  # isdigit() accepts "²", which int() refuses
        target = int(target.strip())
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(categories):
            raise UnknownClassError(f"Class index {target} is out of range: use 0 to {len(categories) - 1}.")
        return int(target)
    if not isinstance(target, str):
        raise UnknownClassError(f"A class is a name or an index, not {type(target).__name__}.")
    wanted = " ".join(target.split()).lower()
    lowered = [name.lower() for name in categories]
    if wanted in lowered:
        return lowered.index(wanted)
    raise UnknownClassError(f"Unknown class {target!r}.{closest_hint(target, categories)}")
