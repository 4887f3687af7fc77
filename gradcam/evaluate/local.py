"""The local engine: batched Grad-CAM over a dataset on one machine.

Work is planned once (:func:`plan_batches`): images are ordered by their size
(read from the file header) and cut into batches, so that most batches hold
images of one size. :class:`BatchEvaluator` turns one planned batch into rows;
it groups the images of the batch by original size, so that every forward pass
takes equally sized inputs and each map equals what :meth:`gradcam.Explainer.explain`
gives for that image alone. The Ray engine runs the same plan through the same
evaluator, so both engines give the same rows.

:func:`run_local` decodes the next batches in a thread pool while the model
works on the current one, appends each batch's rows to ``results.csv`` as soon as
they exist (:class:`ResultsWriter`), and shows a progress bar.
"""

from __future__ import annotations

import csv
import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gradcam.errors import GradCAMError
from gradcam.evaluate.annotations import GroundTruth, Sample
from gradcam.evaluate.metrics import ImageResult, clip_box, score_image
from gradcam.explainer import Explainer
from gradcam.images import image_size, load_image

#: Batches decoded ahead of the model.
PREFETCH = 2
#: Threads that decode images and score maps beside the model (OpenCV and NumPy release the GIL).
WORKERS = min(8, os.cpu_count() or 1)


def header_size(path: str) -> tuple[int, int]:
    """An image's upright ``(height, width)`` from its header, without decoding; ``(0, 0)`` if unreadable.

    Read through the same gate as the decoding (:func:`gradcam.images.image_size`):
    a pipe or a device in the dataset is not opened, no reader outside the allowed
    formats runs, and an icon (which Pillow decodes as it opens it) is checked first.
    """
    try:
        return image_size(path)
    except GradCAMError:  # the decoder reports the reason when the image is evaluated
        return 0, 0


def plan_batches(samples: Sequence[Sample], batch_size: int) -> list[list[Sample]]:
    """Orders samples by image size (then name) and cuts them into batches of ``batch_size``.

    The plan depends only on the samples and their files, so every engine and
    every rerun evaluates the same images together.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    keyed = sorted(samples, key=lambda s: (header_size(s.path), s.image))
    return [keyed[i : i + batch_size] for i in range(0, len(keyed), batch_size)]


@dataclass(frozen=True)
class Decoded:
    """A sample ready for the model: the network input and the image size; or why it failed."""

    sample: Sample
    x: torch.Tensor | None = None
    size: tuple[int, int] = (0, 0)
    error: str = ""


class BatchEvaluator:
    """Evaluates batches of samples with one explainer; the unit both engines run.

    Args:
        explainer: the model to evaluate, with its preprocessing.
        threshold: box threshold, a fraction of the map's maximum.
    """

    def __init__(self, explainer: Explainer, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
        self.explainer = explainer
        self.threshold = threshold
        self.categories = explainer.backbone.categories

    def decode(self, sample: Sample) -> Decoded:
        """Reads and preprocesses one image; a bad image becomes an error, never an exception."""
        try:
            rgb = load_image(sample.path)
        except GradCAMError as exc:
            return Decoded(sample, error=str(exc))
        except OSError as exc:
            return Decoded(sample, error=f"cannot read the file ({exc.strerror or exc})")
        return Decoded(sample, self.explainer.preprocess(rgb), rgb.shape[:2])

    def evaluate(self, decoded: Sequence[Decoded]) -> list[ImageResult]:
        """Scores decoded images, in the order given: images of one size share forward passes."""
        results: dict[int, ImageResult] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(decoded):
            if item.error:
                results[index] = ImageResult(item.sample.image, error=item.error)
            else:
                groups.setdefault(item.size, []).append(index)
        for size, indices in groups.items():
            for index, result in zip(indices, self._evaluate_group([decoded[i] for i in indices], size)):
                results[index] = result
        return [results[i] for i in range(len(decoded))]

    def __call__(self, samples: Sequence[Sample]) -> list[ImageResult]:
        """Decodes and scores a batch, in the calling thread."""
        return self.evaluate([self.decode(s) for s in samples])

    def class_maps(
        self, items: Sequence[Decoded], objects: Sequence[Sequence[GroundTruth]]
    ) -> tuple[np.ndarray, list[dict[int, np.ndarray]]]:
        """Class probabilities and maps for decoded images of one size, in one forward pass.

        Only the annotated classes are explained: every figure of a row that
        uses a map (localisation, pointing, energy, the best box) uses the map
        of an annotated class; the best classes come from the probabilities.

        Args:
            items: decoded images, all of one original size.
            objects: each image's annotated objects.

        Returns:
            Probabilities ``(N, num_classes)`` (by the backbone's head, as the explainer's), and for each image the map
            ``(height, width)`` of each of its annotated classes, by class index
            (of its best class for an image without objects).
        """
        size = items[0].size
        # (N, 3, h, w): one original size, one input size
        x = torch.cat([item.x for item in items if item.x is not None])
        # Each image's annotated classes, padded with its first to one width: one forward, one batched backward.
        asked: list[list[int | None]] = [list(dict.fromkeys(o.label for o in found)) or [None] for found in objects]
        width = max(len(labels) for labels in asked)
        targets = [labels + [labels[0]] * (width - len(labels)) for labels in asked]
        result = self.explainer.cam.compute(x, targets, size=size)
        maps, classes = result.maps.cpu(), result.classes.cpu()  # (N, K, H, W), (N, K)
        by_image = [{int(c): maps[n, k].numpy() for k, c in enumerate(classes[n])} for n in range(len(items))]
        return self.explainer.probabilities_of(result.logits), by_image  # the backbone's head: one rule everywhere

    def _evaluate_group(self, items: Sequence[Decoded], size: tuple[int, int]) -> list[ImageResult]:
        clipped = [_clip_objects(item.sample, *size) for item in items]
        probabilities, maps = self.class_maps(items, [objects for objects, _ in clipped])

        def score(n: int) -> ImageResult:
            item, (objects, notes) = items[n], clipped[n]
            if not objects:
                return ImageResult(item.sample.image, notes=notes, error="no annotated box lies inside the image")
            return score_image(
                item.sample.image, objects, self.categories, probabilities[n], maps[n], self.threshold, notes
            )

        if len(items) == 1 or WORKERS == 1:
            return [score(0)] if len(items) == 1 else [score(n) for n in range(len(items))]
        # The maps' boxes and metrics, side by side.
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="score") as pool:
            return list(pool.map(score, range(len(items))))


def _clip_objects(sample: Sample, height: int, width: int) -> tuple[list[GroundTruth], str]:
    """The sample's boxes cut to the image, and a note on what was changed."""
    kept, clipped, dropped = [], 0, 0
    for obj in sample.objects:
        box = clip_box(obj.box, height, width)
        if box is None:
            dropped += 1
        else:
            clipped += box != obj.box
            kept.append(GroundTruth(obj.label, box))
    words = []
    if clipped:
        words.append(f"{clipped} box(es) cut to the {width}x{height} image")
    if dropped:
        words.append(f"{dropped} box(es) outside the {width}x{height} image ignored")
    return kept, "; ".join(words)


class ResultsWriter:
    """Appends rows to ``results.csv`` one batch at a time; knows which images are done.

    A file left by an interrupted run is kept: a last line cut short by the
    interruption is dropped, and its images count as done (a rerun skips them).
    A row for an image already written is never written again.

    Args:
        path: the CSV file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        columns = ImageResult.columns()
        if self.path.exists():
            _drop_partial_line(self.path)
            with self.path.open(newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                if reader.fieldnames is not None and tuple(reader.fieldnames) != columns:
                    raise GradCAMError(
                        f"{self.path} was written by another version (its columns differ); use another --out."
                    )
                self.done = {_unescaped(row["image"]) for row in reader}
        self._file = self.path.open("a", newline="", encoding="utf-8")
        if self._file.tell() == 0:
            self._file.write(",".join(columns) + "\r\n")
            self._file.flush()

    def write(self, results: Iterable[ImageResult]) -> int:
        """Appends the rows of images not yet written, in one write; returns how many."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, ImageResult.columns())
        written = 0
        for result in results:
            if result.image in self.done:
                continue
            writer.writerow(_escaped_row(result))
            self.done.add(result.image)
            written += 1
        if written:
            self._file.write(buffer.getvalue())
            self._file.flush()
            os.fsync(self._file.fileno())
        return written

    def close(self) -> None:
        """Closes the file."""
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_partial_line(path: Path) -> None:
    with path.open("rb+") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def read_results(path: str | os.PathLike[str]) -> list[ImageResult]:
    """Every row of a ``results.csv``, its text as it was before :class:`ResultsWriter` escaped it."""
    with Path(path).open(newline="", encoding="utf-8") as file:
        return [ImageResult.from_row({k: _unescaped(v) for k, v in row.items()}) for row in csv.DictReader(file)]


#: What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection"): a text cell that starts
#: so is written after a quote, which spreadsheets hide ("'=HYPERLINK(...)" shows as the text it is);
#: so is one that starts with a quote, so that reading always removes exactly one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
#: The text columns of a row (the others hold numbers, which are written as they are).
_TEXT_COLUMNS = frozenset(f.name for f in fields(ImageResult) if f.type == "str")


def _escaped_row(result: ImageResult) -> dict[str, str]:
    """The result's CSV row, its text cells escaped so that no spreadsheet runs them as formulas."""
    return {k: "'" + v if k in _TEXT_COLUMNS and v.startswith(_FORMULA_START) else v for k, v in result.row().items()}


def _unescaped(text: str) -> str:
    """A cell's text as it was before :func:`_escaped_row` (numbers never start with a quote)."""
    return text[1:] if text.startswith("'") else text


BatchHook = Callable[[int, list[ImageResult]], None]


def run_local(
    evaluator: BatchEvaluator,
    batches: Sequence[Sequence[Sample]],
    writer: ResultsWriter,
    *,
    workers: int = WORKERS,
    progress: bool = True,
    on_batch: BatchHook | None = None,
) -> int:
    """Evaluates planned batches on this machine, writing each batch's rows as it finishes.

    Args:
        evaluator: the model and its settings.
        batches: the plan (see :func:`plan_batches`); images already in
            ``writer.done`` are skipped.
        writer: where rows go.
        workers: decoding threads.
        progress: show a progress bar.
        on_batch: called after each batch is written with its number and rows.

    Returns:
        How many rows were written.
    """
    todo = [[s for s in batch if s.image not in writer.done] for batch in batches]
    todo = [batch for batch in todo if batch]
    written = 0
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool, tqdm(
        total=sum(map(len, todo)), unit="image", disable=not progress, desc="evaluate"
    ) as bar:
        pending: deque[list[Future[Decoded]]] = deque()
        upcoming = iter(todo)

        def submit() -> None:
            batch = next(upcoming, None)
            if batch is not None:
                pending.append([pool.submit(evaluator.decode, s) for s in batch])

        for _ in range(PREFETCH):
            submit()
        number = 0
        while pending:
            futures = pending.popleft()
            submit()  # decoding of a later batch overlaps the model's work on this one
            results = evaluator.evaluate([f.result() for f in futures])
            written += writer.write(results)
            bar.update(len(results))
            if on_batch is not None:
                on_batch(number, results)
            number += 1
    return written


def as_arrays(results: Sequence[ImageResult]) -> dict[str, np.ndarray]:
    """Rows as columns of text (the batch format Ray Data moves between processes)."""
    rows = [r.row() for r in results]
    return {column: np.array([row[column] for row in rows], dtype=object) for column in ImageResult.columns()}
