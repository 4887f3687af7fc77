"""Every sentence a person reads about a result, written once.

The CLI, the saved manifest, the one-picture report, the evaluation report and
the web page all take their words from here. A sentence is a :class:`Text`: a
few spans, some of them emphasised, rendered as plain text (terminal, manifest, report picture), as
Markdown (the page) or as HTML (the evaluation report), so the renderings never
drift apart.

This module is a leaf: it formats values and knows nothing of the engine; the
results it describes are any objects with the fields it reads (see
:class:`Described`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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


class Scored(Protocol):
    """A perturbation curve (a :class:`gradcam.explanation.Curve`)."""

    @property
    def area(self) -> float: ...
    @property
    def mean(self) -> float: ...
    def at(self, fraction: float) -> float: ...


class Checked(Protocol):
    """What the randomisation sentence reads of a :class:`gradcam.explanation.Sanity`."""

    @property
    def correlation(self) -> float | None: ...
    @property
    def control(self) -> float | None: ...


class Trusted(Protocol):
    """What the trust sentences read of a :class:`gradcam.explanation.TrustCheck`."""

    @property
    def class_name(self) -> str: ...
    @property
    def before(self) -> float: ...
    @property
    def deletion(self) -> Scored: ...
    @property
    def insertion(self) -> Scored: ...
    @property
    def morf(self) -> Scored | None: ...
    @property
    def lerf(self) -> Scored | None: ...
    @property
    def sanity(self) -> Checked | None: ...


class Compared(Protocol):
    """One method's map with its scores (a :class:`gradcam.explanation.MethodMap`)."""

    @property
    def title(self) -> str: ...
    @property
    def deletion(self) -> Scored: ...
    @property
    def insertion(self) -> Scored: ...


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


#: The share of the image the trust sentence talks about ("the highlighted fifth").
TRUST_SHARE = 0.2


def _part(fraction: float) -> str:
    return "fifth" if abs(fraction - 0.2) < 0.03 else f"{fraction:.0%}"


def trust(check: Trusted) -> Text:
    """Whether to trust a map, in two or three plain sentences: what hiding and showing its highlighted fifth
    does to the model's confidence, and whether the map changes when the model's learned weights are scrambled.
    """
    name, before = check.class_name, check.before
    hidden, shown = check.deletion.at(TRUST_SHARE), check.insertion.at(TRUST_SHARE)
    share = _part(TRUST_SHARE)
    if percent(hidden) == percent(before):  # "raises it from 2% to 2%" says nothing: the change is below a point
        verb = "barely changes"
    elif hidden < 0.5 * before:
        verb = "drops"
    elif hidden < 0.9 * before:
        verb = "lowers"
    elif hidden > 1.1 * before:
        verb = "raises"
    else:
        verb = "barely changes"
    change = f"({percent(before)} before, {percent(hidden)} after)" if verb == "barely changes" else (
        f"from {percent(before)} to {percent(hidden)}"
    )
    said = Text.of(
        f"Hiding the highlighted {share} of the photo {verb} the model's confidence in ",
        ("strong", name),
        f" {change}; showing only that {share} brings back {percent(shown)}.",
    )
    if hidden >= 0.9 * before:
        said = said + Text.of(
            " The model does not rely on the highlighted area alone: do not read the map as its reason."
        )
    sanity = check.sanity
    if sanity is not None and sanity.correlation is not None:
        said = said + Text.of(" ") + randomisation(sanity)
    return said


def randomisation(sanity: Checked) -> Text:
    """What the randomisation test found, in one or two sentences (the scrambled weights' map against the map)."""
    rho = sanity.correlation
    if rho is None:
        return Text.of("The map is empty, so there is nothing to compare once the model's weights are scrambled.")
    lead = "When the model's learned weights are scrambled the map"
    if rho < 0.3:
        said = Text.of(f"{lead} changes completely, so it reflects what the model learned.")
    elif rho < 0.5:
        said = Text.of(f"{lead} changes a lot, so it mostly reflects what the model learned.")
    elif rho < 0.8:
        said = Text.of(
            f"{lead} changes only in part (correlation {rho:.2f}): part of it shows the photo's structure rather "
            "than what the model learned."
        )
    else:
        said = Text.of(
            f"{lead} ",
            ("strong", "barely changes"),
            f" (correlation {rho:.2f}): it shows where the photo's features are strong, not what the model "
            "learned, so do not trust it as an explanation.",
        )
    if sanity.control is not None:
        said = said + Text.of(
            f" (Guided Backpropagation, a method known to fail this check, keeps {sanity.control:.2f}.)"
        )
    return said


def road(check: Trusted) -> Text:
    """ROAD's result in one sentence; empty when it was not run."""
    if check.morf is None or check.lerf is None:
        return Text.of()
    return Text.of(
        "With the removed pixels filled in from their surroundings (ROAD, so that the model cannot see the hole's "
        f"shape), removing the most important pixels first leaves {percent(check.morf.mean)} on average, "
        f"the least important first {percent(check.lerf.mean)} (of {percent(check.before)})."
    )


def trust_figures(check: Trusted) -> list[tuple[str, str, str]]:
    """The trust check's numbers for a table: (what, value, how to read it)."""
    rows = [
        ("Deletion AUC", f"{check.deletion.area:.3f}", "confidence while the map's pixels are hidden: lower is better"),
        ("Insertion AUC", f"{check.insertion.area:.3f}", "confidence while they are revealed: higher is better"),
    ]
    if check.morf is not None and check.lerf is not None:
        rows += [
            ("ROAD, most relevant first", f"{check.morf.mean:.3f}", "mean confidence, 10-90% removed: lower is better"),
            ("ROAD, least relevant first", f"{check.lerf.mean:.3f}", "least relevant removed first: higher is better"),
        ]
    sanity = check.sanity
    if sanity is not None and sanity.correlation is not None:
        rows.append(("Scrambled-weights correlation", f"{sanity.correlation:.2f}", "below 0.5 is a pass"))
        if sanity.control is not None:
            rows.append(("... Guided Backpropagation's", f"{sanity.control:.2f}", "the check's known failure"))
    return rows


#: Scores (insertion minus deletion area) closer than this cannot tell the maps apart: none is marked.
FAITHFUL_TIE = 0.01


def most_faithful(maps: Sequence[Compared]) -> int | None:
    """The index of the most faithful map: the highest insertion area minus deletion area (the first of ties).

    None when every map scores within :data:`FAITHFUL_TIE` of the others (one map alone included): the
    check cannot choose between them (an untrained model's confidence, flat whatever is hidden).
    """
    scores = [m.insertion.area - m.deletion.area for m in maps]
    if len(scores) < 2 or max(scores) - min(scores) < FAITHFUL_TIE:
        return None
    return scores.index(max(scores))


def method_caption(compared: Compared, best: bool = False) -> str:
    """A gallery caption: "LayerCAM: deletion 0.08, insertion 0.61 (most faithful)"."""
    mark = " (most faithful)" if best else ""
    return f"{compared.title}: deletion {compared.deletion.area:.2f}, insertion {compared.insertion.area:.2f}{mark}"


def methods_comparison(maps: Sequence[Compared]) -> Text:
    """Which method's map is the most faithful here, in words a visitor understands."""
    if not maps:
        return Text.of("No method was compared.")
    lead = (
        "Each map is tested the same way: hiding what it highlights should cost the model its confidence "
        "(deletion, lower is better) and showing only that should bring it back (insertion, higher is better). "
    )
    found = most_faithful(maps)
    if found is None:
        deletions, insertions = [m.deletion.area for m in maps], [m.insertion.area for m in maps]
        return Text.of(
            lead,
            ("strong", "The maps score alike here"),
            f" (deletion {min(deletions):.2f} to {max(deletions):.2f}, insertion {min(insertions):.2f} to "
            f"{max(insertions):.2f}): hiding or showing what any of them highlights changes the model's confidence "
            "about equally, so this check cannot choose between them.",
        )
    best = maps[found]
    same = [m.title for m in maps if m is not best and _same_scores(m, best)]
    said = Text.of(
        lead,
        ("strong", best.title),
        f"'s map is the most faithful here (deletion {best.deletion.area:.2f}, insertion {best.insertion.area:.2f}).",
    )
    if same:
        others = ", ".join(same[:-1]) + (" and " if len(same) > 1 else "") + same[-1]
        said = said + Text.of(f" {others} {'score' if len(same) > 1 else 'scores'} about the same.")
    return said


def _same_scores(a: Compared, b: Compared) -> bool:
    """Whether two maps' scores (insertion minus deletion area) are too close to tell apart."""
    return abs((a.insertion.area - a.deletion.area) - (b.insertion.area - b.deletion.area)) < FAITHFUL_TIE


def class_agnostic(title: str) -> Text:
    """Why every class looks the same with a method that ignores the class (Eigen-CAM)."""
    return Text.of(f"{title} does not depend on the class: every class gets the same map.")


def models_agreement(overlaps: Sequence[tuple[str, str, float | None]]) -> Text:
    """How much the boxes of several models overlap: ``(model, model, IoU or None when a map is empty)``."""
    if not overlaps:
        return Text.of("Only one model is loaded on this server, so there is nothing to compare.")
    known = [(a, b, iou) for a, b, iou in overlaps if iou is not None]
    if not known:
        return Text.of("The models' boxes cannot be compared: at least one map is empty.")
    pairs = "; ".join(f"{a} and {b}: {iou:.0%}" for a, b, iou in known)
    return Text.of(f"How much the models' boxes overlap (100% means the same box): {pairs}.")


def _share(value: float | None) -> str:
    """A dataset figure: "61.2%", or "n/a" when nothing was evaluated."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def evaluation(figures: Mapping[str, Any], pointing_tolerance: float, iou_threshold: float) -> list[Text]:
    """What a dataset evaluation found, one sentence a figure, for its report.

    Args:
        figures: the run's summary (``summary.json``): images, failed, the
            accuracies, the pointing accuracy, the energy in the box and the
            localisation errors, as fractions or None.
        pointing_tolerance: how near the map's peak must be to the box, in pixels.
        iou_threshold: the overlap a box needs to count as found.
    """
    n, failed, p = figures["images"], figures["failed"], _share
    failures = f"; {failed:,} could not be (see results.csv, column error)." if failed else "."
    return [
        Text.of(f"{n:,} images were evaluated{failures}"),
        Text.of(
            f"The model's first guess was right for {p(figures['top1_accuracy'])} of the images, "
            f"and the right class was among its five best guesses for {p(figures['top5_accuracy'])}."
        ),
        Text.of(
            f"Where does it look? For {p(figures['pointing_accuracy'])} of the annotated classes (each class of "
            "each image counted once), the hottest point of the Grad-CAM map for that class lies on one of its "
            f"objects (within {pointing_tolerance:g} pixels of a box of that class)."
        ),
        Text.of(f"On average {p(figures['energy_in_box'])} of the map's heat lies inside the object's box."),
        Text.of(
            "Finding the object: the box drawn around the largest hot region of the map of the first guess failed "
            "to match the annotated box (the boxes must share at least half of their combined area, "
            f"IoU {iou_threshold:g}) or the guess was wrong for {p(figures['top1_localization_error'])} of the "
            f"images; allowing any of the five best guesses, for {p(figures['top5_localization_error'])} "
            "(the paper's localisation error)."
        ),
    ]


def methods_evaluation(figures: Mapping[str, Any]) -> list[Text]:
    """Which method localises best and which is most faithful on a dataset (``summary.json``'s figures)."""
    per_method: Mapping[str, Mapping[str, Any]] = figures.get("per_method") or {}
    titles = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "xgradcam": "XGrad-CAM", "hirescam": "HiResCAM",
              "layercam": "LayerCAM", "eigencam": "Eigen-CAM", "scorecam": "Score-CAM"}
    said = []
    located = figures.get("best_localisation")
    if located is not None and len(per_method) > 1:
        error = per_method[located]["top1_localization_error"]
        said.append(Text.of(
            ("strong", titles.get(located, located)),
            f" localises best: its top-1 localisation error, the paper's protocol, is {_share(error)}.",
        ))
    faithful = figures.get("most_faithful")
    if faithful is not None:
        f = per_method[faithful]
        lead = "is the most faithful on this model and data" if len(per_method) > 1 else "scores"
        said.append(Text.of(
            ("strong", titles.get(faithful, faithful)),
            f" {lead}: hiding what its maps highlight leaves a deletion area of {f['deletion_auc']:.3f} and "
            f"showing only that an insertion area of {f['insertion_auc']:.3f} (means over the images).",
        ))
    rho = {m: f.get("randomisation_correlation") for m, f in per_method.items()}
    failed = [titles.get(m, m) for m, value in rho.items() if value is not None and value >= 0.5]
    if failed:
        said.append(Text.of(
            f"{', '.join(failed)}: when the model's learned weights are scrambled the maps stay similar (mean "
            "rank correlation 0.5 or more), so they depend little on what the model learned."
        ))
    return said


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
