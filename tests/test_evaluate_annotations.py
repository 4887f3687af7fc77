"""Annotations: both formats read alike, WordNet ids, and hostile files reported, never fatal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from torchvision.models import VGG19_Weights

from gradcam.evaluate.annotations import (
    MAX_CSV_BYTES,
    MAX_XML_BYTES,
    AnnotationError,
    GroundTruth,
    LabelResolver,
    read_annotations,
)

from .conftest import SHAPES
from .evaluate_data import make_dataset, voc_xml
from .helpers import in_child

HEADER = "image,label,x0,y0,x1,y1\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_dataset(tmp_path, count=4)
    return tmp_path


def test_csv_and_xml_give_the_same_samples(folder: Path) -> None:
    from_csv = read_annotations(folder / "annotations.csv", folder / "images", SHAPES)
    from_xml = read_annotations(folder / "xml", folder / "images", SHAPES)
    assert from_csv.problems == from_xml.problems == ()
    assert [s.image for s in from_csv.samples] == ["img000.png", "img001.png", "img002.png", "img003.png"]
    assert from_csv.samples == from_xml.samples
    assert from_csv.samples[1].objects[0].label == 1  # "disc" by name
    assert from_csv.samples[0].objects[0].label == 0  # "0" by index


def test_several_rows_make_one_sample_with_several_boxes(folder: Path) -> None:
    (folder / "two.csv").write_text(HEADER + "img000.png,square,1,2,10,12\nimg000.png,disc,20,20,30,30\n")
    (sample,) = read_annotations(folder / "two.csv", folder / "images", SHAPES).samples
    assert sample.objects == (GroundTruth(0, (1, 2, 10, 12)), GroundTruth(1, (20, 20, 30, 30)))
    assert sample.labels == (0, 1)


def test_wrong_columns_are_one_problem(folder: Path) -> None:
    (folder / "bad.csv").write_text("file,class,left,top\nimg000.png,square,1,2\n")
    found = read_annotations(folder / "bad.csv", folder / "images", SHAPES)
    assert found.samples == ()
    (problem,) = found.problems
    assert "missing columns image, label, x0, y0, x1, y1" in problem.text()


def test_bad_rows_are_reported_per_row_and_the_rest_is_read(folder: Path) -> None:
    rows = [
        "img000.png,square,1,2,10,12",  # fine
        "img001.png,disc,30,5,10,20",  # negative width
        "img002.png,circle,1,1,5,5",  # unknown label
        "img003.png,square,a,b,c,d",  # not numbers
        "img003.png,square,1,1",  # too few fields
        "img003.png,7,1,1,5,5",  # index out of range
        "img003.png,square,nan,1,5,5",  # NaN corner
        "img003.png,disc,-5,-5,200,200",  # outside the image: kept, cut at evaluation
    ]
    (folder / "mixed.csv").write_text(HEADER + "\n".join(rows) + "\n")
    found = read_annotations(folder / "mixed.csv", folder / "images", SHAPES)
    texts = [p.text() for p in found.problems]
    assert [s.image for s in found.samples] == ["img000.png", "img003.png"]
    assert found.samples[1].objects == (GroundTruth(1, (-5, -5, 200, 200)),)
    assert any("line 3, img001.png: box (30, 5, 10, 20) has a negative size" in t for t in texts)
    assert any("line 4, img002.png: label 'circle'" in t and "Unknown class" in t for t in texts)
    assert any("line 5" in t and "not four numbers" in t for t in texts)
    assert any("line 6" in t and "4 fields, expected 6" in t for t in texts)
    assert any("line 7" in t and "out of range" in t for t in texts)
    assert any("line 8" in t and "not four numbers" in t for t in texts)
    assert any("img001.png: no usable box" in t for t in texts)


def test_a_hundred_thousand_rows_for_a_missing_image_are_fast_and_one_line(folder: Path) -> None:
    with (folder / "many.csv").open("w") as file:
        file.write(HEADER + "img000.png,square,1,2,10,12\n")
        file.write("missing.png,square,1,2,10,12\n" * 100_000)
    start = time.perf_counter()
    found = read_annotations(folder / "many.csv", folder / "images", SHAPES)
    elapsed = time.perf_counter() - start
    (problem,) = found.problems
    assert problem.count == 100_000
    assert problem.text() == (
        "many.csv, line 3 (and 99,999 more like it), missing.png: image not found in the images folder; skipped"
    )
    assert [s.image for s in found.samples] == ["img000.png"]
    assert elapsed < 30, f"reading took {elapsed:.1f} s"  # a guard against quadratic work, not a timing test


def test_images_outside_the_folder_are_not_read(folder: Path) -> None:
    rows = f"../images/img000.png,square,1,2,10,12\n{folder}/images/img000.png,square,1,2,10,12\n"
    (folder / "escape.csv").write_text(HEADER + rows)
    found = read_annotations(folder / "escape.csv", folder / "images", SHAPES)
    assert found.samples == ()
    assert all("image not found" in p.message for p in found.problems)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<annotation><filename>img000.png</filename><object><name>&lol9;</name>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BILLION_LAUGHS.encode(), "declares a DTD or entities"),
        (b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><annotation/>', "declares a DTD or entities"),
        (BILLION_LAUGHS.encode("utf-16"), "not UTF-8"),  # declarations hidden from a byte search
        (b"<annotation><object>", "not well-formed XML"),
        (b" " * (MAX_XML_BYTES + 1), "byte limit"),
    ],
)
def test_hostile_xml_is_refused_and_the_others_read(folder: Path, content: bytes, message: str) -> None:
    (folder / "xml" / "evil.xml").write_bytes(content)
    found = read_annotations(folder / "xml", folder / "images", SHAPES)
    assert len(found.samples) == 4
    (problem,) = found.problems
    assert problem.source == "evil.xml" and message in problem.message


def test_xml_objects_without_boxes_or_names_are_reported(folder: Path) -> None:
    text = voc_xml("img000.png", 64, 64, [("square", (1, 2, 10, 12)), ("", (1, 1, 5, 5))])
    broken = text.replace("<xmax>10<", "<xmax>x<")
    (folder / "one.xml").write_text(broken.replace("</annotation>", "<object><name>disc</name></object></annotation>"))
    found = read_annotations(folder / "one.xml", folder / "images", SHAPES)
    texts = [p.text() for p in found.problems]
    assert any("object 1" in t and "not four numbers" in t for t in texts)
    assert any("object 2" in t and "empty label" in t for t in texts)
    assert any("object 3" in t and "not four numbers" in t for t in texts)


def test_ilsvrc_names_without_extension_and_wordnet_ids(tmp_path: Path) -> None:
    make_dataset(tmp_path, count=1)
    (tmp_path / "images" / "img000.png").rename(tmp_path / "images" / "ILSVRC2012_val_00000001.JPEG")
    (tmp_path / "val.xml").write_text(voc_xml("ILSVRC2012_val_00000001", 64, 64, [("n02123045", (1, 2, 10, 12))]))
    categories = VGG19_Weights.IMAGENET1K_V1.meta["categories"]
    found = read_annotations(tmp_path / "val.xml", tmp_path / "images", categories)
    (sample,) = found.samples
    assert sample.image == "ILSVRC2012_val_00000001.JPEG"
    assert categories[sample.objects[0].label] == "tabby"


def test_wordnet_ids_need_an_imagenet_model() -> None:
    resolve = LabelResolver(categories=SHAPES)
    with pytest.raises(ValueError, match="needs an ImageNet-1k model"):
        resolve("n02123045")
    imagenet = LabelResolver(VGG19_Weights.IMAGENET1K_V1.meta["categories"])
    assert imagenet("n01440764") == 0 and imagenet("tench") == 0 and imagenet(" 999 ") == 999
    with pytest.raises(ValueError, match="not an ImageNet-1k WordNet id"):
        imagenet("n99999999")


def test_missing_annotations_raise() -> None:
    with pytest.raises(AnnotationError, match="not found"):
        read_annotations("/nonexistent.csv", "/tmp", SHAPES)


# --- files, not devices: one problem line each, never a hang or a runaway read ------------------


def _read(source: Path, images: Path) -> tuple[int, list[str]]:
    found = read_annotations(source, images, SHAPES)
    return len(found.samples), [p.text() for p in found.problems]


@pytest.mark.slow  # a child process
def test_a_pipe_and_a_link_to_dev_zero_among_the_xml_files_are_one_problem_line_each(folder: Path) -> None:
    os.mkfifo(folder / "xml" / "pipe.xml")  # reading it waited for a writer forever
    (folder / "xml" / "zero.xml").symlink_to("/dev/zero")  # read until memory ran out
    (folder / "secret.xml").write_text(voc_xml("img000.png", 64, 64, [("square", (1, 2, 10, 12))]))
    (folder / "xml" / "away.xml").symlink_to(folder / "secret.xml")  # leaves the annotations folder
    child = in_child(_read, folder / "xml", folder / "images", timeout=20, memory_mib=500)
    assert child.exitcode == 0 and child.returned is not None, child
    kind, (samples, problems) = child.returned
    assert kind == "returned" and samples == 4
    assert sorted(problems) == [
        "away.xml, file: a link to a file outside the annotations folder; file skipped",
        "pipe.xml, file: a pipe (FIFO), not a regular file; file skipped",
        "zero.xml, file: a device, not a regular file; file skipped",
    ]


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("kind", ["pipe", "device"])
def test_a_csv_annotation_file_that_is_a_pipe_or_a_device_is_one_problem_line(folder: Path, kind: str) -> None:
    path = folder / "annotations.csv"
    path.unlink()
    if kind == "pipe":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    child = in_child(_read, path, folder / "images", timeout=20, memory_mib=500)
    what = "a pipe (FIFO)" if kind == "pipe" else "a device"
    assert child.returned == ("returned", (0, [f"annotations.csv, file: {what}, not a regular file; nothing read"]))


@pytest.mark.slow  # a child process
def test_a_csv_annotation_file_over_its_cap_is_refused_before_it_is_read(folder: Path) -> None:
    path = folder / "big.csv"
    with path.open("wb") as file:
        file.write(HEADER.encode())
        file.truncate(MAX_CSV_BYTES + 1)  # sparse
    child = in_child(_read, path, folder / "images", timeout=20, memory_mib=64)
    reason = f"{MAX_CSV_BYTES + 1:,} bytes, over the {MAX_CSV_BYTES:,} byte limit for a CSV annotation file"
    assert child.returned == ("returned", (0, [f"big.csv, file: {reason}; nothing read"])), child


@pytest.mark.slow  # a child process
def test_images_that_are_pipes_devices_or_links_out_of_the_folder_are_skipped_in_one_line_each(folder: Path) -> None:
    images = folder / "images"
    (images / "img000.png").unlink()
    os.mkfifo(images / "img000.png")
    (images / "img001.png").unlink()
    (images / "img001.png").symlink_to("/dev/zero")
    (folder / "outside.png").write_bytes((images / "img002.png").read_bytes())
    (images / "img002.png").unlink()
    (images / "img002.png").symlink_to(folder / "outside.png")
    (images / "again.png").symlink_to(images / "img003.png")  # a link inside the folder is read
    (folder / "more.csv").write_text(
        (folder / "annotations.csv").read_text() + "again.png,square,1,1,5,5\n"
    )
    child = in_child(_read, folder / "more.csv", images, timeout=20, memory_mib=500)
    assert child.returned == ("returned", (2, [
        "more.csv, line 2, img000.png: the image is a pipe (FIFO), not a regular file; skipped",
        "more.csv, line 3, img001.png: the image is a device, not a regular file; skipped",
        "more.csv, line 4, img002.png: the image is a link to a file outside the images folder; skipped",
    ])), child
