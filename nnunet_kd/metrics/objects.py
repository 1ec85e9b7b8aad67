"""Object-wise (lesion-wise) detection metrics from matched connected components.

Objects are the connected components of each binary mask (26-connectivity in 3D, ``scipy.ndimage.label``).

Matching rule. The mixed-supervision paper counts a true positive at "≥ 25 % overlap between the predicted mask
and the GT mask"; we read "the predicted mask" as the whole prediction, so the pieces of a split prediction are
summed:

- R (a reference object) is **detected** (TP) when the prediction covers at least ``threshold`` of it:
  ``|R ∩ prediction| / |R| >= threshold`` (default 0.25, inclusive); otherwise R is a **miss** (FN). A lesion split
  into two predicted pieces of 20 % each is detected (40 %).
- P (a predicted object) is **matched** when it touches a detected R and either covers ``threshold`` of that R by
  itself or lies at least ``threshold`` inside reference foreground (a piece of the lesion). One P covering two
  lesions (merged prediction) detects both: 2 TP. A P that touches a detected lesion but lies mostly outside the
  reference is not matched.
- An unmatched P is a **false positive** (FP) when less than ``threshold`` of its own voxels lie in the reference
  foreground. An unmatched P that lies mostly inside reference foreground (a piece of a missed lesion) is neither TP
  nor FP: it is counted as ``fragments`` (it does not point at a wrong place).
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN) (the harmonic mean of the
  two). TP counts reference objects, FP counts predicted objects, as in lesion-wise challenge scoring.
- DSC-TP = Dice between the union of detected reference objects and the union of matched predicted objects:
  segmentation quality on true positives only. With no lesion missed and no false positive it equals the Dice.

Empty masks follow the package rule: a zero denominator gives ``nan``. Empty reference and empty prediction: all
``nan``. Empty reference with predicted objects: precision 0 and F1 0 (only false positives), recall ``nan``.
Empty prediction with reference objects: recall 0 and F1 0, precision ``nan``. No detected object: DSC-TP ``nan``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_kd.metrics.bounding import bounding_slices
from nnunet_kd.metrics.voxel import ratio

DEFAULT_OVERLAP_THRESHOLD = 0.25
_RELATIVE_TOLERANCE = 1e-9  # an overlap equal to the threshold up to rounding counts as reaching it


@dataclass(frozen=True)
class ObjectMatch:
    """Outcome of matching the connected components of one case."""

    n_ref: int
    n_pred: int
    tp: int  # detected reference objects
    fn: int  # missed reference objects
    fp: int  # predicted objects that detect nothing and lie mostly outside the reference
    fragments: int  # predicted objects that detect nothing but lie mostly inside the reference
    dice_tp: float  # DSC-TP, nan when tp == 0

    def metrics(self) -> dict[str, float]:
        """``object_precision``, ``object_recall``, ``object_f1``, ``dsc_tp`` (nan = undefined)."""
        return {
            "object_precision": ratio(self.tp, self.tp + self.fp),
            "object_recall": ratio(self.tp, self.tp + self.fn),
            "object_f1": ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "dsc_tp": self.dice_tp,
        }


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)  # 26-connectivity in 3D
    labels, count = ndimage.label(mask, structure=structure)
    return labels, int(count)


def _reaches(part: np.ndarray, whole: np.ndarray, threshold: float) -> np.ndarray:
    """``part / whole >= threshold`` elementwise for integer voxel counts, tolerant to float rounding."""
    return part >= threshold * whole * (1.0 - _RELATIVE_TOLERANCE)


def match_objects(
    reference: np.ndarray, prediction: np.ndarray, threshold: float = DEFAULT_OVERLAP_THRESHOLD
) -> ObjectMatch:
    """Match connected components of ``prediction`` to those of ``reference`` (rule in the module docstring).

    Args:
        reference: boolean mask, e.g. ``(z, y, x)``.
        prediction: boolean mask of the same shape.
        threshold: minimum overlap |R ∩ P| / |R| for a detection, in (0, 1].
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"overlap threshold must be in (0, 1], got {threshold}")
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, prediction {prediction.shape}")
    box = bounding_slices(reference, prediction, margin=1)
    if box is None:
        return ObjectMatch(0, 0, 0, 0, 0, 0, float("nan"))
    ref_labels, n_ref = _components(reference[box])
    pred_labels, n_pred = _components(prediction[box])
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    both = (ref_labels > 0) & (pred_labels > 0)
    pair_index = ref_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    intersection = np.bincount(pair_index, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)

    overlaps = intersection[1:, 1:]  # (n_ref, n_pred): |R ∩ P|
    detected_ref = _reaches(overlaps.sum(axis=1), ref_sizes[1:], threshold)  # the pieces summed
    on_detected = overlaps[detected_ref]  # rows of the detected lesions only
    detects_alone = _reaches(on_detected, ref_sizes[1:][detected_ref, None], threshold).any(axis=0)
    pred_inside_ref = _reaches(overlaps.sum(axis=0), pred_sizes[1:], threshold)
    matched_pred = (on_detected > 0).any(axis=0) & (detects_alone | pred_inside_ref)
    tp = int(detected_ref.sum())
    fp = int((~matched_pred & ~pred_inside_ref).sum())
    fragments = int((~matched_pred & pred_inside_ref).sum())

    dice_tp = float("nan")
    if tp:
        ref_tp = np.isin(ref_labels, np.flatnonzero(detected_ref) + 1)
        pred_tp = np.isin(pred_labels, np.flatnonzero(matched_pred) + 1)
        overlap = int(np.count_nonzero(ref_tp & pred_tp))
        dice_tp = 2.0 * overlap / (int(ref_tp.sum()) + int(pred_tp.sum()))
    return ObjectMatch(n_ref, n_pred, tp, n_ref - tp, fp, fragments, dice_tp)
