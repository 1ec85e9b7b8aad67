"""Axial bounding boxes: derive them from label maps and rasterise them into box masks.

Conventions (shared by the phantom generator, the converters, the teachers and the dual-output student):

- Volumes are NumPy arrays as SimpleITK returns them, ``(z, y, x)``; the axial axis is 0 unless told otherwise
  (``axial_axis``), e.g. after nnU-Net's ``transpose_forward`` (:func:`axial_axis_after_transpose`).
- A box lives on one axial slice and covers rows ``row_min..row_max`` and columns ``col_min..col_max``,
  **inclusive** (the tight rectangle of the lesion on that slice).
- A *lesion* is a connected component of the foreground (26-connectivity in 3D by default), so two lesions that
  share a slice get two boxes on it. ``merge_per_slice=True`` gives one rectangle per slice covering every lesion
  on it, as in the mixed-supervision paper's code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def axial_axis_after_transpose(transpose_forward: list[int] | tuple[int, ...]) -> int:
    """Index of the raw image's axial axis (SimpleITK array axis 0) in nnU-Net's preprocessed arrays.

    nnU-Net stores preprocessed data as ``raw.transpose(transpose_forward)``, so raw axis 0 ends up at the position
    where ``transpose_forward`` lists 0.
    """
    return list(transpose_forward).index(0)



@dataclass(frozen=True, order=True)
class AxialBox:
    """One axial rectangle: slice index along the axial axis and inclusive row/column bounds in that slice."""

    slice_index: int
    row_min: int
    row_max: int
    col_min: int
    col_max: int
    lesion: int = 0  # connected-component id (1..n); 0 when merged per slice or unknown (e.g. from annotations)

    def __post_init__(self) -> None:
        if self.row_min > self.row_max or self.col_min > self.col_max:
            raise ValueError(f"empty box: {self}")

    @property
    def num_pixels(self) -> int:
        return (self.row_max - self.row_min + 1) * (self.col_max - self.col_min + 1)


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    full = {2: 8, 3: 26}[ndim]
    face = {2: 4, 3: 6}[ndim]
    if connectivity == full:
        return ndimage.generate_binary_structure(ndim, ndim)
    if connectivity == face:
        return ndimage.generate_binary_structure(ndim, 1)
    raise ValueError(f"connectivity {connectivity} is not supported for {ndim}D (use {face} or {full})")


def label_lesions(label: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Connected components of ``label > 0``; returns ``(components, count)`` with ids 1..count."""
    foreground = np.asarray(label) > 0
    components, count = ndimage.label(foreground, structure=_structure(foreground.ndim, connectivity))
    return components, int(count)


def axial_boxes_from_label(
    label: np.ndarray, axial_axis: int = 0, merge_per_slice: bool = False, connectivity: int = 26
) -> list[AxialBox]:
    """Per axial slice and per lesion, the tight rectangle of the lesion on that slice.

    Args:
        label: ``(z, y, x)`` label map (any foreground value counts); 3D only.
        axial_axis: the array axis that indexes axial slices.
        merge_per_slice: one rectangle per slice around all lesions on it (``lesion`` = 0).
        connectivity: 6 or 26, defines what one lesion is.

    Returns:
        Boxes sorted by (slice, rows, columns).
    """
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {label.shape}")
    foreground = np.moveaxis(label, axial_axis, 0) > 0
    # label only the foreground's bounding block: lesions do not depend on the background around them, and a tumour
    # fills a small part of a training patch (about 10x faster on an 80x160x160 patch)
    offset = _bounding_block(foreground)
    boxes: list[AxialBox] = []
    if offset is None:
        return boxes
    foreground = foreground[offset]
    if merge_per_slice:
        components, count = foreground.astype(np.int32), 1
    else:
        components, count = label_lesions(foreground, connectivity)
    for lesion, slices in enumerate(ndimage.find_objects(components), start=1):
        if slices is None:
            continue
        block = components[slices] == lesion
        for dz in range(block.shape[0]):
            plane = block[dz]
            rows = np.flatnonzero(plane.any(axis=1))
            if rows.size == 0:
                continue
            cols = np.flatnonzero(plane.any(axis=0))
            z0, r0, c0 = (offset[a].start + slices[a].start for a in range(3))
            boxes.append(
                AxialBox(
                    slice_index=z0 + dz,
                    row_min=r0 + int(rows[0]),
                    row_max=r0 + int(rows[-1]),
                    col_min=c0 + int(cols[0]),
                    col_max=c0 + int(cols[-1]),
                    lesion=0 if merge_per_slice else lesion,
                )
            )
    return sorted(boxes)


def _bounding_block(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest block of ``mask`` (3D bool) holding all its True voxels, or None when there are none."""
    block = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if present.size == 0:
            return None
        block.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(block)


def rasterize_boxes(
    boxes: Iterable[AxialBox], shape: Sequence[int], axial_axis: int = 0, dtype: np.dtype = np.uint8
) -> np.ndarray:
    """Fill each box with 1 in a zero volume of ``shape``; boxes are clipped to the volume."""
    shape = tuple(int(s) for s in shape)
    mask = np.zeros(shape, dtype=dtype)
    view = np.moveaxis(mask, axial_axis, 0)  # a view: writes land in ``mask``
    n_slices, n_rows, n_cols = view.shape
    for box in boxes:
        if not 0 <= box.slice_index < n_slices:
            continue
        r0, r1 = max(box.row_min, 0), min(box.row_max, n_rows - 1)
        c0, c1 = max(box.col_min, 0), min(box.col_max, n_cols - 1)
        if r0 <= r1 and c0 <= c1:
            view[box.slice_index, r0 : r1 + 1, c0 : c1 + 1] = 1
    return mask


def axial_box_mask(
    label: np.ndarray, axial_axis: int = 0, merge_per_slice: bool = False, connectivity: int = 26
) -> np.ndarray:
    """Binary ``uint8`` box mask of a label map (:func:`axial_boxes_from_label` then :func:`rasterize_boxes`)."""
    label = np.asarray(label)
    boxes = axial_boxes_from_label(label, axial_axis, merge_per_slice, connectivity)
    return rasterize_boxes(boxes, label.shape, axial_axis)
