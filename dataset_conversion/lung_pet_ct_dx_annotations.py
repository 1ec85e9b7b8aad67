"""Read the Lung-PET-CT-Dx box annotations (``Annotation/<A0001>/<SOPInstanceUID>.xml``, PASCAL VOC / LabelImg).

One file per annotated slice, named by the slice's SOPInstanceUID; one ``<object>`` per box with ``<name>`` (the
histology letter A, B, E or G; real files also hold ``Q``, lowercase letters and a stray ``A0192``) and
``<bndbox>`` with ``xmin``/``xmax`` = **columns** and ``ymin``/``ymax`` = **rows** of the slice's pixel array.

Coordinates are **0-based pixel indices, inclusive**: TCIA's own visualisation tool for this collection
(``VisualizationTools/roi2rect.py`` in the download's tools) draws them directly as ``cv2.rectangle`` corners on
the 0-based ``pixel_array``, without an offset; on the real sample the boxes sit on the tumour with this reading.
A one-pixel ambiguity would in any case be far below the annotators' box looseness.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

KNOWN_CLASSES = ("A", "B", "E", "G")


class MalformedAnnotation(ValueError):
    """An XML file that cannot be parsed or holds no usable box."""


@dataclass(frozen=True)
class XmlBox:
    """One box in slice pixel indices (inclusive) with its class letter as written (stripped)."""

    row_min: int
    row_max: int
    col_min: int
    col_max: int
    label: str

    @property
    def known_class(self) -> bool:
        return self.label.upper() in KNOWN_CLASSES


@dataclass(frozen=True)
class SliceAnnotation:
    """The boxes of one XML file; ``width``/``height`` from ``<size>`` (0 when absent)."""

    path: Path
    subject: str  # the annotation folder name, e.g. "A0002"
    sop_instance_uid: str
    boxes: tuple[XmlBox, ...]
    width: int = 0
    height: int = 0


def _number(element: ElementTree.Element | None, tag: str) -> int:
    node = None if element is None else element.find(tag)
    if node is None or node.text is None:
        raise MalformedAnnotation(f"missing <{tag}>")
    try:
        return int(round(float(node.text.strip())))
    except ValueError as error:
        raise MalformedAnnotation(f"<{tag}> is not a number: {node.text!r}") from error


def _size(size: ElementTree.Element | None, tag: str) -> int:
    text = "" if size is None else (size.findtext(tag) or "").strip()
    return int(text) if text.isdigit() else 0


def parse_annotation(path: str | os.PathLike) -> SliceAnnotation:
    """Parse one annotation file.

    Raises:
        MalformedAnnotation: not XML, or an object without a complete ``<bndbox>``, or no object at all.
    """
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError, UnicodeDecodeError) as error:
        raise MalformedAnnotation(f"{path.name}: not readable XML ({error})") from error
    boxes = []
    for item in root.iter("object"):
        name = (item.findtext("name") or "").strip()
        bndbox = item.find("bndbox")
        try:
            x0, x1 = _number(bndbox, "xmin"), _number(bndbox, "xmax")
            y0, y1 = _number(bndbox, "ymin"), _number(bndbox, "ymax")
        except MalformedAnnotation as error:
            raise MalformedAnnotation(f"{path.name}: {error}") from error
        boxes.append(XmlBox(min(y0, y1), max(y0, y1), min(x0, x1), max(x0, x1), name))
    if not boxes:
        raise MalformedAnnotation(f"{path.name}: no <object> with a box")
    width, height = _size(root.find("size"), "width"), _size(root.find("size"), "height")
    return SliceAnnotation(path, path.parent.name, path.stem, tuple(boxes), width, height)


def read_annotations(folder: str | os.PathLike) -> tuple[list[SliceAnnotation], list[tuple[Path, str]]]:
    """All ``<folder>/<subject>/*.xml``: parsed annotations and ``(path, problem)`` of malformed files."""
    annotations: list[SliceAnnotation] = []
    malformed: list[tuple[Path, str]] = []
    folder = Path(folder)
    for path in sorted(folder.glob("*/*.xml")):
        if path.name.startswith("."):
            continue
        try:
            annotations.append(parse_annotation(path))
        except MalformedAnnotation as error:
            malformed.append((path, str(error)))
    return annotations, malformed
