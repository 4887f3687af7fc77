"""ZeroGPU: the spaces decorator wraps model work where the package exists, and nothing changes elsewhere."""

from __future__ import annotations

import types

from demo.gpu import on_gpu


def work(x: int) -> int:
    return x + 1


def test_without_the_spaces_package_the_function_runs_as_it_is():
    def missing(name: str) -> object:
        raise ImportError(name)

    assert on_gpu(work, importer=missing) is work


def test_with_the_spaces_package_its_gpu_decorator_wraps_the_work():
    wrapped_calls: list[int] = []

    def gpu(fn):
        def run(*args):
            wrapped_calls.append(1)
            return fn(*args)

        return run

    fake = types.SimpleNamespace(GPU=gpu)
    decorated = on_gpu(work, importer=lambda name: fake)
    assert decorated(1) == 2 and wrapped_calls == [1]
