"""Command line: ``python -m gradcam evaluate IMAGES --annotations ANN --out DIR [options]``.

Prints the figures in one short block and where the results are; expected
mistakes (no such annotations, Ray missing, another run in DIR) end in one line
and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gradcam.cli import input_options
from gradcam.config import BOX_THRESHOLD
from gradcam.errors import GradCAMError
from gradcam.evaluate.run import ENGINES, evaluate_dataset
from gradcam.heads import HEAD_CHOICES
from gradcam.preprocess import RESIZE_CHOICES
from gradcam.registry import load_backbone

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradcam evaluate",
        description="Explain every image of an annotated dataset and measure whether Grad-CAM points at the objects "
        "(accuracy, localisation error, pointing game), on this machine or a Ray cluster.",
    )
    parser.add_argument(
        "images", type=Path, metavar="IMAGES", help="folder the annotations' image names are relative to"
    )
    parser.add_argument("--annotations", required=True, type=Path, metavar="ANN",
                        help="CSV (image,label,x0,y0,x1,y1) or Pascal VOC / ILSVRC XML file or folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (a rerun resumes it)")
    parser.add_argument("--model", default="vgg19", metavar="SPEC", help="model spec (default: vgg19)")
    parser.add_argument("--weights", help="weights: a state dict path, or 'random' (default: the pretrained ones)")
    parser.add_argument("--labels", help="class names, one per line (a fine-tuned model)")
    parser.add_argument("--layer", help="target layer, dotted name (default: the model's)")
    parser.add_argument("--head", choices=HEAD_CHOICES, default="auto",
                        help="how logits become probabilities: auto, softmax or sigmoid (multi-label)")
    parser.add_argument("--size", metavar="N|HxW", help="network input: shorter side, or with --resize exact the size")
    parser.add_argument("--mean", nargs="+", metavar="M", help="per-channel mean on the [0, 1] scale")
    parser.add_argument("--std", nargs="+", metavar="S", help="per-channel std on the [0, 1] scale")
    parser.add_argument("--resize", choices=RESIZE_CHOICES, help="short (aspect ratio kept, default) or exact")
    parser.add_argument(
        "--threshold", type=float, default=BOX_THRESHOLD, help="box threshold, fraction of the map's maximum"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs")
    parser.add_argument("--engine", default="local", choices=ENGINES, help="local (default) or ray")
    parser.add_argument("--ray-address", help="Ray cluster to join ('auto' for the one this machine belongs to)")
    parser.add_argument("--ray-actors", type=_positive(int), metavar="N",
                        help="models running at once on Ray (default: one per GPU with cuda, else 2)")
    parser.add_argument("--ray-cpus-per-actor", type=_positive(float), metavar="C",
                        help="CPUs Ray reserves for each (default: 1 with cuda, else 0.5); each computes with as many "
                        "torch threads as the local engine here, so the rows equal its rows")
    parser.add_argument("--limit", type=int, help="evaluate only the first N annotated images")
    parser.add_argument("--no-pictures", action="store_true", help="leave the example pictures out of report.html")
    return parser


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def _factory(args: argparse.Namespace) -> functools.partial[Any]:
    """``load_backbone`` with the asked options (only those given, by keyword).

    Raises:
        SettingError: a size or per-channel values that are not numbers.
    """
    options = {k: getattr(args, k) for k in ("weights", "labels", "layer") if getattr(args, k) is not None}
    return functools.partial(load_backbone, args.model, device=args.device, **options, **input_options(args))


def _ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Ray pool's size and CPUs, those given."""
    given = {"actors": args.ray_actors, "cpus_per_actor": args.ray_cpus_per_actor}
    return {k: v for k, v in given.items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        figures, found = evaluate_dataset(
            args.images, args.annotations, args.out, _factory(args),
            threshold=args.threshold, batch_size=args.batch_size, device=args.device, engine=args.engine,
            ray_address=args.ray_address, ray_options=_ray_options(args), limit=args.limit, report=not args.no_pictures,
        )
    except (GradCAMError, KeyError, TypeError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {text}", file=sys.stderr)
        return EXIT_USAGE

    def pct(key: str) -> str:
        value = figures[key]
        return "n/a" if value is None else f"{100 * value:.2f}%"

    if found.problems:
        first = found.problems[0].text()
        print(f"{len(found.problems)} annotation problem(s), first: {first} (all: {args.out / 'problems.txt'})")
    print(f"{figures['images']} images ({figures['failed']} failed) with {figures['model']} at {figures['layer']} "
          f"in {figures['seconds']:.1f} s")
    print(f"top-1 / top-5 accuracy           {pct('top1_accuracy')} / {pct('top5_accuracy')}")
    print(f"top-1 / top-5 localisation error {pct('top1_localization_error')} / {pct('top5_localization_error')}")
    print(f"pointing game                    {pct('pointing_accuracy')}")
    print(f"energy inside the boxes          {pct('energy_in_box')}")
    print(f"results: {args.out / 'results.csv'}, {args.out / 'summary.json'}, {args.out / 'report.html'}")
    return 0
