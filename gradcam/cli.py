"""Command line: ``python -m gradcam IMAGE_OR_FOLDER... [options]`` or ``python -m gradcam CLIP [options]``.

Explains each image, prints the prediction, and writes the four pictures, the
raw map and a manifest into one folder per image; ``--method`` picks another
method of the CAM family, and options add the counterfactual map, the masking
test, the trust check, Guided Grad-CAM, a one-picture report and the maps of the
best classes. A bad image is reported in one line and skipped;
the exit code is non-zero if any image failed.

Given one video clip (MP4, MOV, WebM: told by its content), it explains its
frames (every ``--every``-th) with a progress bar and writes ``overlay.mp4`` and
``frames.csv`` into ``--out`` (see :mod:`gradcam.clips`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from PIL import Image
from tqdm import tqdm

from gradcam import encode, views, words
from gradcam.backbone import Backbone
from gradcam.clips import ExplainedClip, explain_clip
from gradcam.config import BOX_THRESHOLD, COLORMAP, OVERLAY_ALPHA, RANDOM_WEIGHTS, TOP_K, WEIGHTS_ENV
from gradcam.errors import GradCAMError, WeightsError
from gradcam.explainer import Explainer
from gradcam.explanation import Explanation
from gradcam.heads import HEAD_CHOICES
from gradcam.methods import METHODS, get_method
from gradcam.names import file_safe
from gradcam.preprocess import RESIZE_CHOICES, parse_size, parse_values
from gradcam.registry import available_offline, load_backbone
from gradcam.save import masking_manifest, save_explanation, trust_manifest
from gradcam.specs import BUILTINS
from gradcam.video import open_clip, sniff_video

log = logging.getLogger("gradcam")

EXIT_FAILED_IMAGES = 1
EXIT_USAGE = 2
DEFAULT_MODEL = "vgg19"
#: The model whose weights ship inside a package: used when the default one cannot be had.
FALLBACK_MODEL = "efficientnet_lite0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradcam",
        description="Show which regions of an image made a classifier decide what it decided (Grad-CAM).",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders of images")
    parser.add_argument(
        "--model",
        metavar="SPEC",
        help=f"the classifier: {', '.join(BUILTINS)}, torchvision:NAME, timm:NAME or hf:PATH_OR_ID (default: vgg19; "
        f"without its weights and without internet, the embedded {FALLBACK_MODEL})",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        help="class names of a fine-tuned model, one per line (with --weights); a binary model (one logit): "
        "two lines, the negative class first, or one (the positive class)",
    )
    parser.add_argument("--layer", help="dotted name of the layer to explain (default: found automatically)")
    parser.add_argument(
        "--head",
        choices=HEAD_CHOICES,
        default="auto",
        help="how logits become probabilities: auto (binary for one logit, else softmax, or what a Hugging Face "
        "config declares), softmax, or sigmoid (multi-label: each class on its own) (default: auto)",
    )
    fed = parser.add_argument_group("input (for a fine-tune its weights enum or timm config does not describe)")
    fed.add_argument(
        "--size", metavar="N|HxW", help="the network input: shorter side N, or with --resize exact N x N or H x W"
    )
    fed.add_argument("--mean", nargs="+", metavar="M", help="per-channel mean on the [0, 1] scale, e.g. 0.5 0.5 0.5")
    fed.add_argument("--std", nargs="+", metavar="S", help="per-channel std on the [0, 1] scale, e.g. 0.5 0.5 0.5")
    fed.add_argument(
        "--resize",
        choices=RESIZE_CHOICES,
        help="short: shorter side --size, aspect ratio kept (default); exact: stretched to the size",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default: auto)"
    )
    parser.add_argument("--target", help="class to explain, by name or ImageNet index (default: the top prediction)")
    parser.add_argument(
        "--method",
        default="gradcam",
        metavar="NAME",
        help=f"the CAM method: {', '.join(METHODS)} (default: gradcam; scorecam runs one pass per channel)",
    )
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"predictions to report (default: {TOP_K})")
    parser.add_argument(
        "--threshold", type=float, default=BOX_THRESHOLD, help="box threshold, fraction of the map's maximum"
    )
    parser.add_argument("--alpha", type=float, default=OVERLAY_ALPHA, help="overlay opacity (default: %(default)s)")
    parser.add_argument("--colormap", default=COLORMAP, help="matplotlib colormap (default: %(default)s)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile VGG19's convolutional trunk with torch.compile (falls back to eager)",
    )
    parser.add_argument("--out", type=Path, default=Path("gradcam-out"), help="output folder (default: %(default)s)")
    parser.add_argument(
        "--weights",
        help=f"local state dict, or '{RANDOM_WEIGHTS}' for an untrained model (default: ${WEIGHTS_ENV}, "
        "else torchvision's pretrained weights)",
    )
    more = parser.add_argument_group("more views (each writes more files into the image's folder)")
    more.add_argument(
        "--counterfactual",
        action="store_true",
        help="also map what speaks against the class (Grad-CAM with negated gradients): "
        "counter_heatmap.png, counter_overlay.png",
    )
    more.add_argument(
        "--masking-test",
        action="store_true",
        help="hide the highlighted region and see what the model says then, with a deletion curve: "
        'deletion.png, and the numbers under "masking_test" in manifest.json',
    )
    more.add_argument(
        "--trust",
        action="store_true",
        help="score the map the field's ways (deletion and insertion, ROAD, the randomisation test), about 70 "
        'forward passes: trust.png (the curves), trust_scrambled.png, and the numbers under "trust" in manifest.json',
    )
    more.add_argument(
        "--guided", action="store_true", help="Guided Grad-CAM, the fine detail inside the region: guided_gradcam.png"
    )
    more.add_argument(
        "--report", action="store_true", help="one picture for slides: panels, top guesses, a sentence: report.png"
    )
    more.add_argument(
        "--compare-classes",
        type=int,
        metavar="N",
        help="overlays of the N most likely classes, from one pass: class-<rank>-<name>.png "
        '(rank 1 = most likely), listed under "compare_classes" in manifest.json',
    )
    clips = parser.add_argument_group("video clips (one MP4, MOV or WebM clip instead of images)")
    clips.add_argument(
        "--every",
        type=int,
        metavar="N",
        help="explain every N-th frame of the clip (default: every frame); writes overlay.mp4 and frames.csv",
    )
    return parser


#: The options that add views of one image, which a clip does not have.
_IMAGE_VIEWS = {
    "counterfactual": "--counterfactual",
    "masking_test": "--masking-test",
    "guided": "--guided",
    "report": "--report",
    "compare_classes": "--compare-classes",
}


def _clip(inputs: Sequence[str]) -> tuple[Path | None, str | None]:
    """The video clip named on the command line, if one is; or a usage error."""
    videos = [Path(item) for item in inputs if _is_video(Path(item))]
    if not videos:
        return None, None
    if len(inputs) > 1:
        return None, f"explain one video clip at a time, without images ({videos[0]} is a clip)"
    return videos[0], None


def _is_video(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return sniff_video(file.read(64)) is not None


def _explain_video(explainer: Explainer, path: Path, args: argparse.Namespace) -> int:
    """Explains a clip into ``args.out`` with a progress bar; one line when it is refused."""
    with tqdm(unit="frame", file=sys.stderr, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = max(total, done) or None
            bar.update(done - bar.n)

        try:
            result: ExplainedClip = explain_clip(
                explainer,
                path,
                args.out,
                target=args.target,
                every=args.every or 1,
                threshold=args.threshold,
                alpha=args.alpha,
                colormap=args.colormap,
                progress=progress,
            )
        except GradCAMError as exc:
            bar.close()
            print(f"error: {path}: {exc}", file=sys.stderr)
            return EXIT_FAILED_IMAGES
        except OSError as exc:
            bar.close()
            print(f"error: {path}: cannot write the results: {exc}", file=sys.stderr)
            return EXIT_FAILED_IMAGES
    print(words.clip_line(result, str(path), str(args.out)))
    return 0


def _images(inputs: Sequence[str], skipped: list[Path]) -> Iterator[Path]:
    """Files named on the command line, and the image files inside named folders.

    A folder's entry named like an image is given to the reader whatever it is: a
    pipe or a device (or a link to one) is then refused in one line, not read.
    """
    extensions = set(Image.registered_extensions())
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            yield path
            continue
        for child in sorted(path.iterdir()):
            if child.name.startswith(".") or child.is_dir():
                continue
            if child.suffix.lower() in extensions:
                yield child
            else:
                skipped.append(child)


def _unique_folder(out: Path, stem: str, used: set[str]) -> Path:
    """A new folder inside ``out`` for an input of this stem (``cat``, ``cat-2`` ...).

    The name is file-safe (letters, digits, ``-`` and ``_``): the stem of an input named
    ``...png`` is ``..``, which would put the files beside ``--out`` instead of inside it.
    """
    base = file_safe(stem, "image", 100)
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return out / name


def _views(
    explanation: Explanation, args: argparse.Namespace
) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    """The pictures, manifest entries and printed lines that the options ask for (no model run)."""
    pictures: dict[str, np.ndarray] = {}
    entries: dict[str, Any] = {}
    lines: list[str] = []
    if args.counterfactual:
        against = views.counterfactual(explanation, args.alpha, args.colormap)
        pictures["counter_heatmap.png"], pictures["counter_overlay.png"] = against
        entries["counter_empty"] = explanation.counter_empty
    if explanation.masking is not None:
        pictures["deletion.png"] = views.masking(explanation)[2]
        entries["masking_test"] = masking_manifest(explanation.masking)
        lines.append(f"  masking test: {entries['masking_test']['sentence']}")
    if explanation.trust is not None:
        curves, scrambled = views.trust(explanation, args.alpha, args.colormap)
        pictures["trust.png"] = curves
        if scrambled is not None:
            pictures["trust_scrambled.png"] = scrambled
        entries["trust"] = trust_manifest(explanation.trust)
        lines.append(f"  trust: {entries['trust']['sentence']}")
    if explanation.guided is not None:
        pictures["guided_gradcam.png"] = views.guided(explanation)
    if args.report:
        asked = args.target is not None
        pictures["report.png"] = views.one_picture(explanation, args.alpha, args.colormap, asked=asked)
    if args.compare_classes:
        listed = []
        overlays = views.classes(explanation, args.alpha, args.colormap)
        for rank, (picture, _), other in zip(range(1, args.compare_classes + 1), overlays, explanation.classes):
            name = f"class-{rank}-{file_safe(other.name, 'class')}.png"
            pictures[name] = picture
            listed.append(
                {"rank": rank, "index": other.index, "name": other.name, "probability": other.probability, "file": name}
            )
        entries["compare_classes"] = listed
    if pictures:
        entries["more_files"] = list(pictures)
    return pictures, entries, lines


def input_options(args: argparse.Namespace) -> dict[str, Any]:
    """The head and input options given (``--head``, ``--size``, ``--mean``, ``--std``, ``--resize``), checked.

    Raises:
        SettingError: a size or values that are not numbers, in one sentence.
    """
    options: dict[str, Any] = {"head": args.head}
    if args.size is not None:
        options["size"] = parse_size(args.size)
    if args.mean is not None:
        options["mean"] = parse_values(args.mean, "mean")
    if args.std is not None:
        options["std"] = parse_values(args.std, "std")
    if args.resize is not None:
        options["resize"] = args.resize
    return options


def _backbone(args: argparse.Namespace) -> Backbone:
    """The asked model; without --model, the default, or the embedded one when the default's weights cannot be had."""
    weights = args.weights if args.weights is not None else os.environ.get(WEIGHTS_ENV) or None
    progress = sys.stderr.isatty()
    spec = args.model or DEFAULT_MODEL
    options = input_options(args)
    try:
        return load_backbone(spec, weights, args.labels, args.layer, device=args.device, progress=progress, **options)
    except WeightsError:
        if args.model is not None or weights is not None or available_offline(spec)[0]:
            raise
    print(
        f"note: the {spec} weights cannot be had here (no internet); using the embedded {FALLBACK_MODEL} instead",
        file=sys.stderr,
    )
    return load_backbone(FALLBACK_MODEL, device=args.device, progress=progress, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    if not 0.0 <= args.threshold <= 1.0 or not 0.0 <= args.alpha <= 1.0:
        print("error: --threshold and --alpha must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    if args.colormap not in matplotlib.colormaps:
        print(f"error: unknown --colormap {args.colormap!r}; try jet, viridis or cividis", file=sys.stderr)
        return EXIT_USAGE
    if args.compare_classes is not None and args.compare_classes < 1:
        print("error: --compare-classes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    clip, mixed = _clip(args.inputs)
    if mixed is not None:
        print(f"error: {mixed}", file=sys.stderr)
        return EXIT_USAGE
    if args.every is not None and (clip is None or args.every < 1):
        print("error: --every N takes a whole number of at least 1, for one video clip", file=sys.stderr)
        return EXIT_USAGE
    views_asked = [flag for name, flag in _IMAGE_VIEWS.items() if getattr(args, name)]
    if clip is not None and views_asked:
        asked = ", ".join(views_asked)
        print(f"error: {asked} explain one image; a clip gets overlay.mp4 and frames.csv", file=sys.stderr)
        return EXIT_USAGE
    if clip is not None:
        try:
            open_clip(clip).close()  # a clip that cannot be read is told before the model loads
        except GradCAMError as exc:
            print(f"error: {clip}: {exc}", file=sys.stderr)
            return EXIT_FAILED_IMAGES
    try:
        method = get_method(args.method)
    except GradCAMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.counterfactual and not method.counterfactual:
        print(f"error: {method.title} has no counterfactual map (it does not use the class's gradients); "
              "leave out --counterfactual or choose another --method", file=sys.stderr)
        return EXIT_USAGE
    try:
        explainer = Explainer(_backbone(args), compile=args.compile)
        if args.target is not None:
            explainer.class_index(args.target)  # fail before the first image
    except GradCAMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    classes = len(explainer.backbone.categories)
    if args.compare_classes is not None and args.compare_classes > classes:
        print(f"error: --compare-classes must be at most {classes}, the classes the model knows", file=sys.stderr)
        return EXIT_USAGE
    if explainer.backbone.untrained:
        print(f"note: {words.UNTRAINED_NOTE}", file=sys.stderr)
    if clip is not None:
        return _explain_video(explainer, clip, args)
    skipped: list[Path] = []
    paths = list(_images(args.inputs, skipped))
    if skipped:
        names = ", ".join(p.name for p in skipped)
        print(f"skipping {len(skipped)} files that are not images: {names}", file=sys.stderr)
    failed, used = 0, set[str]()
    for path in tqdm(paths, unit="image", disable=len(paths) < 2, file=sys.stderr):
        try:
            explanation = explainer.explain(
                path,
                args.target,
                top_k=args.top_k,
                threshold=args.threshold,
                counterfactual=args.counterfactual,
                masking=args.masking_test,
                guided=args.guided,
                compare=args.compare_classes or 0,
                method=method.name,
                trust=args.trust,
            )
            pictures, entries, lines = _views(explanation, args)
            folder = _unique_folder(args.out, path.stem, used)
            save_explanation(explanation, folder, source=path, alpha=args.alpha, colormap=args.colormap, extra=entries)
            for name, picture in pictures.items():
                encode.write_png(folder / name, picture)
        except GradCAMError as exc:
            failed += 1
            tqdm.write(f"error: {path}: {exc}", file=sys.stderr)
            continue
        except OSError as exc:  # the results cannot be written (not a folder, no permission, disk full)
            failed += 1
            tqdm.write(f"error: {path}: cannot write the results: {exc}", file=sys.stderr)
            continue
        except Exception:  # report, keep going with the other images
            failed += 1
            log.exception("unexpected failure on %s", path)
            continue
        tqdm.write(words.cli_line(explanation, str(path), str(folder)))
        for line in lines:
            tqdm.write(line)
    if failed:
        print(f"{failed} of {len(paths)} images failed", file=sys.stderr)
    return EXIT_FAILED_IMAGES if failed else 0
