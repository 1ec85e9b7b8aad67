"""Bounding boxes of masks, used to crop before the expensive steps (components, surfaces)."""

from __future__ import annotations

import numpy as np


def bounding_slices(*masks: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of the union of ``masks``, grown by ``margin`` voxels and clipped to the array.

    Axes are narrowed one after the other, so only the first projection reads the whole arrays.

    Args:
        masks: boolean arrays of one shape, e.g. ``(z, y, x)``.
        margin: voxels added on every side (clipped at the array border).

    Returns:
        One slice per axis, or ``None`` when every mask is empty.
    """
    shape = masks[0].shape
    tight: list[slice] = [slice(0, n) for n in shape]
    for axis in range(len(shape)):
        other = tuple(a for a in range(len(shape)) if a != axis)
        present = np.zeros(shape[axis], dtype=bool)
        for mask in masks:
            present |= np.any(mask[tuple(tight)], axis=other)
        hits = np.flatnonzero(present)
        if hits.size == 0:
            return None
        tight[axis] = slice(int(hits[0]), int(hits[-1]) + 1)
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(tight, shape, strict=True))
