"""Box-constrained prediction: a box-guided model's output may only lie near its boxes.

A voxel predicted as tumour farther than ``margin_mm`` from every box is set to background. Boxes (3D connected
components of the box mask) that end up without any tumour voxel are counted: they are the cases a reader
should look at (the annotator saw a tumour, the model did not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class ConstraintReport:
    """What :func:`constrain_to_boxes` changed: removed voxels, boxes, and boxes left without a prediction."""

    removed_voxels: int
    num_boxes: int
    empty_boxes: int


def dilate_mm(mask: np.ndarray, margin_mm: float, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """Voxels within ``margin_mm`` (Euclidean, anisotropic spacing) of ``mask``; ``mask`` itself when margin is 0."""
    mask = np.asarray(mask) > 0
    if margin_mm <= 0 or not mask.any():
        return mask
    # only the bounding box of the mask grown by the margin can change: keep the distance transform small
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in spacing_zyx]
    coords = np.argwhere(mask)
    lo = np.maximum(coords.min(0) - pad, 0)
    hi = np.minimum(coords.max(0) + pad + 1, mask.shape)
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = np.zeros_like(mask)
    out[window] = ndimage.distance_transform_edt(~mask[window], sampling=spacing_zyx) <= margin_mm
    return out


def constrain_to_boxes(
    segmentation: np.ndarray, box_mask: np.ndarray, spacing_zyx: tuple[float, float, float], margin_mm: float = 5.0
) -> tuple[np.ndarray, ConstraintReport]:
    """Remove foreground farther than ``margin_mm`` from the boxes.

    Args:
        segmentation: ``(z, y, x)`` label map (0 = background).
        box_mask: ``(z, y, x)`` binary box mask on the same grid.
        spacing_zyx: voxel size in mm.
        margin_mm: tolerance around the boxes.

    Returns:
        ``(constrained segmentation, report)``.
    """
    if segmentation.shape != box_mask.shape:
        raise ValueError(f"segmentation {segmentation.shape} and box mask {box_mask.shape} differ in shape")
    allowed = dilate_mm(box_mask, margin_mm, spacing_zyx)
    outside = (segmentation > 0) & ~allowed
    constrained = np.where(outside, 0, segmentation).astype(segmentation.dtype)
    boxes, num_boxes = ndimage.label(np.asarray(box_mask) > 0, structure=np.ones((3, 3, 3)))
    hit = np.unique(boxes[(constrained > 0) & (boxes > 0)])
    empty = num_boxes - int((hit > 0).sum())
    return constrained, ConstraintReport(int(outside.sum()), int(num_boxes), int(empty))
