"""All metrics of one case: voxel-wise, HD95 and object-wise, from two label maps and their spacing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_kd.metrics.bounding import bounding_slices
from nnunet_kd.metrics.objects import DEFAULT_OVERLAP_THRESHOLD, match_objects
from nnunet_kd.metrics.surface import hausdorff_distance_95
from nnunet_kd.metrics.voxel import VoxelCounts, voxel_counts, voxel_metrics

#: Per-case metrics, in table order. Fractions are in [0, 1]; ``hd95_mm`` is in mm. ``nan`` means undefined.
METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "iou",
    "voe",
    "hd95_mm",
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "harmonic",
    "object_precision",
    "object_recall",
    "object_f1",
    "dsc_tp",
)

#: Metrics where smaller is better (the rest: larger is better).
LOWER_IS_BETTER: frozenset[str] = frozenset({"voe", "hd95_mm"})


def foreground_mask(labels: np.ndarray, foreground_labels: Sequence[int] | None = None) -> np.ndarray:
    """Boolean tumour mask of an integer label map: every non-zero label, or the union of ``foreground_labels``."""
    if foreground_labels is None:
        return labels != 0
    return np.isin(labels, np.asarray(list(foreground_labels)))


def case_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    foreground_labels: Sequence[int] | None = None,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
) -> dict[str, float | int | bool]:
    """Every metric of one case.

    Args:
        reference: integer label map ``(z, y, x)``.
        prediction: integer label map of the same shape.
        spacing: voxel size in mm per array axis, ``(z, y, x)`` (SimpleITK's ``GetSpacing()`` reversed).
        foreground_labels: labels that form the tumour (merged into one class); ``None`` = every non-zero label.
        overlap_threshold: object detection threshold on |R ∩ P| / |R| (see :mod:`nnunet_kd.metrics.objects`).

    Returns:
        The metrics of :data:`METRIC_NAMES` plus bookkeeping: ``ref_empty``, ``pred_empty``, ``ref_volume_cm3``,
        ``pred_volume_cm3``, voxel counts ``tp``/``fp``/``fn``/``tn`` and object counts ``n_ref_objects``,
        ``n_pred_objects``, ``tp_objects``, ``fp_objects``, ``fn_objects``, ``fragment_objects``.
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: reference {reference.shape}, prediction {prediction.shape}")
    ref = foreground_mask(reference, foreground_labels)
    pred = foreground_mask(prediction, foreground_labels)
    # One crop for all metrics: the bounding box of both masks plus one voxel holds every component and surface
    # unchanged (see the metric modules); voxels outside it are true negatives.
    box = bounding_slices(ref, pred, margin=1)
    if box is not None:
        ref, pred = ref[box], pred[box]
    cropped = voxel_counts(ref, pred)
    counts = VoxelCounts(cropped.tp, cropped.fp, cropped.fn, int(reference.size) - cropped.tp - cropped.fp - cropped.fn)
    objects = match_objects(ref, pred, overlap_threshold)
    voxel_cm3 = float(np.prod(np.asarray(spacing, dtype=float))) / 1000.0
    result: dict[str, float | int | bool] = {}
    result.update(voxel_metrics(counts))
    result["hd95_mm"] = hausdorff_distance_95(ref, pred, spacing)
    result.update(objects.metrics())
    ordered: dict[str, float | int | bool] = {name: result[name] for name in METRIC_NAMES}
    ordered.update(
        ref_empty=counts.n_ref == 0,
        pred_empty=counts.n_pred == 0,
        ref_volume_cm3=counts.n_ref * voxel_cm3,
        pred_volume_cm3=counts.n_pred * voxel_cm3,
        tp=counts.tp,
        fp=counts.fp,
        fn=counts.fn,
        tn=counts.tn,
        n_ref_objects=objects.n_ref,
        n_pred_objects=objects.n_pred,
        tp_objects=objects.tp,
        fp_objects=objects.fp,
        fn_objects=objects.fn,
        fragment_objects=objects.fragments,
    )
    return ordered
