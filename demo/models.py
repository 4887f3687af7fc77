"""The models the app offers: the default one ready at start-up, the others loading in the background.

A visitor can use the page as soon as the default model is loaded; the others
are shown as still loading, then as ready or unavailable (with the reason in
plain words). The background loading waits, before each model, until no
visitor's explanation is running (and runs at the lowest CPU priority), so the
first visitors after start-up are served as fast as later ones. Safe to share
between threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence

from demo.errors import UserError
from gradcam import Explainer, GradCAMError
from gradcam.names import short
from gradcam.words import unavailable as unavailable_words

log = logging.getLogger("demo")

Loader = Callable[[], Explainer]


class ModelUnavailable(UserError):
    """A model a visitor picked that is loading, failed to load, or does not exist; the message says which."""


class LoadFailed(GradCAMError):
    """A model could not be loaded: the operator's message, and the reason a visitor is told.

    Attributes:
        reason: why, in plain words for a visitor ("its weights are not on this server ...").
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(exc: GradCAMError) -> str:
    return exc.reason if isinstance(exc, LoadFailed) else "its weights could not be loaded"


class ModelSet:
    """The explainers by title, in page order, the first being the default.

    Args:
        explainers: models ready now, by title.
        unavailable: models that cannot be used, by title, with the reason in plain words.
    """

    def __init__(self, explainers: Mapping[str, Explainer], unavailable: Mapping[str, str] | None = None) -> None:
        if not explainers:
            raise ValueError("At least one model is needed.")
        self._ready = dict(explainers)
        self._unavailable = dict(unavailable or {})
        self._loading: list[str] = []
        self._order = [*self._ready, *self._unavailable]
        self._default = next(iter(self._ready))
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()

    @classmethod
    def load(
        cls,
        loaders: Sequence[tuple[str, Loader]],
        *,
        background: bool = True,
        fallback: bool = True,
        idle: Callable[[], None] = lambda: None,
    ) -> ModelSet:
        """Loads models in order until one loads (the default), then the others after it.

        A model that cannot be loaded (no weights offline, say) is marked
        unavailable with its reason, and the next one is tried as the default:
        the page is served as soon as one model is ready.

        Args:
            loaders: ``(title, load)`` pairs in page order; ``load`` builds the explainer.
            background: load the models after the default in a thread (False: all before returning).
            fallback: when the first model fails, try the next as the default (False: raise,
                for a first model the operator configured explicitly, such as a weights file).
            idle: returns when no visitor's explanation runs; the background loading calls it
                before each model.

        Raises:
            GradCAMError: when no model can be loaded (the first model's error), or the
                first cannot and ``fallback`` is False.
        """
        failed: dict[str, str] = {}
        first_error: GradCAMError | None = None
        for position, (title, load) in enumerate(loaders):
            try:
                explainer = load()
            except GradCAMError as exc:
                if position == 0 and not fallback:
                    raise
                log.warning("%s is unavailable: %s", title, exc)
                failed[title] = _reason(exc)
                first_error = first_error or exc
                continue
            models = cls({title: explainer}, failed)
            models._order = [title for title, _ in loaders]
            rest = list(loaders[position + 1 :])
            models._loading = [title for title, _ in rest]
            if rest:
                models._done.clear()
                if background:
                    threading.Thread(
                        target=models._load_rest, args=(rest, idle, True), name="load-models", daemon=True
                    ).start()
                else:
                    models._load_rest(rest, idle)
            if failed:
                log.warning("serving with %s as the default model", title)
            return models
        assert first_error is not None
        raise first_error

    def _load_rest(self, loaders: Sequence[tuple[str, Loader]], idle: Callable[[], None], lowly: bool = False) -> None:
        if lowly:
            try:  # Linux gives each thread its own nice value: visitors' requests come first
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except (AttributeError, OSError):
                pass
        for title, load in loaders:
            try:
                idle()
                explainer = load()
            except GradCAMError as exc:
                log.warning("%s is unavailable: %s", title, exc)
                with self._lock:
                    self._unavailable[title] = _reason(exc)
            except Exception:
                log.exception("%s failed to load", title)
                with self._lock:
                    self._unavailable[title] = "it failed to load"
            else:
                with self._lock:
                    self._ready[title] = explainer
                log.info("%s is ready", title)
            finally:
                with self._lock:
                    self._loading.remove(title)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until every model has loaded or failed; returns whether that happened."""
        return self._done.wait(timeout)

    @property
    def default(self) -> str:
        """The default model's title: the first that loaded."""
        return self._default

    @property
    def titles(self) -> list[str]:
        """Every model's title, in page order, usable or not."""
        return list(self._order)

    @property
    def ready(self) -> dict[str, Explainer]:
        """The usable explainers by title, in page order."""
        with self._lock:
            return {title: self._ready[title] for title in self._order if title in self._ready}

    def status(self) -> dict[str, str]:
        """Each title's state in words: "ready", "still loading" or the reason it is unavailable."""
        with self._lock:
            return {
                title: "ready"
                if title in self._ready
                else "still loading"
                if title in self._loading
                else self._unavailable[title]
                for title in self._order
            }

    def get(self, title: str | None) -> Explainer:
        """The explainer of a title (the default for None).

        Raises:
            ModelUnavailable: the title is loading, unavailable or unknown; the message says which.
        """
        title = title or self.default
        with self._lock:
            if title in self._ready:
                return self._ready[title]
            if title in self._loading:
                raise ModelUnavailable(
                    f"{title} is still loading. Please try again in a minute, or pick another model."
                )
            if title in self._unavailable:
                raise ModelUnavailable(unavailable_words(title, self._unavailable[title]))
        raise ModelUnavailable(f"Unknown model {short(title)}; choose one of: {', '.join(self.ready)}.")
