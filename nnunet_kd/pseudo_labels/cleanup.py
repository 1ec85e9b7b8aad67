"""Box-constrained cleanup of a pseudo-label.

Two steps, both on the hard label map:

1. voxels farther than ``margin_mm`` from every box become background (:func:`nnunet_kd.boxes.constraint.dilate_mm`);
2. of the remaining foreground, only connected components (26-connectivity) that overlap a box itself are kept:
   a blob that lies inside the margin but touches no box is not what the annotator marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_kd.boxes.constraint import dilate_mm
from nnunet_kd.metrics.bounding import bounding_slices


@dataclass(frozen=True)
class CleanupReport:
    """Voxels removed outside the dilated boxes, and components (and their voxels) removed for touching no box."""

    removed_outside: int
    removed_components: int
    removed_component_voxels: int


def dilated_boxes(box_mask: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float) -> np.ndarray:
    """Voxels within ``margin_mm`` of a box, by :func:`~nnunet_kd.boxes.constraint.dilate_mm` around each box on its
    own (the distance transform then covers a few small windows, not the box hull of far-apart lesions)."""
    boxes = np.asarray(box_mask) > 0
    result = np.zeros(boxes.shape, dtype=bool)
    window = bounding_slices(boxes)
    if window is None:
        return result
    components, _ = ndimage.label(boxes[window], structure=np.ones((3, 3, 3), dtype=bool))
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_zyx]
    for found in ndimage.find_objects(components):
        grown = tuple(slice(max(w.start + f.start - p, 0), min(w.start + f.stop + p, n))
                      for w, f, p, n in zip(window, found, pad, boxes.shape, strict=True))
        result[grown] |= dilate_mm(boxes[grown], margin_mm, spacing_zyx)
    return result


def outside_boxes(labels: np.ndarray, box_mask: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float) -> int:
    """Foreground voxels farther than ``margin_mm`` from every box."""
    return int(((labels > 0) & ~dilated_boxes(box_mask, spacing_zyx, margin_mm)).sum())


def clean_with_boxes(
    labels: np.ndarray, box_mask: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float = 5.0,
    inside: np.ndarray | None = None,
) -> tuple[np.ndarray, CleanupReport]:
    """Apply the two cleanup steps.

    Args:
        labels: ``(z, y, x)`` label map, 0 = background.
        box_mask: ``(z, y, x)`` binary box mask on the same grid.
        spacing_zyx: voxel size in mm.
        margin_mm: tolerance around the boxes.
        inside: the boxes dilated by ``margin_mm`` (:func:`dilated_boxes`), when the caller already has them.

    Returns:
        ``(cleaned labels (same dtype), report)``.
    """
    if labels.shape != box_mask.shape:
        raise ValueError(f"labels {labels.shape} and box mask {box_mask.shape} differ in shape")
    boxes = np.asarray(box_mask) > 0
    if inside is None:
        inside = dilated_boxes(boxes, spacing_zyx, margin_mm)
    outside = (labels > 0) & ~inside
    cleaned = labels.copy()
    cleaned[outside] = 0
    window = bounding_slices(cleaned > 0)  # components only where foreground is left (CT volumes are large)
    if window is None:
        return cleaned, CleanupReport(int(outside.sum()), 0, 0)
    foreground = cleaned[window] > 0
    components, count = ndimage.label(foreground, structure=np.ones((3, 3, 3), dtype=bool))
    touching = np.unique(components[boxes[window] & foreground])
    touching = touching[touching > 0]
    dropped = foreground & ~np.isin(components, touching)
    cleaned[window][dropped] = 0
    return cleaned, CleanupReport(int(outside.sum()), count - int(touching.size), int(dropped.sum()))
