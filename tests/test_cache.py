"""The explanations the app remembers: the least recently used go first, and threads share them safely."""

from __future__ import annotations

import threading

import numpy as np

from demo.cache import ExplanationCache

from .helpers import make_explanation


def _explanation(value: float):
    image = np.zeros((8, 8, 3), np.uint8)
    return make_explanation(image, np.full((8, 8), value, np.float32))


def test_the_least_recently_used_is_forgotten_first():
    cache = ExplanationCache(2)
    a, b, c = (_explanation(v) for v in (0.1, 0.2, 0.3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.get("a") is a and cache.get("c") is c
    assert len(cache) == 2


def test_a_cache_of_size_zero_remembers_nothing_and_clear_forgets_all():
    empty = ExplanationCache(0)
    empty.put("a", _explanation(0.1))
    assert empty.get("a") is None and len(empty) == 0
    cache = ExplanationCache(4)
    cache.put("a", _explanation(0.1))
    cache.clear()
    assert cache.get("a") is None


def test_threads_putting_and_getting_at_once_keep_the_size():
    cache = ExplanationCache(8)
    explanation = _explanation(0.5)

    def work(n: int) -> None:
        for i in range(200):
            cache.put((n, i), explanation)
            cache.get((n, i - 1))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 8
