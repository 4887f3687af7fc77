"""gradcam.files: regular files only, never more bytes than the cap, links followed but kept inside a folder."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gradcam.errors import FileRefusedError, GradCAMError
from gradcam.files import not_regular, read_regular_file, within

from .helpers import in_child


def test_a_regular_file_is_read_up_to_the_cap_and_not_a_byte_over(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4)
    assert read_regular_file(path, 1024) == bytes(range(256)) * 4
    message = r"^data\.bin is 1,024 bytes, over the 1,023 byte limit for a file, so it is not read\.$"
    with pytest.raises(FileRefusedError, match=message) as caught:
        read_regular_file(path, 1023)
    assert isinstance(caught.value, GradCAMError)
    assert (caught.value.name, caught.value.reason) == ("data.bin", "1,024 bytes, over the 1,023 byte limit for a file")


def _refusal(path: Path) -> str:
    try:
        read_regular_file(path, 1 << 20, "an annotation file")
    except FileRefusedError as exc:
        return exc.reason
    raise AssertionError(f"{path} was read")


@pytest.mark.slow  # a child process
def test_pipes_devices_sockets_and_folders_are_refused_without_waiting_or_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "zero").symlink_to("/dev/zero")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "socket"))
    try:
        expected = {
            "pipe": "a pipe (FIFO), not a regular file",
            "zero": "a device, not a regular file",
            "socket": "a socket, not a regular file",
            ".": "a folder, not a regular file",
        }
        for name, reason in expected.items():
            child = in_child(_refusal, tmp_path / name, timeout=10, memory_mib=200)
            assert child.returned == ("returned", reason), (name, child)
            assert not_regular(tmp_path / name) == reason.split(",")[0]
    finally:
        listening.close()
    (tmp_path / "file").write_bytes(b"x")
    assert not_regular(tmp_path / "file") is None
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 10)


def test_a_file_of_proc_that_says_it_is_empty_reads_as_empty() -> None:
    assert read_regular_file("/proc/self/status", 1 << 20) == b""  # 0 bytes by os.stat: at most that is read


def test_within_follows_links(tmp_path: Path) -> None:
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (inside / "own.png").write_bytes(b"x")
    (inside / "link.png").symlink_to(outside / "secret.png")
    (inside / "near.png").symlink_to(inside / "own.png")
    assert within(inside / "own.png", inside) and within(inside / "near.png", inside)
    assert not within(inside / "link.png", inside)
    assert not within(inside / ".." / "elsewhere" / "secret.png", inside)
