"""Box augmentation: make exact boxes look like real annotations, so a box-guided teacher tolerates them.

Real axial boxes (Lung-PET-CT-Dx) are loose or tight, shifted, drawn on only some slices of a tumour, and now and
then a tumour has no box at all. :func:`augment_boxes` simulates each of these on the exact boxes of a label:

- **margin**: per box, all four edges move outwards by the same amount drawn from ``margin_mm`` (negative values
  shrink the box);
- **shift**: per box, the whole rectangle moves by a draw from ``[-shift_mm, shift_mm]`` along rows and columns;
- **edge jitter**: each of the four edges additionally moves by its own draw from
  ``[-edge_jitter_mm, +edge_jitter_mm]``;
- **dropped slices**: each box is removed with ``slice_drop_probability`` (a lesion keeps at least one box, its
  largest, otherwise it would be a missing lesion);
- **missing lesion**: with ``lesion_drop_probability`` all boxes of a lesion are removed and the lesion is reported,
  so that the caller removes it from the target too (no box means "do not segment": the box is the instruction).

Merged-per-slice boxes (one rectangle per slice around every lesion, as in the paper's code) are derived upstream
(:func:`~nnunet_kd.boxes.axial_boxes.axial_boxes_from_label`); augmentation then treats each merged box as its own
lesion. A box never shrinks below one pixel and is clipped to the slice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from nnunet_kd.boxes.axial_boxes import AxialBox


@dataclass(frozen=True)
class BoxAugmentation:
    """Parameters of :func:`augment_boxes` (millimetres and probabilities)."""

    margin_mm: tuple[float, float] = (-1.0, 4.0)
    shift_mm: float = 2.0
    edge_jitter_mm: float = 1.0
    slice_drop_probability: float = 0.15
    lesion_drop_probability: float = 0.1

    def __post_init__(self) -> None:
        if self.margin_mm[0] > self.margin_mm[1]:
            raise ValueError(f"margin_mm {self.margin_mm} must be (low, high) with low <= high")
        if self.shift_mm < 0 or self.edge_jitter_mm < 0:
            raise ValueError("shift_mm and edge_jitter_mm must be >= 0")
        for p in (self.slice_drop_probability, self.lesion_drop_probability):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability {p} outside [0, 1]")


def augment_boxes(
    boxes: list[AxialBox],
    rng: np.random.Generator,
    spacing_rc_mm: tuple[float, float],
    slice_shape: tuple[int, int],
    params: BoxAugmentation,
) -> tuple[list[AxialBox], set[int]]:
    """Perturb exact boxes like a human annotator would.

    Args:
        boxes: exact boxes; ``lesion`` groups the boxes of one lesion (0 is treated as one group).
        rng: random generator.
        spacing_rc_mm: in-plane pixel size (row spacing, column spacing) in mm.
        slice_shape: (rows, columns) of a slice, for clipping.
        params: what to perturb and how much.

    Returns:
        ``(augmented boxes, dropped lesion ids)``.
    """
    by_lesion: dict[int, list[AxialBox]] = defaultdict(list)
    for box in boxes:
        by_lesion[box.lesion].append(box)
    dropped: set[int] = set()
    out: list[AxialBox] = []
    row_mm, col_mm = spacing_rc_mm
    n_rows, n_cols = slice_shape
    for lesion, lesion_boxes in sorted(by_lesion.items()):
        if rng.random() < params.lesion_drop_probability:
            dropped.add(lesion)
            continue
        keep = rng.random(len(lesion_boxes)) >= params.slice_drop_probability
        if not keep.any():
            keep[int(np.argmax([b.num_pixels for b in lesion_boxes]))] = True
        for box, kept in zip(lesion_boxes, keep):
            if not kept:
                continue
            margin = rng.uniform(*params.margin_mm)
            shift_r, shift_c = rng.uniform(-params.shift_mm, params.shift_mm, size=2)
            jitter = rng.uniform(-params.edge_jitter_mm, params.edge_jitter_mm, size=4)
            r0 = box.row_min + round((-margin + shift_r + jitter[0]) / row_mm)
            r1 = box.row_max + round((margin + shift_r + jitter[1]) / row_mm)
            c0 = box.col_min + round((-margin + shift_c + jitter[2]) / col_mm)
            c1 = box.col_max + round((margin + shift_c + jitter[3]) / col_mm)
            r0, r1 = _ordered_in_range(r0, r1, n_rows)
            c0, c1 = _ordered_in_range(c0, c1, n_cols)
            out.append(AxialBox(box.slice_index, r0, r1, c0, c1, lesion=box.lesion))
    return out, dropped


def _ordered_in_range(low: int, high: int, size: int) -> tuple[int, int]:
    """Clip an inclusive interval to ``[0, size - 1]``; an interval that collapsed keeps one pixel."""
    if low > high:
        low = high = (low + high) // 2
    low, high = min(max(low, 0), size - 1), min(max(high, 0), size - 1)
    return low, high
