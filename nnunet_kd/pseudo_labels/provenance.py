"""Per-case provenance of a pseudo-labelled dataset: where each case came from and how trustworthy its label is.

Statistics are computed on arrays (no files), so they can be checked against hand-computed values:

- boxes are the 3D connected components (26-connectivity) of the axial box mask: the stacked per-slice rectangles
  of one lesion form one box;
- fill ratio of a box = labelled voxels inside the box / voxels of the box (final label, after cleanup);
- mean foreground probability = mean of ``1 - p(background)`` over the labelled voxels (``None`` if none);
- entropy = mean Shannon entropy normalised by ``log(C)`` (0 = certain, 1 = uniform) over the voxels that are in a
  box or labelled (``None`` if there are none);
- prediction outside boxes = foreground voxels of the ensemble's label (before cleanup) farther than the margin
  from every box.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.metrics.bounding import bounding_slices
from nnunet_kd.pseudo_labels import layout
from nnunet_kd.pseudo_labels.cleanup import outside_boxes
from nnunet_kd.pseudo_labels.source_cases import KIND_PSEUDO

FLAG_EMPTY_BOX = "empty_box"
FLAG_LOW_FILL = "low_fill"
FLAG_HIGH_FILL = "high_fill"
FLAG_OUTSIDE = "outside_boxes"
FLAG_NO_BOXES = "no_boxes"


@dataclass(frozen=True)
class Thresholds:
    """When a case is flagged: a box filled less than ``min_fill`` (but not empty) or more than ``max_fill``;
    ``margin_mm`` is the tolerance around boxes for 'outside' (and for the cleanup)."""

    min_fill: float = 0.2
    max_fill: float = 0.95
    margin_mm: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_fill < self.max_fill <= 1.0:
            raise ConfigurationError(f"box fill thresholds must satisfy 0 <= --min-fill < --max-fill <= 1, got "
                                     f"{self.min_fill} and {self.max_fill}")
        if self.margin_mm < 0:
            raise ConfigurationError(f"--margin-mm must be >= 0, got {self.margin_mm}")


@dataclass
class LabelStatistics:
    """Quality numbers of one pseudo-label (see the module docstring for the definitions)."""

    num_boxes: int | None
    box_fill: list[float]
    foreground_voxels: int
    mean_foreground_probability: float | None
    mean_entropy: float | None
    outside_voxels: int | None
    flags: list[str]


@dataclass
class CaseRecord:
    """One row of the provenance table."""

    case: str
    source_case: str
    source_dataset: str
    kind: str  # "strong" (ground truth) or "pseudo"
    teachers: list[str] = field(default_factory=list)
    num_boxes: int | None = None
    box_fill: list[float] = field(default_factory=list)
    foreground_voxels: int | None = None
    mean_foreground_probability: float | None = None
    mean_entropy: float | None = None
    outside_voxels: int | None = None
    removed_outside_voxels: int | None = None
    removed_components: int | None = None
    flags: list[str] = field(default_factory=list)
    ignored_voxels: int | None = None  # set to the ignore label (export --ignore-uncertain), else None
    ignored_fraction: float | None = None  # ignored voxels / voxels of the dilated boxes (of the image without boxes)
    inputs: str | None = None  # fingerprint of the files and teachers the case was made from (reruns compare it)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CaseRecord:
        return cls(**data)


def box_components(box_mask: np.ndarray) -> tuple[np.ndarray, int]:
    """3D connected components (26-connectivity) of a box mask: ``(ids 1..n, n)``."""
    components, count = ndimage.label(np.asarray(box_mask) > 0, structure=np.ones((3, 3, 3), dtype=bool))
    return components, int(count)


def box_fill_ratios(labels: np.ndarray, box_mask: np.ndarray) -> list[float]:
    """Per box (3D component, in label order): labelled voxels / box voxels."""
    window = bounding_slices(np.asarray(box_mask) > 0)
    if window is None:
        return []
    components, _ = box_components(np.asarray(box_mask)[window])
    labelled = labels[window] > 0
    fills = []
    for index, found in enumerate(ndimage.find_objects(components), start=1):
        box = components[found] == index
        fills.append(float(labelled[found][box].sum() / box.sum()))
    return fills


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """``(C, ...)`` probabilities -> ``(...)`` entropy / log(C), in [0, 1]."""
    p = np.clip(probabilities.astype(np.float64, copy=False), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=0) / np.log(probabilities.shape[0])


def label_statistics(
    probabilities: np.ndarray,
    labels: np.ndarray,
    box_mask: np.ndarray | None,
    spacing_zyx: tuple[float, ...],
    thresholds: Thresholds = Thresholds(),
    labels_before_cleanup: np.ndarray | None = None,
    outside_voxels: int | None = None,
) -> LabelStatistics:
    """Provenance numbers and flags of one pseudo-label.

    Args:
        probabilities: ``(C, z, y, x)`` ensemble probabilities.
        labels: ``(z, y, x)`` final pseudo-label.
        box_mask: ``(z, y, x)`` binary box mask, or ``None`` when the case has no boxes at all.
        spacing_zyx: voxel size in mm.
        thresholds: flag thresholds and the margin around boxes.
        labels_before_cleanup: the ensemble's label before the box cleanup (default: ``labels``).
        outside_voxels: the 'outside' count when already known (the cleanup counts it with the same margin).
    """
    foreground = labels > 0
    before = labels if labels_before_cleanup is None else labels_before_cleanup
    flags: list[str] = []
    if box_mask is None:
        num_boxes, fills, outside, region = None, [], None, foreground
    else:
        boxes = np.asarray(box_mask) > 0
        fills = box_fill_ratios(labels, boxes)
        num_boxes = len(fills)
        if outside_voxels is not None:
            outside = outside_voxels
        elif num_boxes:
            outside = outside_boxes(before, boxes, spacing_zyx, thresholds.margin_mm)
        else:
            outside = int((before > 0).sum())
        region = boxes | foreground
        if num_boxes == 0:
            flags.append(FLAG_NO_BOXES)
        if any(f == 0 for f in fills):
            flags.append(FLAG_EMPTY_BOX)
        if any(0 < f < thresholds.min_fill for f in fills):
            flags.append(FLAG_LOW_FILL)
        if any(f > thresholds.max_fill for f in fills):
            flags.append(FLAG_HIGH_FILL)
        if outside:
            flags.append(FLAG_OUTSIDE)
    mean_probability = float((1.0 - probabilities[0][foreground]).mean()) if foreground.any() else None
    mean_entropy = float(normalised_entropy(probabilities[:, region]).mean()) if region.any() else None
    return LabelStatistics(num_boxes, fills, int(foreground.sum()), mean_probability, mean_entropy, outside, flags)


CSV_COLUMNS = [
    "case", "source_case", "source_dataset", "kind", "teachers", "num_boxes", "box_fill", "min_box_fill",
    "foreground_voxels", "mean_foreground_probability", "mean_entropy", "outside_voxels", "removed_outside_voxels",
    "removed_components", "flags", "ignored_voxels", "ignored_fraction",
]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ";".join(_cell(v) for v in value)
    return str(value)


def provenance_csv(records: list[CaseRecord]) -> str:
    """The provenance table as CSV text (lists joined by ';', missing values empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        row = r.to_dict()
        row["min_box_fill"] = min(r.box_fill) if r.box_fill else None
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def provenance_json(records: list[CaseRecord], summary: dict) -> str:
    """The provenance table as JSON text: ``{"summary": ..., "cases": [...]}``."""
    return json.dumps({"summary": summary, "cases": [r.to_dict() for r in records]}, indent=2) + "\n"


def pseudo_labelled_cases(dataset_folder: str | os.PathLike) -> frozenset[str]:
    """The cases of an exported dataset whose label a teacher made (``kind`` ``pseudo`` in their provenance record).

    Args:
        dataset_folder: a raw dataset folder, ``$nnUNet_raw/Dataset<id>_<name>``.

    Returns:
        Case names as in ``labelsTr``; empty for a dataset that the export did not write.

    Raises:
        InputError: a provenance record is not valid JSON.
    """
    records = Path(dataset_folder) / layout.CASES
    if not records.is_dir():
        return frozenset()
    cases = set()
    for record_file in sorted(records.glob("*.json")):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"provenance record {record_file} cannot be read: {error}") from None
        if record.get("kind") == KIND_PSEUDO:
            cases.add(record["case"])
    return frozenset(cases)
