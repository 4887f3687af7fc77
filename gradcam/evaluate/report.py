"""What an evaluation says: ``summary.json`` for machines, ``report.html`` for people.

The report states each figure in plain words and shows the images where
Grad-CAM (the first method asked) found the annotated object best and worst, the
object's annotated box and the Grad-CAM box drawn on the heatmap overlay. With
several methods or the trust check, a table compares the methods and two
sentences say which one localises best (the paper's protocol: the lowest top-1
localisation error) and which one is most faithful (the highest insertion minus
deletion area). Those few images are
explained again (one explanation each) for the report: the run itself keeps no
maps, so its memory does not grow with the dataset.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2

from gradcam import encode
from gradcam.boxes import Box
from gradcam.evaluate import words as evaluation_words
from gradcam.evaluate.annotations import Problem, Sample
from gradcam.evaluate.metrics import IOU_THRESHOLD, POINTING_TOLERANCE, ImageResult, totals
from gradcam.explainer import Explainer
from gradcam.methods import METHODS
from gradcam.render import draw_boxes, overlay

#: How many best and worst cases the report shows.
CASES = 4
TRUTH_COLOUR = (40, 220, 40)


def _figures(results: Sequence[ImageResult]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(totals(results)).items()}


def summary(
    results: Sequence[ImageResult], settings: Mapping[str, Any], seconds: float, problems: int
) -> dict[str, Any]:
    """The figures of ``summary.json``: the first method's totals, then each method's, the run's settings and
    duration, and which method localises best and which is most faithful (None when not measured).

    Fractions are in [0, 1]; NaN (nothing evaluated) is written as null.
    """
    names = list(settings.get("methods") or dict.fromkeys(r.method for r in results)) or ["gradcam"]
    per_method = {name: _figures([r for r in results if r.method == name]) for name in names}
    best = compare_methods(per_method)
    return {**per_method[names[0]], "annotation_problems": problems, **settings, "seconds": round(seconds, 3),
            "per_method": per_method, **best}


def compare_methods(per_method: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
    """Which method localises best (lowest top-1 localisation error) and which is most faithful (highest
    insertion minus deletion area), among those measured."""
    located = {m: f["top1_localization_error"] for m, f in per_method.items() if f.get("top1_localization_error")
               is not None}
    faithful = {m: f["insertion_auc"] - f["deletion_auc"] for m, f in per_method.items()
                if f.get("insertion_auc") is not None and f.get("deletion_auc") is not None}
    return {
        "best_localisation": min(located, key=located.__getitem__) if located else None,
        "most_faithful": max(faithful, key=faithful.__getitem__) if faithful else None,
    }


def _box(text: str) -> Box | None:
    parts = text.split()
    return (int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])) if len(parts) == 4 else None


def _picture(explainer: Explainer, sample: Sample, result: ImageResult, threshold: float) -> str:
    """The case as a PNG data URI: overlay of the annotated class's map, annotated box green, Grad-CAM box white."""
    label = int(result.labels.split(";")[0])
    truth, found = _box(result.truth_box), _box(result.gradcam_box)
    if truth is not None:
        label = next((o.label for o in sample.objects if o.box == truth), label)
    explanation = explainer.explain(sample.path, label, threshold=threshold)
    picture = overlay(explanation.image, explanation.cam)
    if found is not None:
        picture = draw_boxes(picture, [found], "Grad-CAM")
    if truth is not None:
        thickness = max(2, round(max(picture.shape[:2]) / 300))
        cv2.rectangle(picture, truth[:2], truth[2:], TRUTH_COLOUR, thickness, cv2.LINE_AA)
    scale = 320 / max(picture.shape[:2])
    if scale < 1:
        size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(encode.png(picture, compact=True)).decode("ascii")


def _case(explainer: Explainer, sample: Sample, result: ImageResult, threshold: float) -> str:
    try:
        uri = _picture(explainer, sample, result, threshold)
    except Exception as exc:  # a picture that fails must not lose the report
        return f"<figure><figcaption>{evaluation_words.no_picture(result.image, str(exc)).html}</figcaption></figure>"
    lines = evaluation_words.case_caption(
        result.image,
        result.label_names.replace(";", ", "),
        result.top5_names.split(";")[0],
        bool(result.top1_correct),
        result.top1_probability,
        result.iou,
        result.energy_in_box,
    )
    caption = "<br>".join(line.html for line in lines)
    return f'<figure><img src="{uri}" alt="{html.escape(result.image)}"><figcaption>{caption}</figcaption></figure>'


def write_report(
    directory: str | os.PathLike[str],
    results: Sequence[ImageResult],
    figures: Mapping[str, Any],
    problems: Sequence[Problem],
    samples: Mapping[str, Sample],
    explainer: Explainer | None,
) -> None:
    """Writes ``summary.json``, ``problems.txt`` and ``report.html`` into ``directory``.

    Args:
        directory: the output folder.
        results: every row of the run.
        figures: from :func:`summary`.
        problems: the annotation problems.
        samples: the samples by image name (for the boxes and files of the cases).
        explainer: re-explains the best and worst cases; None leaves the pictures out.
    """
    out = Path(directory)
    (out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (out / "problems.txt").write_text("".join(p.text() + "\n" for p in problems), encoding="utf-8")
    first = (figures.get("methods") or ["gradcam"])[0]
    evaluated = (r for r in results if not r.error and r.image in samples and r.method == first)
    done = sorted(evaluated, key=lambda r: (r.iou, r.energy_in_box, r.image))
    # A small run is split in halves, so that no image is shown as one of the worst while it is one of the best.
    low = min(CASES, (len(done) + 1) // 2)
    worst, best = done[:low], done[::-1][: min(CASES, len(done) - low)]
    threshold = float(figures.get("threshold", 0.15))

    def gallery(rows: Sequence[ImageResult]) -> str:
        if explainer is None or not rows:
            return f"<p>{evaluation_words.NO_PICTURES}</p>"
        cases = "".join(_case(explainer, samples[r.image], r, threshold) for r in rows)
        return f'<div class="cases">{cases}</div>'

    found = evaluation_words.evaluation(figures, POINTING_TOLERANCE, IOU_THRESHOLD)
    said = "".join(f"<li>{s.html}</li>" for s in found)
    listed = "".join(f"<li>{html.escape(p.text())}</li>" for p in problems[:50])
    more = f"<p>{evaluation_words.more_problems(len(problems) - 50)}</p>" if len(problems) > 50 else ""
    table = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in figures.items()
        if k != "per_method"
    )
    model = html.escape(str(figures.get("model", "")))
    methods = _methods_section(figures)
    title, about = evaluation_words.introduction(str(figures.get("model", "")))
    legend = evaluation_words.box_legend(threshold).html.replace("<b>", '<b style="color:#28b428">', 1)
    heading = evaluation_words.HEADINGS
    none = f"<li>{evaluation_words.NO_PROBLEMS}</li>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Grad-CAM evaluation: {model}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1.5em;line-height:1.5}}
.cases{{display:flex;flex-wrap:wrap;gap:1em}} figure{{margin:0;max-width:330px}} figcaption{{font-size:90%}}
td{{padding:0 1em 0 0}}</style></head><body>
<h1>{title.html}</h1>
<p>{about.html}</p>
<ul>{said}</ul>
<p>{legend}</p>
{methods}
<h2>{heading["best"]}</h2>{gallery(best)}
<h2>{heading["worst"]}</h2>{gallery(worst)}
<h2>{heading["problems"].format(count=len(problems))}</h2><ul>{listed or none}</ul>{more}
<h2>{heading["figures"]}</h2><table>{table}</table>
<p>{evaluation_words.FILES}</p>
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")


def _methods_section(figures: Mapping[str, Any]) -> str:
    """The methods' table and the two sentences: nothing for one method without the trust check."""
    per_method: Mapping[str, Mapping[str, Any]] = figures.get("per_method") or {}
    if len(per_method) < 2 and not figures.get("trust"):
        return ""
    shown = [(k, label, better) for k, label, better in evaluation_words.COLUMNS
             if any(f.get(k) is not None for f in per_method.values())]

    def cell(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    headings = (evaluation_words.column_heading(label, better) for _, label, better in shown)
    head = "".join(f"<th>{html.escape(heading)}</th>" for heading in headings)
    rows = "".join(
        f"<tr><td>{html.escape(METHODS[m].title if m in METHODS else m)}</td>"
        + "".join(f"<td>{cell(f.get(k))}</td>" for k, _, _ in shown) + "</tr>"
        for m, f in per_method.items()
    )
    said = "".join(f"<li>{s.html}</li>" for s in evaluation_words.methods_evaluation(figures))
    title = evaluation_words.HEADINGS["methods"]
    return f"<h2>{title}</h2><ul>{said}</ul><table><tr><th>method</th>{head}</tr>{rows}</table>"
