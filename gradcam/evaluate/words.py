"""What a dataset evaluation found, in words: the sentences, captions and headings of ``report.html``.

:mod:`gradcam.evaluate.report` lays the page out; every sentence and caption a
person reads there is written here, as :class:`gradcam.words.Text` spans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradcam.words import Text


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


def introduction(model: str) -> tuple[Text, Text]:
    """The report's title and the paragraph under it."""
    return (
        Text.of(f"Does {model or 'the model'} look at the object?"),
        Text.of(
            "Grad-CAM colours each image by how much each region raised the model's score for a class "
            "(red: much, blue: little). Each image's annotated object is compared with the hot region."
        ),
    )


def box_legend(threshold: float) -> Text:
    """What the two boxes in the report's pictures are (the first span is the green box's)."""
    return Text.of(
        "In the pictures, the ",
        ("strong", "green box"),
        " is the annotated object and the ",
        ("strong", "white box"),
        f" is the one Grad-CAM draws around the largest hot region (above {100 * threshold:.0f}% of the hottest "
        "point) for the annotated class.",
    )


#: The report's section headings, in order.
HEADINGS = {
    "methods": "Methods",
    "best": "Where Grad-CAM found the object best",
    "worst": "Where it found it worst",
    "problems": "Annotation problems ({count:,})",
    "figures": "All figures",
}
NO_PICTURES = "No pictures."
NO_PROBLEMS = "none"
FILES = "Per-image rows: results.csv. Figures as JSON: summary.json."


def more_problems(count: int) -> str:
    """The line after the first problems listed."""
    return f"... and {count:,} more in problems.txt."


def case_caption(
    image: str, annotated: str, guess: str, correct: bool, probability: float, iou: float, energy: float
) -> list[Text]:
    """The lines under a best or worst case's picture."""
    verdict = "right" if correct else "wrong"
    return [
        Text.of(("strong", image)),
        Text.of(f"annotated: {annotated}; first guess: {guess} ({verdict}, {100 * probability:.0f}%)"),
        Text.of(f"the boxes overlap {100 * iou:.0f}% (IoU); {100 * energy:.0f}% of the heat inside the object"),
    ]


def no_picture(image: str, why: str) -> Text:
    """The caption of a case whose picture could not be made."""
    return Text.of(f"{image}: no picture ({why})")


#: The methods table's columns: (summary key, what it is, which way is better).
COLUMNS = (
    ("top1_localization_error", "top-1 localisation error", "lower"),
    ("pointing_accuracy", "pointing game", "higher"),
    ("energy_in_box", "energy in the box", "higher"),
    ("deletion_auc", "deletion AUC", "lower"),
    ("insertion_auc", "insertion AUC", "higher"),
    ("road_morf", "ROAD, most relevant first", "lower"),
    ("road_lerf", "ROAD, least relevant first", "higher"),
    ("randomisation_correlation", "scrambled-weights correlation", "lower"),
)


def column_heading(label: str, better: str) -> str:
    """A methods table column's heading."""
    return f"{label} ({better} is better)"

