"""Whether to believe a map, in words: the trust check's verdicts and the methods compared.

The sentences of the checks of :mod:`gradcam.trust` (deletion and insertion,
Petsiuk et al., RISE, BMVC 2018; ROAD, Rong et al., ICML 2022; the
model-parameter randomisation test, Adebayo et al., NeurIPS 2018) and of the
CAM methods scored side by side, as :class:`gradcam.words.Text` spans. Like
:mod:`gradcam.words`, a leaf: the results are any objects with the fields read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gradcam.words import Text, percent


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
