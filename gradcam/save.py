"""Saving an explanation: the four pictures, the raw map and a JSON manifest."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from gradcam import encode, verdicts, views, words
from gradcam.config import COLORMAP, MAX_IMAGE_FILE_BYTES, OVERLAY_ALPHA, VERSION
from gradcam.explanation import Curve, Explanation, MaskingTest, MethodMap, TrustCheck
from gradcam.files import read_regular_file
from gradcam.methods import METHODS

_VERSIONED = ("torch", "torchvision", "numpy", "opencv-python-headless", "matplotlib", "pillow", "gradio")


@lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # Looking them up costs milliseconds and they cannot change while the process runs.
    found = []
    for name in _VERSIONED:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    return {"gradcam": VERSION, "python": platform.python_version(), **dict(_installed_versions())}


def manifest(explanation: Explanation, *, source: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The JSON-ready description of an explanation.

    Args:
        explanation: the result to describe.
        source: the image file, to record its name and SHA-256.
    """
    height, width = explanation.image.shape[:2]
    pixels = hashlib.sha256(explanation.image.tobytes()).hexdigest()
    data: dict[str, Any] = {
        "model": explanation.model_name,
        "layer": explanation.layer_name,
        "method": explanation.method,
        "method_title": METHODS[explanation.method].title if explanation.method in METHODS else explanation.method,
        "weights": explanation.weights,
        "untrained": explanation.untrained,
        "class": {"index": explanation.class_index, "name": explanation.class_name},
        "probability": explanation.probability,
        "head": explanation.head.value,  # softmax, sigmoid (multi-label: each probability on its own) or binary
        "sentence": words.summary(explanation).plain,
        "top_k": [{"index": p.index, "name": p.name, "probability": p.probability} for p in explanation.top_k],
        "boxes": [list(box) for box in explanation.boxes],
        "box_format": "x0, y0, x1, y1 in pixels, corners inclusive",
        "threshold": explanation.threshold,
        "cam_empty": explanation.cam_empty,
        "image": {"width": width, "height": height, "pixels_sha256": pixels},
        "versions": package_versions(),
    }
    if source is not None:
        path = Path(source)
        data["image"]["file"] = path.name
        original = read_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file")  # as load_image read it
        data["image"]["sha256"] = hashlib.sha256(original).hexdigest()
    return data


def masking_manifest(test: MaskingTest) -> dict[str, Any]:
    """The JSON-ready description of a masking test: its numbers, its deletion curve and its sentence."""
    return {
        "class": test.class_name,
        "before": test.before,
        "highlighted_hidden": test.hidden,
        "only_highlighted_kept": test.kept,
        "region_fraction": test.region_fraction,
        "deletion_curve": {"fraction_removed": list(test.fractions), "probability": list(test.curve)},
        "deletion_area": test.deletion_area,
        "sentence": words.masking(test).plain,
    }


def _curve(curve: Curve | None, share: str) -> dict[str, Any] | None:
    if curve is None:
        return None
    return {share: list(curve.fractions), "probability": list(curve.probabilities)}


def trust_manifest(check: TrustCheck) -> dict[str, Any]:
    """The JSON-ready description of a trust check: its numbers, its curves, its cost and its sentences."""
    sanity = check.sanity
    return {
        "class": check.class_name,
        "method": check.method,
        "before": check.before,
        "deletion_auc": check.deletion_auc,
        "insertion_auc": check.insertion_auc,
        "road_morf": check.road_morf,
        "road_lerf": check.road_lerf,
        "randomisation_correlation": check.randomisation_correlation,
        "randomisation": None if sanity is None else {
            "correlation": sanity.correlation,
            "correlations": list(sanity.correlations),
            "guided_backprop_control": sanity.control,
            "reinitialised_layers": list(sanity.layers),
            "seeds": list(sanity.seeds),
            "similarity": "Spearman rank correlation at the network input's size, mean of the draws",
        },
        "baseline": check.baseline,
        "curves": {
            "deletion": _curve(check.deletion, "fraction_hidden"),
            "insertion": _curve(check.insertion, "fraction_shown"),
            "road_morf": _curve(check.morf, "fraction_removed"),
            "road_lerf": _curve(check.lerf, "fraction_removed"),
        },
        "input_size": list(check.input_size),
        "forward_passes": check.forward_passes,
        "sentence": verdicts.trust(check).plain,
        "road_sentence": verdicts.road(check).plain,
    }


def methods_manifest(maps: tuple[MethodMap, ...]) -> list[dict[str, Any]]:
    """The compared methods: each one's deletion and insertion areas, the most faithful marked."""
    best = verdicts.most_faithful(maps)
    return [
        {"method": m.method, "title": m.title, "deletion_auc": m.deletion.area, "insertion_auc": m.insertion.area,
         "cam_empty": m.empty, "most_faithful": k == best}
        for k, m in enumerate(maps)
    ]


def save_explanation(
    explanation: Explanation,
    out_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    alpha: float = OVERLAY_ALPHA,
    colormap: str = COLORMAP,
    extra: dict[str, Any] | None = None,
    panels: dict[str, np.ndarray] | None = None,
    workers: int | None = None,
) -> dict[str, Path]:
    """Writes ``original.png``, ``heatmap.png``, ``overlay.png``, ``boxes.png``,
    ``cam.npy`` and ``manifest.json`` into ``out_dir`` (created if missing).

    Args:
        explanation: the result to save.
        out_dir: the folder to write into.
        source: the image file, recorded with its SHA-256 in the manifest.
        alpha: overlay opacity.
        colormap: heatmap colormap.
        extra: more JSON-ready entries for the manifest, such as the masking
            test's (``{"masking_test": masking_manifest(test)}``).
        panels: the four pictures when the caller has drawn them already
            (``views.panels(explanation, alpha, colormap)``), so they are not drawn twice.
        workers: threads encoding the four PNGs (default: one each, the fastest;
            one leaves the other cores to whatever runs beside it).

    Returns:
        The written paths, keyed by panel name, "cam" and "manifest".

    Raises:
        ValueError: when ``extra`` would replace one of the manifest's own
            entries; nothing is written then.
    """
    data = manifest(explanation, source=source)
    data.update(overlay_alpha=alpha, colormap=colormap, files={})
    clashes = sorted(set(extra or {}) & set(data))
    if clashes:
        raise ValueError(f"extra cannot replace the manifest's own entries: {', '.join(clashes)}.")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    panels = panels if panels is not None else views.panels(explanation, alpha, colormap)
    written: dict[str, Path] = {name: folder / f"{name}.png" for name in panels}
    # zlib releases the GIL: the four pictures are encoded side by side.
    with ThreadPoolExecutor(max(1, workers or len(panels))) as pool:
        list(pool.map(encode.write_png, written.values(), panels.values()))
    written["cam"] = folder / "cam.npy"
    np.save(written["cam"], explanation.cam)
    written["manifest"] = folder / "manifest.json"
    data.update(files={k: p.name for k, p in written.items()}, **(extra or {}))
    written["manifest"].write_text(json.dumps(data, indent=2) + "\n")
    return written
