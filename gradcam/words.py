"""Every sentence a person reads about a result, written once.

The CLI, the saved manifest, the one-picture report and the web page take their
words from here; the trust check's verdicts are in :mod:`gradcam.verdicts` and the
evaluation report's sentences in :mod:`gradcam.evaluate.words`, both built of this
module's :class:`Text`. A sentence is a :class:`Text`: a
few spans, some of them emphasised, rendered as plain text (terminal, manifest, report picture), as
Markdown (the page) or as HTML (the evaluation report), so the renderings never
drift apart.

This module is a leaf: it formats values and knows nothing of the engine; the
results it describes are any objects with the fields it reads (see
:class:`Described`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Ranked(Protocol):
    """A class with the model's probability for it (a :class:`gradcam.Prediction`)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def probability(self) -> float: ...


class Described(Protocol):
    """What the sentences read of an explanation (a :class:`gradcam.Explanation`)."""

    @property
    def class_index(self) -> int: ...
    @property
    def class_name(self) -> str: ...
    @property
    def probability(self) -> float: ...
    @property
    def top_k(self) -> Sequence[Ranked]: ...
    @property
    def cam_empty(self) -> bool: ...
    @property
    def counter_empty(self) -> bool: ...
    @property
    def untrained(self) -> bool: ...
    @property
    def head(self) -> str: ...  # "softmax", "sigmoid" (multi-label) or "binary" (a gradcam.heads.Head)


class Tested(Protocol):
    """What the masking sentence reads of a :class:`gradcam.faithfulness.MaskingTest`."""

    @property
    def class_name(self) -> str: ...
    @property
    def before(self) -> float: ...
    @property
    def hidden(self) -> float: ...
    @property
    def kept(self) -> float: ...


@dataclass(frozen=True)
class Colours:
    """How a colour map's two ends are called in words."""

    strong: str  # "red and yellow": the strongest evidence
    none: str  # "blue": no evidence


#: The words for each colour map the page offers (matplotlib's names).
COLOUR_WORDS: dict[str, Colours] = {
    "jet": Colours("red and yellow", "blue"),
    "viridis": Colours("yellow", "dark purple"),
    "cividis": Colours("yellow", "dark blue"),
    "magma": Colours("light yellow and white", "black"),
    "inferno": Colours("light yellow", "black"),
    "plasma": Colours("yellow", "dark blue"),
    "turbo": Colours("red and yellow", "dark blue"),
}


def colours(colormap: str = "jet") -> Colours:
    """The words for a colour map's ends; "bright" and "dark" for one without words."""
    return COLOUR_WORDS.get(colormap, Colours("bright", "dark"))


def colour_key(colormap: str = "jet") -> str:
    """One short sentence that names the chosen colour map's colours."""
    names = colours(colormap)
    verb = "mark" if " and " in names.strong else "marks"
    return f"In these pictures, {names.strong} {verb} the strongest evidence and {names.none} none."


@dataclass(frozen=True)
class Text:
    """A sentence as spans; ``strong`` spans are bold in Markdown, ``soft`` ones italic."""

    spans: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, *parts: str | tuple[str, str]) -> Text:
        """Builds a text from plain strings and ``("strong" | "soft", text)`` pairs."""
        return cls(tuple(("", part) if isinstance(part, str) else part for part in parts))

    def __add__(self, other: Text) -> Text:
        return Text(self.spans + other.spans)

    @property
    def plain(self) -> str:
        """The words alone, for a terminal, a file or a picture."""
        return "".join(text for _, text in self.spans)

    @property
    def markdown(self) -> str:
        """The words with emphasis, for the page."""
        marks = {"strong": "**", "soft": "*", "": ""}
        return "".join(f"{marks[style]}{text}{marks[style]}" if text.strip() else text for style, text in self.spans)

    @property
    def html(self) -> str:
        """The words escaped for HTML, with emphasis as ``<b>`` and ``<i>``, for a report page."""
        tags = {"strong": "b", "soft": "i"}
        return "".join(
            f"<{tags[style]}>{html.escape(text)}</{tags[style]}>" if style in tags else html.escape(text)
            for style, text in self.spans
        )

    def __str__(self) -> str:
        return self.plain


def percent(probability: float) -> str:
    """A probability for people: "87%", or "0.4%" below one percent, "<0.1%" below that."""
    if probability == 0:
        return "0%"
    if probability < 0.001:
        return "<0.1%"
    # 0.996 % rounds to "1.0%" with one decimal: written "1%", as the numbers above one percent are
    return f"{probability:.0%}" if round(probability, 3) >= 0.01 else f"{probability:.1%}"


def label(class_name: str, probability: float, untrained: bool = False) -> str:
    """Short label for a box or a caption, for example ``"tabby 87%"``."""
    return f"{class_name} {percent(probability)}{' (untrained)' if untrained else ''}"


def box_label(result: Described) -> str:
    """The label of a result's box: "tabby 87%", "tabby 87% (untrained)" for random weights."""
    return label(result.class_name, result.probability, result.untrained)


def multi_label(result: Described) -> bool:
    """True when each class has a probability of its own (a multi-label model, sigmoid head)."""
    return result.head == "sigmoid"


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def likely(result: Described, count: int = 3) -> str:
    """A multi-label model's best labels: "78% likely to contain dog, 64% cat and 12% bird"."""
    best = list(result.top_k[:count])
    if not best:
        return ""
    first, rest = best[0], [f"{percent(p.probability)} {p.name}" for p in best[1:]]
    return f"{percent(first.probability)} likely to contain {_listed([first.name, *rest])}"


def _multi_label_lead(result: Described, asked: bool) -> Text:
    name = result.class_name
    best = result.top_k[0] if result.top_k else None
    if best is not None and best.index != result.class_index:
        return Text.of(
            "You asked about " if asked else "For ",
            ("strong", name),
            f": the model finds the image {percent(result.probability)} likely to contain it (its most likely "
            f"label is ",
            ("strong", best.name),
            f", {percent(best.probability)}).",
        )
    others = [f"{percent(p.probability)} {p.name}" for p in result.top_k[1:3]]
    joined = "" if not others else f" and {others[0]}" if len(others) == 1 else f", {others[0]} and {others[1]}"
    return Text.of(
        f"This image is {percent(result.probability)} likely to contain ",
        ("strong", name),
        f"{joined}. ",
        ("soft", "Each label is judged on its own: they need not add up to 100%."),
    )


def summary(result: Described, asked: bool = True, colormap: str | None = None) -> Text:
    """What the model thinks and what the map shows, in one or two sentences.

    A multi-label model's words give its labels each their own probability
    ("This image is 78% likely to contain dog, 64% cat and 12% bird.").

    Args:
        result: the explanation to describe.
        asked: True when a person picked the class, False for the top prediction;
            the words are the same unless the picked class is not the top one.
        colormap: the colour map of the pictures shown with the words: a sentence
            then names its colours (see :func:`colour_key`).
    """
    name = result.class_name
    best = result.top_k[0] if result.top_k else None
    if multi_label(result):
        lead = _multi_label_lead(result, asked)
    elif best is not None and best.index != result.class_index:
        lead = Text.of(
            "You asked about " if asked else "For ",
            ("strong", name),
            f": the model gives it {percent(result.probability)} (its top guess is ",
            ("strong", best.name),
            f", {percent(best.probability)}).",
        )
    else:
        lead = Text.of(f"The model is {percent(result.probability)} sure this is ", ("strong", name), ".")
    if result.cam_empty:
        tail = Text.of(f" Nothing in this image speaks for {name}, so the heatmap is empty.")
    else:
        tail = Text.of(f" The highlighted parts of the image are what led it to {name}.")
    if colormap is not None and not result.cam_empty:
        tail = tail + Text.of(" " + colour_key(colormap))
    if result.untrained:
        tail = tail + Text.of(" ", ("soft", "(Untrained model: these numbers mean nothing.)"))
    return lead + tail


def top_classes(result: Described) -> str:
    """The best classes on one line: "tabby 61%, tiger cat 20%, ..."."""
    return ", ".join(label(p.name, p.probability) for p in result.top_k)


def cli_line(result: Described, source: str, folder: str) -> str:
    """The line the command line prints for one explained image.

    A multi-label model's line says "likely to contain": ``x.png: 78% likely to contain dog; labels: dog 78%,
    cat 64% (each on its own) -> out/x/``.
    """
    empty = " (no region speaks for this class)" if result.cam_empty else ""
    untrained = " (untrained)" if result.untrained else ""
    if multi_label(result):
        head = f"{percent(result.probability)} likely to contain {result.class_name}{untrained}"
        return f"{source}: {head}{empty}; labels: {top_classes(result)} (each on its own) -> {folder}/"
    head = label(result.class_name, result.probability, result.untrained)
    return f"{source}: {head}{empty}; top-{len(result.top_k)}: {top_classes(result)} -> {folder}/"


def counterfactual(result: Described) -> Text:
    """What the counterfactual map shows."""
    name = result.class_name
    if result.counter_empty:
        return Text.of(f"Nothing in this image speaks against {name}: the model found no contrary evidence.")
    return Text.of(
        "The highlighted parts now show what speaks ",
        ("strong", "against"),
        f" {name}: the parts that, if they were stronger, would make the model less sure.",
    )


def masking(test: Tested) -> Text:
    """The masking test's result in one or two plain sentences."""
    before, hidden = percent(test.before), percent(test.hidden)
    if test.hidden < 0.5 * test.before:
        verdict = "drops"
    elif test.hidden < 0.9 * test.before:
        verdict = "lowers"
    elif test.hidden > 1.1 * test.before:
        verdict = "raises"
    else:
        verdict = "barely changes"
    change = f"from {before} to {hidden}" if verdict != "barely changes" else f"({before} before, {hidden} after)"
    return Text.of(
        f"Hiding the highlighted area {verdict} the confidence in ",
        ("strong", test.class_name),
        f" {change}. Keeping only that area gives {percent(test.kept)}.",
    )


def models_agreement(overlaps: Sequence[tuple[str, str, float | None]]) -> Text:
    """How much the boxes of several models overlap: ``(model, model, IoU or None when a map is empty)``."""
    if not overlaps:
        return Text.of("Only one model is loaded on this server, so there is nothing to compare.")
    known = [(a, b, iou) for a, b, iou in overlaps if iou is not None]
    if not known:
        return Text.of("The models' boxes cannot be compared: at least one map is empty.")
    pairs = "; ".join(f"{a} and {b}: {iou:.0%}" for a, b, iou in known)
    return Text.of(f"How much the models' boxes overlap (100% means the same box): {pairs}.")


class Watched(Protocol):
    """What the clip sentences read of an explained clip (a :class:`gradcam.clips.ExplainedClip`)."""

    @property
    def frames(self) -> int: ...
    @property
    def explained(self) -> int: ...
    @property
    def classes(self) -> Sequence[tuple[str, int]]: ...
    @property
    def asked(self) -> str | None: ...
    @property
    def untrained(self) -> bool: ...


def clip_summary(result: Watched) -> Text:
    """What the model saw in a clip: the class it named most, in how many of the explained frames, and the others."""
    explained = result.explained
    counted = f"{explained} explained frames" if explained != result.frames else f"{explained} frames"
    if result.asked is not None:
        lead = Text.of("Each frame is explained for ", ("strong", result.asked), f" ({counted}).")
    elif result.classes:
        name, count = result.classes[0]
        share = f"all {counted}" if count == explained else f"{count} of the {counted} ({count / explained:.0%})"
        lead = Text.of("The model saw ", ("strong", name), f" in {share}.")
        others = ", ".join(f"{other} ({n})" for other, n in result.classes[1:4])
        if others:
            lead = lead + Text.of(f" Also: {others}.")
    else:
        lead = Text.of("No frame was explained.")
    tail = Text.of(" The highlighted parts of each frame are what led it to its answer.")
    if result.untrained:
        tail = tail + Text.of(" ", ("soft", "(Untrained model: these numbers mean nothing.)"))
    return lead + tail


def clip_line(result: Watched, source: str, folder: str) -> str:
    """The line the command line prints for an explained clip."""
    seen = ", ".join(f"{name} {n}" for name, n in result.classes[:3])
    every = f" of {result.frames}" if result.explained != result.frames else ""
    return f"{source}: {result.explained}{every} frames explained; {seen} -> {folder}/"


def unavailable(title: str, reason: str) -> str:
    """Why a model cannot be used right now, for a visitor."""
    return f"{title} is not available on this server right now ({reason}). Please pick another model."


#: The note the command line prints before explaining with random weights.
UNTRAINED_NOTE = "untrained (random) weights: the maps and predictions mean nothing"
