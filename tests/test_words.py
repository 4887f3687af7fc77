"""Every sentence a person reads: one wording, rendered plain and as Markdown."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gradcam import verdicts, words
from gradcam.evaluate import words as evaluation_words
from gradcam.explanation import MaskingTest, Prediction
from gradcam.save import masking_manifest


@dataclass(frozen=True)
class Result:
    class_index: int = 281
    class_name: str = "tabby"
    probability: float = 0.61
    top_k: tuple[Prediction, ...] = (Prediction(281, "tabby", 0.61), Prediction(282, "tiger cat", 0.2))
    cam_empty: bool = False
    counter_empty: bool = False
    untrained: bool = False
    head: str = "softmax"


@pytest.mark.parametrize(
    ("probability", "shown"),
    [(0.0, "0%"), (0.0004, "<0.1%"), (0.004, "0.4%"), (0.0105, "1%"), (0.873, "87%"), (1.0, "100%")],
)
def test_percent_never_says_zero_for_a_probability_that_is_not(probability, shown):
    assert words.percent(probability) == shown


def test_the_top_class_in_both_renderings():
    text = words.summary(Result(), asked=False)
    led = " The highlighted parts of the image are what led it to tabby."
    assert text.plain == "The model is 61% sure this is tabby." + led
    assert text.markdown == "The model is 61% sure this is **tabby**." + led


def test_a_class_that_is_not_the_top_one_names_the_top_guess():
    asked = Result(class_index=282, class_name="tiger cat", probability=0.2)
    said = words.summary(asked).plain
    assert said.startswith("You asked about tiger cat: the model gives it 20% (its top guess is tabby, 61%).")
    assert words.summary(asked, asked=False).markdown.startswith("For **tiger cat**: the model gives it 20%")


def test_an_empty_map_and_untrained_weights_are_said_plainly():
    text = words.summary(Result(cam_empty=True, untrained=True))
    assert "Nothing in this image speaks for tabby, so the heatmap is empty." in text.plain
    assert text.plain.endswith("(Untrained model: these numbers mean nothing.)")
    assert text.markdown.endswith("*(Untrained model: these numbers mean nothing.)*")
    assert "*" not in text.plain


@pytest.mark.parametrize(
    ("before", "hidden", "says"),
    [(0.9, 0.2, "drops the confidence in tabby from 90% to 20%"), (0.9, 0.7, "lowers"), (0.5, 0.8, "raises"),
     (0.9, 0.88, "barely changes the confidence in tabby (90% before, 88% after)")],
)
def test_the_masking_sentence(before, hidden, says):
    test = MaskingTest(281, "tabby", before, hidden, 0.5, 0.2, (0.0, 1.0), (before, 0.1))
    assert says in words.masking(test).plain
    assert masking_manifest(test)["sentence"] == words.masking(test).plain  # the manifest says the same words
    assert "**tabby**" in words.masking(test).markdown


def test_the_cli_line_label_and_agreement():
    assert words.label("tabby", 0.61, untrained=True) == "tabby 61% (untrained)"
    assert words.box_label(Result()) == "tabby 61%" and words.box_label(Result(untrained=True)).endswith("(untrained)")
    line = words.cli_line(Result(cam_empty=True), "cat.jpg", "out/cat")
    assert line == "cat.jpg: tabby 61% (no region speaks for this class); top-2: tabby 61%, tiger cat 20% -> out/cat/"
    assert "nothing to compare" in words.models_agreement([]).plain
    assert "at least one map is empty" in words.models_agreement([("VGG19", "ResNet-50", None)]).plain
    assert words.models_agreement([("A", "B", 0.5), ("A", "C", None)]).plain.endswith("A and B: 50%.")


def test_the_counterfactual_sentence():
    assert "speaks **against** tabby" in words.counterfactual(Result()).markdown
    assert "no contrary evidence" in words.counterfactual(Result(counter_empty=True)).plain


@pytest.mark.parametrize(
    ("colormap", "named"),
    [("jet", "red and yellow mark"), ("viridis", "yellow marks"), ("magma", "light yellow and white")],
)
def test_the_sentence_names_the_colours_of_the_chosen_colour_map(colormap, named):
    assert named in words.summary(Result(), colormap=colormap).plain
    assert "mark" not in words.summary(Result(cam_empty=True), colormap=colormap).plain


FIGURES = {
    "images": 1200, "failed": 3, "top1_accuracy": 0.612, "top5_accuracy": 0.85, "pointing_accuracy": 0.7,
    "energy_in_box": 0.41, "top1_localization_error": 0.5, "top5_localization_error": None,
}


def test_the_evaluation_says_each_figure_once_with_its_rule():
    said = [text.plain for text in evaluation_words.evaluation(FIGURES, pointing_tolerance=15, iou_threshold=0.5)]
    assert said[0] == "1,200 images were evaluated; 3 could not be (see results.csv, column error)."
    assert "right for 61.2% of the images" in said[1] and "five best guesses for 85.0%" in said[1]
    assert "For 70.0% of the annotated classes (each class of each image counted once)" in said[2]
    assert "within 15 pixels of a box of that class" in said[2]
    assert said[3] == "On average 41.0% of the map's heat lies inside the object's box."
    assert "IoU 0.5" in said[4] and "for n/a (the paper's localisation error)" in said[4]
    assert evaluation_words.evaluation({**FIGURES, "failed": 0}, 15, 0.5)[0].plain == "1,200 images were evaluated."


def test_html_escapes_the_words_and_marks_the_emphasis():
    text = words.Text.of("cats <and> ", ("strong", "dogs & co"), " ", ("soft", "'maybe'"))
    assert text.html == "cats &lt;and&gt; <b>dogs &amp; co</b> <i>&#x27;maybe&#x27;</i>"
    assert text.plain == "cats <and> dogs & co 'maybe'"


# ----------------------------------------------------------------------------- trust


def _check(hidden: float, shown: float, rho: float | None = 0.1, control: float | None = 0.97, before: float = 0.61):
    from gradcam.explanation import Curve, Sanity, TrustCheck

    fractions = tuple(i / 20 for i in range(21))
    deletion = Curve(fractions, tuple(before if f < 0.2 else hidden for f in fractions))
    insertion = Curve(fractions, tuple(shown if f < 0.9 else before for f in fractions))
    sanity = None if rho is None else Sanity(rho, (rho,), control, ("fc",))
    return TrustCheck(281, "tabby", "gradcam", before, deletion, insertion, sanity=sanity)


def test_the_trust_verdict_reads_as_the_issue_asks():
    said = verdicts.trust(_check(0.09, 0.48))
    assert said.plain == (
        "Hiding the highlighted fifth of the photo drops the model's confidence in tabby from 61% to 9%; showing "
        "only that fifth brings back 48%. When the model's learned weights are scrambled the map changes "
        "completely, so it reflects what the model learned. (Guided Backpropagation, a method known to fail this "
        "check, keeps 0.97.)"
    )
    assert "**tabby**" in said.markdown


@pytest.mark.parametrize(
    ("hidden", "rho", "says"),
    [
        (0.6, 0.1, "barely changes the model's confidence in tabby (61% before, 60% after)"),
        (0.6, 0.1, "The model does not rely on the highlighted area alone: do not read the map as its reason."),
        (0.09, 0.42, "the map changes a lot, so it mostly reflects what the model learned."),
        (0.09, 0.65, "changes only in part (correlation 0.65): part of it shows the photo's structure"),
        (0.09, 0.91, "barely changes (correlation 0.91): it shows where the photo's features are strong, not what "
                     "the model learned, so do not trust it as an explanation."),
    ],
)
def test_a_check_that_fails_gets_an_honest_verdict(hidden, rho, says):
    assert says in verdicts.trust(_check(hidden, 0.2, rho)).plain


def test_a_change_below_a_point_barely_changes_the_confidence_never_raises_it_from_2_to_2():
    said = verdicts.trust(_check(0.0235, 0.04, before=0.0212)).plain
    assert "Hiding the highlighted fifth of the photo barely changes the model's confidence in tabby (2%" in said


def test_without_the_randomisation_test_the_verdict_says_only_what_was_measured():
    said = verdicts.trust(_check(0.09, 0.48, rho=None)).plain
    assert "scrambled" not in said and said.endswith("brings back 48%.")


def test_the_trust_figures_say_which_way_is_better():
    rows = verdicts.trust_figures(_check(0.09, 0.48))
    assert [name for name, _, _ in rows] == [
        "Deletion AUC", "Insertion AUC", "Scrambled-weights correlation", "... Guided Backpropagation's"
    ]
    assert "lower is better" in rows[0][2] and "higher is better" in rows[1][2]


def test_the_methods_comparison_names_the_most_faithful_and_the_equal_scores():
    from gradcam.explanation import Curve

    @dataclass(frozen=True)
    class Map:
        title: str
        deletion: Curve
        insertion: Curve

    def curve(value: float) -> Curve:
        return Curve((0.0, 1.0), (value, value))

    maps = [Map("Grad-CAM", curve(0.2), curve(0.5)), Map("LayerCAM", curve(0.1), curve(0.6)),
            Map("XGrad-CAM", curve(0.2), curve(0.5)), Map("HiResCAM", curve(0.1), curve(0.6))]
    assert verdicts.most_faithful(maps) == 1
    said = verdicts.methods_comparison(maps).plain
    assert "LayerCAM's map is the most faithful here (deletion 0.10, insertion 0.60)." in said
    assert said.endswith("HiResCAM scores about the same.")
    assert verdicts.method_caption(maps[1], best=True) == "LayerCAM: deletion 0.10, insertion 0.60 (most faithful)"


def test_maps_that_score_alike_are_not_ranked():
    """An untrained model's confidence barely moves whatever is hidden: no map is called the most faithful."""
    from gradcam.explanation import Curve

    @dataclass(frozen=True)
    class Map:
        title: str
        deletion: Curve
        insertion: Curve

    def curve(value: float) -> Curve:
        return Curve((0.0, 1.0), (value, value))

    maps = [Map("Grad-CAM", curve(0.001), curve(0.0012)), Map("LayerCAM", curve(0.0011), curve(0.001))]
    assert verdicts.most_faithful(maps) is None and verdicts.most_faithful(maps[:1]) is None
    said = verdicts.methods_comparison(maps).plain
    assert "The maps score alike here (deletion 0.00 to 0.00, insertion 0.00 to 0.00)" in said
    assert "cannot choose between them" in said and "most faithful" not in said


@dataclass(frozen=True)
class _Clip:
    frames: int = 30
    explained: int = 30
    classes: tuple = (("tabby", 27), ("tiger cat", 3))
    asked: str | None = None
    untrained: bool = False


def test_a_clip_is_described_by_what_the_model_saw_most():
    assert words.clip_summary(_Clip()).plain == (
        "The model saw tabby in 27 of the 30 frames (90%). Also: tiger cat (3). "
        "The highlighted parts of each frame are what led it to its answer."
    )
    assert words.clip_summary(_Clip(classes=(("tabby", 30),))).markdown.startswith(
        "The model saw **tabby** in all 30 frames."
    )
    sampled = words.clip_summary(_Clip(explained=10, classes=(("cup", 10),), asked="espresso", untrained=True))
    assert sampled.plain.startswith("Each frame is explained for espresso (10 explained frames).")
    assert sampled.plain.endswith("(Untrained model: these numbers mean nothing.)")


def test_the_command_line_names_the_frames_explained_and_what_was_seen():
    assert words.clip_line(_Clip(), "clip.mp4", "out") == "clip.mp4: 30 frames explained; tabby 27, tiger cat 3 -> out/"
    assert words.clip_line(_Clip(explained=10), "c.mp4", "o").startswith("c.mp4: 10 of 30 frames explained;")
