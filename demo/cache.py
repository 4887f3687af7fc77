"""The explanations the app remembers, so that a slider change re-renders without running the model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from gradcam import Explanation


class ExplanationCache:
    """A small least-recently-used store of explanations; safe to share between threads.

    Args:
        size: how many explanations are kept.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Explanation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Explanation | None:
        """The remembered explanation, freshened; None if there is none."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Hashable, explanation: Explanation) -> None:
        """Remembers an explanation, forgetting the least recently used beyond the size."""
        with self._lock:
            self._items[key] = explanation
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forgets everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
