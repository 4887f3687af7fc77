"""Reading local files that a person or a dataset names: regular files only, and never more than a cap.

A path can name what is not a file: a FIFO (reading it waits for a writer
forever), a device (``/dev/zero`` never ends), a socket, a folder; or, through
a symbolic link, any of these, or a file outside the folder it was listed in.
:func:`read_regular_file` reads a regular file only, and no more bytes than a
size stated before reading; :func:`not_regular` says what a path is instead;
:func:`within` says whether a path still lies in a folder once its links are
followed. The CLI, ``evaluate`` and
:func:`gradcam.load_image` read local files through them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gradcam.errors import FileRefusedError

#: Opening flags: never wait (a FIFO with no writer would block the open itself), never become the
#: process's controlling terminal, never leak the descriptor into a child process.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def not_regular(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is, in words, when it is not a regular file ("a pipe (FIFO)"); None when it is one.

    Symbolic links are followed.

    Raises:
        OSError: the path does not exist (or its link leads nowhere), or cannot be looked at.
    """
    mode = os.stat(path).st_mode
    return None if stat.S_ISREG(mode) else _kind(mode)


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _check(info: os.stat_result, name: str, limit: int, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise FileRefusedError(name, f"{_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise FileRefusedError(name, f"{info.st_size:,} bytes, over the {limit:,} byte limit for {what}")


def read_regular_file(path: str | os.PathLike[str], limit: int, what: str = "a file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; symbolic links are followed.

    The file's type and size are read (``os.stat``) before it is opened, as
    opening a device can do things of its own; it is opened without waiting (a
    FIFO put in its place meanwhile does not block) and checked again on the
    open descriptor; and at most the size read then is read (a file growing
    meanwhile is cut there, a file of ``/proc`` that says 0 bytes reads as empty).

    Args:
        path: the file.
        limit: the most bytes the file may have.
        what: what the file is, for the message ("an image file").

    Returns:
        The file's bytes.

    Raises:
        FileRefusedError: not a regular file, or larger than ``limit``; the message names the file
            ("cat.png is a pipe (FIFO), not a regular file, so it is not read.").
        OSError: the file cannot be opened or read (missing, no permission).
    """
    name = Path(path).name or os.fspath(path)
    _check(os.stat(path), name, limit, what)
    descriptor = os.open(path, _OPEN_FLAGS)
    with open(descriptor, "rb", buffering=0, closefd=True) as file:
        info = os.fstat(descriptor)
        _check(info, name, limit, what)  # what was opened, should another file have been put there
        data = file.read(info.st_size)
        while len(data) < info.st_size:  # a short read of a regular file (a signal): read on, up to the size
            more = file.read(info.st_size - len(data))
            if not more:
                break
            data += more
    return data


def within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies inside ``folder`` once the symbolic links of both are followed."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True
