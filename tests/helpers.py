"""Helpers several test modules share: counting a model's hooks, reading the process's memory, a child process."""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from torch import nn


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def resident_mib() -> float:
    """This process's resident memory right now, in MiB (Linux's VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass(frozen=True)
class ChildResult:
    """How a call in a child process ended.

    Attributes:
        exitcode: 0 when the child ended normally; negative: the signal that killed it (-11
            SIGSEGV, -6 SIGABRT); None: still running at the timeout (then killed).
        returned: ``("returned", value)`` or ``("raised", "ClassName: message")``; None when the
            child sent nothing (it died first).
    """

    exitcode: int | None
    returned: tuple[str, object] | None


def _call_and_send(
    function: Callable[..., object], args: tuple[object, ...], memory: int | None, sender: Connection
) -> None:
    if memory is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
    try:
        value = function(*args)
    except Exception as exc:  # the test decides what was expected
        sender.send(("raised", f"{type(exc).__name__}: {exc}"))
    else:
        sender.send(("returned", value))


def in_child(
    function: Callable[..., object], *args: object, timeout: float = 30, memory_mib: float | None = None
) -> ChildResult:
    """Calls ``function(*args)`` in a forked child: a crash, a hang or a runaway read ends the child, not the tests.

    Forking is fast (the child has everything imported already) and the child
    only calls ``function``; its value must be picklable.

    Args:
        function: what to call.
        args: its arguments.
        timeout: seconds before the child is killed.
        memory_mib: caps the child's address space at its size when forked plus this
            many MiB (``RLIMIT_AS``): an allocation beyond raises MemoryError there,
            so a read that never ends fails the test instead of exhausting the machine.
    """
    memory = None
    if memory_mib is not None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                memory = int(line.split()[1]) * 1024 + int(memory_mib * 1024 * 1024)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_call_and_send, args=(function, args, memory, sender))
    child.start()
    sender.close()
    child.join(timeout)
    if child.exitcode is None:
        child.kill()
        child.join()
        receiver.close()
        return ChildResult(None, None)
    try:
        returned = receiver.recv() if receiver.poll() else None
    except EOFError:  # the child died before sending
        returned = None
    receiver.close()
    return ChildResult(child.exitcode, returned)


def release_pipe_after(path: Path, seconds: float) -> threading.Thread:
    """After ``seconds``, opens the FIFO at ``path`` for writing and closes it again, should a reader wait on it.

    A reader that blocked on the pipe (the bug a test is about) then reads an
    empty file and the test fails on what it reads, instead of hanging forever.
    """

    def release() -> None:
        time.sleep(seconds)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # nobody is reading it: nothing to release
            pass

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread
