"""Voxel-wise overlap metrics of a binary prediction against a binary reference.

Definitions (``TP``, ``FP``, ``FN``, ``TN`` count voxels of the whole image):

- accuracy = (TP + TN) / (TP + FP + FN + TN)
- precision = TP / (TP + FP), recall (sensitivity) = TP / (TP + FN), specificity = TN / (TN + FP)
- harmonic = 2 · recall · specificity / (recall + specificity)  (the IJCNN paper's "Harmonic")
- Dice = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN), VOE = 1 − IoU

Empty-mask rule (one rule for every metric in this package): a ratio whose denominator is zero is *undefined*
and returned as ``nan`` ("missing"), never 0 or 1. So an empty prediction has no precision, an empty reference
has no recall, and an empty reference with an empty prediction has no Dice, IoU or VOE (as in nnU-Net's
evaluator). Metrics with a non-zero denominator stay defined: an empty prediction against a non-empty reference
has Dice 0. The harmonic mean of recall 0 and specificity 0 is 0 (its limit), and ``nan`` if either is ``nan``.

VOE deviation: Ben Loussaief et al. print ``VOE = 1 − |P ∩ G| / (|P| + |G|)`` (their eq. 9), which is not the
volumetric overlap error of the literature and is never 0 for a perfect prediction; we use the standard
``VOE = 1 − |P ∩ G| / |P ∪ G| = 1 − IoU`` of the literature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nnunet_kd.metrics.bounding import bounding_slices


@dataclass(frozen=True)
class VoxelCounts:
    """Confusion counts of two binary masks, in voxels."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n_ref(self) -> int:
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or ``nan`` when the denominator is zero (undefined, reported as missing)."""
    return float(numerator) / float(denominator) if denominator else float("nan")


def voxel_counts(reference: np.ndarray, prediction: np.ndarray) -> VoxelCounts:
    """Count TP/FP/FN/TN of two boolean masks of the same shape.

    Only the bounding box of ``reference | prediction`` is scanned for TP/FP/FN (TN is the rest of the image),
    so a large volume with small lesions costs little beyond one pass to find that box.

    Args:
        reference: boolean array, any shape (e.g. ``(z, y, x)``).
        prediction: boolean array of the same shape.
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, prediction {prediction.shape}")
    box = bounding_slices(reference, prediction)
    total = int(reference.size)
    if box is None:
        return VoxelCounts(0, 0, 0, total)
    ref, pred = reference[box], prediction[box]
    tp = int(np.count_nonzero(ref & pred))
    n_ref = int(np.count_nonzero(ref))
    n_pred = int(np.count_nonzero(pred))
    fp, fn = n_pred - tp, n_ref - tp
    return VoxelCounts(tp, fp, fn, total - tp - fp - fn)


def voxel_metrics(counts: VoxelCounts) -> dict[str, float]:
    """All voxel-wise metrics of one case from its confusion counts (fractions in [0, 1], ``nan`` = undefined)."""
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    recall = ratio(tp, tp + fn)
    specificity = ratio(tn, tn + fp)
    iou = ratio(tp, tp + fp + fn)
    return {
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
        "precision": ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "harmonic": harmonic_mean(recall, specificity),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": iou,
        "voe": 1.0 - iou,
    }


def harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``; 0 when both are 0, ``nan`` when either is ``nan``."""
    if np.isnan(a) or np.isnan(b):
        return float("nan")
    if a + b == 0:
        return 0.0
    return 2.0 * a * b / (a + b)


def pooled_dice(pairs: Iterable[tuple[np.ndarray, np.ndarray]], ignore_label: int | None = None) -> float:
    """Foreground Dice of several ``(reference, prediction)`` label maps counted together: ``2 ΣTP / (2 ΣTP + ΣFP +
    ΣFN)`` with foreground = label > 0. Voxels whose reference is ``ignore_label`` are left out (as nnU-Net's loss
    does). ``nan`` when neither side has foreground anywhere."""
    tp = fp = fn = 0
    for reference, prediction in pairs:
        ref, pred = reference > 0, prediction > 0
        if ignore_label is not None:
            known = reference != ignore_label
            ref, pred = ref & known, pred & known
        counts = voxel_counts(ref, pred)
        tp, fp, fn = tp + counts.tp, fp + counts.fp, fn + counts.fn
    return ratio(2 * tp, 2 * tp + fp + fn)
