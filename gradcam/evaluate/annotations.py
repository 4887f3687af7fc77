"""Ground truth for a dataset: image files, their classes and object boxes.

Two formats are read:

* a CSV file with the header ``image,label,x0,y0,x1,y1`` (one row per box, any
  number of rows per image; ``image`` relative to the images folder; ``label``
  a class name or index of the model, or an ImageNet WordNet id; corners in
  pixels of the original image, inclusive);
* Pascal VOC / ILSVRC XML files (a folder of them, or one file): ``filename``,
  and per ``object`` its ``name`` (a class name or a WordNet id such as
  ``n02123045``) and ``bndbox`` corners ``xmin, ymin, xmax, ymax``, taken as
  inclusive pixel corners as written.

Nothing in an annotation file stops a run: every bad row, unknown label or
missing image becomes a :class:`Problem` (identical problems are counted, not
repeated), and the rest is evaluated. XML is parsed with the standard library
after refusing any document that declares a DTD or entities (the "billion
laughs" expansion and external entities need one) and any file over
``MAX_XML_BYTES``. Only regular files are read, annotations and images alike,
and no more bytes than a cap stated before reading (:mod:`gradcam.files`): a
FIFO, a device (a link to ``/dev/zero``) or a socket is one problem line, never
a hang; so is a file of a folder that is a link to a file outside that folder.
"""

from __future__ import annotations

import csv
import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gradcam.boxes import Box
from gradcam.errors import FileRefusedError, GradCAMError
from gradcam.explainer import resolve_class
from gradcam.files import not_regular, read_regular_file, within

#: CSV columns, in this order in the header (extra columns are ignored).
CSV_COLUMNS = ("image", "label", "x0", "y0", "x1", "y1")
#: Largest XML annotation file read (a VOC file is about 1 kB).
MAX_XML_BYTES = 1 << 20
#: Largest CSV annotation file read: a row is about 60 bytes, so some two million boxes.
MAX_CSV_BYTES = 128 << 20
#: Image file extensions tried for an ILSVRC ``filename`` written without one.
IMAGE_EXTENSIONS = (".JPEG", ".jpeg", ".jpg", ".JPG", ".png", ".PNG")

_WNID = re.compile(r"^n\d{8}$")
_DECLARATIONS = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class AnnotationError(GradCAMError, ValueError):
    """The annotations cannot be read at all (no such file, no XML files in the folder)."""


@dataclass(frozen=True)
class GroundTruth:
    """One annotated object: the model's class index and its box ``(x0, y0, x1, y1)``, corners inclusive."""

    label: int
    box: Box


@dataclass(frozen=True)
class Sample:
    """One image to evaluate.

    Attributes:
        image: the image as the annotations name it (relative to the images
            folder); the key of its row in ``results.csv``.
        path: the file to read.
        objects: its annotated objects.
    """

    image: str
    path: str
    objects: tuple[GroundTruth, ...]

    @property
    def labels(self) -> tuple[int, ...]:
        """The annotated classes, each once, in the order first annotated."""
        return tuple(dict.fromkeys(o.label for o in self.objects))

    def to_json(self) -> dict[str, object]:
        """A plain dict (for Ray rows and JSON files)."""
        return {"image": self.image, "path": self.path, "objects": [[o.label, *o.box] for o in self.objects]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Sample:
        """The inverse of :meth:`to_json`."""
        objects = tuple(GroundTruth(int(o[0]), (int(o[1]), int(o[2]), int(o[3]), int(o[4]))) for o in data["objects"])  # type: ignore[attr-defined]
        return cls(str(data["image"]), str(data["path"]), objects)


@dataclass(frozen=True)
class Problem:
    """Something in the annotations that was skipped, said for a person.

    Attributes:
        source: the annotation file.
        where: the place in it ("line 12", "object 2"); the first place when
            the same problem repeats.
        image: the image concerned ("" when none).
        message: what is wrong and what was done about it.
        count: how many times this problem occurred.
    """

    source: str
    where: str
    image: str
    message: str
    count: int = 1

    def text(self) -> str:
        """One line: ``file, line 12 (and 99,999 more), cat.jpg: message``."""
        more = f" (and {self.count - 1:,} more like it)" if self.count > 1 else ""
        image = f", {self.image}" if self.image else ""
        return f"{self.source}, {self.where}{more}{image}: {self.message}"


@dataclass(frozen=True)
class Annotations:
    """The samples that can be evaluated and the problems found while reading them."""

    samples: tuple[Sample, ...]
    problems: tuple[Problem, ...]


@dataclass
class _Problems:
    """Collects problems, merging repeats of the same message for the same image."""

    found: dict[tuple[str, str, str], Problem] = field(default_factory=dict)

    def add(self, source: str, where: str, image: str, message: str, count: int = 1) -> None:
        key = (source, image, message)
        seen = self.found.get(key)
        self.found[key] = Problem(source, where, image, message, count) if seen is None else Problem(
            seen.source, seen.where, image, message, seen.count + count
        )

    def all(self) -> tuple[Problem, ...]:
        return tuple(self.found.values())


class LabelResolver:
    """Maps annotation labels to the model's class indices, remembering every answer.

    A label is a class name of the model (case-insensitive), a class index, or
    an ImageNet WordNet id. WordNet ids map through the sorted synset list that
    timm ships (torchvision's and timm's ImageNet-1k heads are in that order),
    for models with 1,000 classes; a model whose own class names are WordNet ids
    uses them directly.

    Args:
        categories: the model's class names, index-aligned with its logits.
    """

    def __init__(self, categories: Sequence[str]) -> None:
        self.categories = tuple(categories)
        self._known: dict[str, int | str] = {}
        self._wnids: dict[str, int] | None = None

    def __call__(self, label: str) -> int:
        """The class index of ``label``.

        Raises:
            ValueError: the model has no such class; the message says why.
        """
        label = label.strip()
        answer = self._known.get(label)
        if answer is None:
            answer = self._known[label] = self._resolve(label)
        if isinstance(answer, str):
            raise ValueError(answer)
        return answer

    def _resolve(self, label: str) -> int | str:
        if not label:
            return "empty label"
        if _WNID.match(label) and label not in self.categories:
            return self._wnid(label)
        try:
            return resolve_class(self.categories, label)
        except GradCAMError as exc:
            return str(exc)

    def _wnid(self, label: str) -> int | str:
        if len(self.categories) != 1000:
            return f"WordNet id {label} needs an ImageNet-1k model (this one has {len(self.categories)} classes)"
        if self._wnids is None:
            try:
                from timm.data import ImageNetInfo
            except ImportError:
                return "WordNet ids need the timm package (pip install timm)"
            self._wnids = {wnid: index for index, wnid in enumerate(ImageNetInfo().label_names())}
        index = self._wnids.get(label)
        return f"{label} is not an ImageNet-1k WordNet id" if index is None else index


def read_annotations(
    source: str | os.PathLike[str], images: str | os.PathLike[str], categories: Sequence[str]
) -> Annotations:
    """Reads a CSV file, an XML file or a folder of XML files.

    Args:
        source: the annotations.
        images: the folder the image names are relative to.
        categories: the model's class names.

    Returns:
        The samples, in the order their images first appear, and the problems.

    Raises:
        AnnotationError: the annotations do not exist or hold no XML file.
    """
    source, root = Path(source), Path(images)
    resolver = LabelResolver(categories)
    problems = _Problems()
    rows: Iterable[tuple[str, str, str, str, Sequence[str]]]
    if source.is_dir():
        files = sorted(source.rglob("*.xml"))
        if not files:
            raise AnnotationError(f"{source} holds no .xml annotation files.")
        rows = (row for path in files for row in _xml_rows(path, root, problems, folder=source))
    elif source.exists():  # a pipe or a device too: refused as it is read, in one problem line
        rows = _xml_rows(source, root, problems) if source.suffix.lower() == ".xml" else _csv_rows(source, problems)
    else:
        raise AnnotationError(f"Annotations {source} not found.")
    return _collect(rows, root, resolver, problems)


# A raw annotation row: source file, place, image name, label text, corners as text.
_Row = tuple[str, str, str, str, Sequence[str]]


def _csv_rows(path: Path, problems: _Problems) -> Iterable[_Row]:
    name = path.name
    try:
        data = read_regular_file(path, MAX_CSV_BYTES, "a CSV annotation file")
    except FileRefusedError as exc:
        problems.add(name, "file", "", f"{exc.reason}; nothing read")
        return
    except OSError as exc:
        problems.add(name, "file", "", f"cannot be read ({exc.strerror or exc}); nothing read")
        return
    with io.StringIO(data.decode("utf-8", errors="replace"), newline="") as file:
        reader = csv.reader(file)
        try:
            header = [column.strip().lower() for column in next(reader, [])]
        except csv.Error as exc:
            problems.add(name, "line 1", "", f"unreadable header ({exc}); nothing read")
            return
        missing = [column for column in CSV_COLUMNS if column not in header]
        if missing:
            expected = ",".join(CSV_COLUMNS)
            problems.add(
                name, "line 1", "", f"missing columns {', '.join(missing)}: the header must be {expected}; nothing read"
            )
            return
        where = [header.index(column) for column in CSV_COLUMNS]
        width = max(where) + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problems.add(name, f"line {reader.line_num}", "", f"unreadable row ({exc}); skipped")
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < width:
                where_row = f"line {reader.line_num}"
                problems.add(name, where_row, "", f"{len(row)} fields, expected {len(header)}; row skipped")
                continue
            image, label, *corners = (row[i].strip() for i in where)
            yield name, f"line {reader.line_num}", image, label, corners


def _read_xml(path: Path) -> ET.Element:
    """Parses one small XML file that declares no DTD or entities.

    Raises:
        FileRefusedError: not a regular file, or over ``MAX_XML_BYTES`` (checked before reading).
        ValueError: not UTF-8, declares a DTD or entities, or not well-formed.
    """
    data = read_regular_file(path, MAX_XML_BYTES, "one annotation file")
    try:
        # Decoded here, so a UTF-16 document cannot hide its declarations from the check below.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8 text") from exc
    if _DECLARATIONS.search(text):
        raise ValueError("declares a DTD or entities, which annotations never need (refused: entity expansion)")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from exc


def _xml_rows(path: Path, root: Path, problems: _Problems, folder: Path | None = None) -> Iterable[_Row]:
    """The objects of one XML file; ``folder``: the annotations folder it was found in, which it must not leave."""
    name = path.name
    # A link to a pipe or a device is refused as such when it is read.
    if folder is not None and not within(path, folder) and path.is_file():
        problems.add(name, "file", "", "a link to a file outside the annotations folder; file skipped")
        return
    try:
        document = _read_xml(path)
    except FileRefusedError as exc:
        problems.add(name, "file", "", f"{exc.reason}; file skipped")
        return
    except (OSError, ValueError) as exc:
        problems.add(name, "file", "", f"{exc}; file skipped")
        return
    filename = (document.findtext("filename") or "").strip()
    image = _xml_image(filename, path, root)
    objects = document.findall("object")
    if not objects:
        problems.add(name, "file", image, "no <object> in the file; image skipped")
    for number, obj in enumerate(objects, 1):
        box = obj.find("bndbox")
        tags = ("xmin", "ymin", "xmax", "ymax")
        corners = [(box.findtext(tag) or "").strip() if box is not None else "" for tag in tags]
        yield name, f"object {number}", image, (obj.findtext("name") or "").strip(), corners


def _xml_image(filename: str, path: Path, root: Path) -> str:
    """The image an XML file describes: its ``filename``, with an extension added for ILSVRC's bare names."""
    for stem in (filename, path.stem):
        if not stem:
            continue
        if (root / stem).is_file():
            return stem
        for extension in IMAGE_EXTENSIONS:
            if (root / (stem + extension)).is_file():
                return stem + extension
    return filename or path.stem


def _corner(text: str) -> int:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return round(value)


def _collect(rows: Iterable[_Row], root: Path, resolver: LabelResolver, problems: _Problems) -> Annotations:
    objects: dict[str, list[GroundTruth]] = {}
    first: dict[str, tuple[str, str]] = {}
    for source, where, image, label, corners in rows:
        if not image:
            problems.add(source, where, "", "no image name; row skipped")
            continue
        first.setdefault(image, (source, where))
        entries = objects.setdefault(image, [])
        try:
            x0, y0, x1, y1 = (_corner(c) for c in corners)
        except ValueError:
            given = ", ".join(corners) or "(none)"
            problems.add(source, where, image, f"corners {given} are not four numbers; box skipped")
            continue
        if x1 < x0 or y1 < y0:
            problems.add(source, where, image, f"box ({x0}, {y0}, {x1}, {y1}) has a negative size; box skipped")
            continue
        try:
            entries.append(GroundTruth(resolver(label), (x0, y0, x1, y1)))
        except ValueError as exc:
            problems.add(source, where, image, f"label {label!r}: {str(exc).rstrip('.')}; box skipped")
    samples = []
    for image, found in objects.items():
        source, where = first[image]
        path, missing = _image_path(root, image)
        if path is None:
            problems.add(source, where, image, f"{missing}; skipped", len(found) or 1)
        elif not found:
            problems.add(source, where, image, "no usable box; image skipped")
        else:
            samples.append(Sample(image, str(path), tuple(found)))
    return Annotations(tuple(samples), problems.all())


def _image_path(root: Path, image: str) -> tuple[Path | None, str]:
    """The file of an image name; or None and why not: missing, outside the images folder, not a regular file."""
    relative = Path(os.path.normpath(image))
    if relative.is_absolute() or relative.parts[:1] == ("..",):
        return None, "image not found in the images folder"
    path = root / relative
    try:
        kind = not_regular(path)
    except OSError:
        return None, "image not found in the images folder"
    if kind is not None:
        return None, f"the image is {kind}, not a regular file"
    if not within(path, root):
        return None, "the image is a link to a file outside the images folder"
    return path, ""
