"""A generated dataset with known answers for the evaluate tests: shapes on noise, boxes known."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import SHAPES, make_scene


@dataclass(frozen=True)
class Dataset:
    """Images in ``images``, the same boxes as ``annotations.csv`` and as ``xml/*.xml``."""

    images: Path
    csv: Path
    xml: Path
    boxes: dict[str, tuple[int, tuple[int, int, int, int]]]


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    """A Pascal VOC annotation document."""
    parts = [f"<annotation><folder>images</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_dataset(root: Path, count: int = 24, seed: int = 5) -> Dataset:
    """``count`` images of one shape each, in two sizes (64 and 80 pixels), named img000.png ..."""
    rng = np.random.default_rng(seed)
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True)
    xml.mkdir()
    boxes = {}
    with (root / "annotations.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image", "label", "x0", "y0", "x1", "y1"])
        for i in range(count):
            shape = i % 2
            size = 64 if i % 3 else 80
            scene = make_scene(rng, (shape,), size=size)
            name = f"img{i:03d}.png"
            Image.fromarray(scene.image).save(images / name)
            box = scene.objects[shape]
            boxes[name] = (shape, box)
            # Labels by name in the CSV, by index in half of the rows, to read both.
            writer.writerow([name, SHAPES[shape] if i % 2 else str(shape), *box])
            (xml / f"img{i:03d}.xml").write_text(voc_xml(name, size, size, [(SHAPES[shape], box)]))
    return Dataset(images, root / "annotations.csv", xml, boxes)
