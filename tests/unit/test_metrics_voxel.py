"""Voxel-wise metrics: hand-computed confusion counts, identical/disjoint masks and the empty-mask rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_kd.metrics import case_metrics, voxel_counts, voxel_metrics
from nnunet_kd.metrics.bounding import bounding_slices
from nnunet_kd.metrics.voxel import VoxelCounts, harmonic_mean


def _line(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=bool).reshape(1, 1, -1)


def test_hand_computed_counts_and_metrics() -> None:
    reference = _line([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    prediction = _line([0, 0, 1, 1, 1, 0, 0, 0, 0, 0])
    counts = voxel_counts(reference, prediction)
    assert counts == VoxelCounts(tp=2, fp=1, fn=2, tn=5)
    m = voxel_metrics(counts)
    assert m["accuracy"] == pytest.approx(7 / 10)  # (2 + 5) / 10
    assert m["precision"] == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert m["recall"] == pytest.approx(1 / 2)  # 2 / (2 + 2)
    assert m["specificity"] == pytest.approx(5 / 6)  # 5 / (5 + 1)
    assert m["harmonic"] == pytest.approx(5 / 8)  # 2 * 1/2 * 5/6 / (1/2 + 5/6) = (5/6) / (4/3)
    assert m["dice"] == pytest.approx(4 / 7)  # 2*2 / (2*2 + 1 + 2)
    assert m["iou"] == pytest.approx(2 / 5)  # 2 / (2 + 1 + 2)
    assert m["voe"] == pytest.approx(3 / 5)  # 1 - 2/5


def test_counts_outside_the_lesion_box_are_true_negatives() -> None:
    reference = np.zeros((30, 40, 50), dtype=bool)
    prediction = np.zeros_like(reference)
    reference[10:12, 5:7, 20:22] = True  # 8 voxels
    prediction[11:13, 5:7, 20:22] = True  # 8 voxels, 4 shared
    counts = voxel_counts(reference, prediction)
    assert counts == VoxelCounts(tp=4, fp=4, fn=4, tn=30 * 40 * 50 - 12)


def test_identical_masks_are_perfect() -> None:
    reference = np.zeros((8, 8, 8), dtype=np.uint8)
    reference[2:6, 3:5, 1:7] = 1
    m = case_metrics(reference, reference.copy(), (1.0, 1.0, 1.0))
    for name in ("accuracy", "precision", "recall", "specificity", "harmonic", "dice", "iou", "object_precision",
                 "object_recall", "object_f1", "dsc_tp"):
        assert m[name] == 1.0, name
    assert m["voe"] == 0.0
    assert m["hd95_mm"] == 0.0


def test_disjoint_masks() -> None:
    reference = np.zeros((6, 6, 12), dtype=np.uint8)
    prediction = np.zeros_like(reference)
    reference[1:3, 1:3, 1:3] = 1  # 8 voxels
    prediction[1:3, 1:3, 7:10] = 1  # 12 voxels, no overlap
    m = case_metrics(reference, prediction, (1.0, 1.0, 1.0))
    assert m["dice"] == 0.0 and m["iou"] == 0.0 and m["voe"] == 1.0
    assert m["precision"] == 0.0 and m["recall"] == 0.0
    assert m["specificity"] == pytest.approx((432 - 20) / (432 - 8))  # TN / (TN + FP), 6*6*12 = 432 voxels
    assert m["harmonic"] == 0.0  # recall 0
    # nearest surfaces: x = 2 (reference) to x = 7 (prediction) -> 5 voxels = 5 mm at least
    assert m["hd95_mm"] >= 5.0
    assert (m["tp_objects"], m["fp_objects"], m["fn_objects"]) == (0, 1, 1)
    assert m["object_f1"] == 0.0 and math.isnan(m["dsc_tp"])


def test_both_empty_follows_the_rule() -> None:
    empty = np.zeros((4, 5, 6), dtype=np.uint8)
    m = case_metrics(empty, empty.copy(), (1.0, 1.0, 1.0))
    assert m["ref_empty"] and m["pred_empty"]
    for name in ("precision", "recall", "harmonic", "dice", "iou", "voe", "hd95_mm", "object_precision",
                 "object_recall", "object_f1", "dsc_tp"):
        assert math.isnan(m[name]), name  # 0/0: undefined, reported as missing
    assert m["accuracy"] == 1.0 and m["specificity"] == 1.0  # 120 TN / 120


def test_only_reference_empty() -> None:
    reference = np.zeros((4, 5, 6), dtype=np.uint8)
    prediction = reference.copy()
    prediction[1, 1, 1:4] = 1  # 3 false-positive voxels
    m = case_metrics(reference, prediction, (1.0, 1.0, 1.0))
    assert m["ref_empty"] and not m["pred_empty"]
    assert m["dice"] == 0.0 and m["precision"] == 0.0  # 0 / 3
    assert math.isnan(m["recall"]) and math.isnan(m["hd95_mm"]) and math.isnan(m["harmonic"])
    assert m["specificity"] == pytest.approx(117 / 120)
    assert m["object_f1"] == 0.0 and m["fp_objects"] == 1 and math.isnan(m["object_recall"])


def test_only_prediction_empty() -> None:
    reference = np.zeros((4, 5, 6), dtype=np.uint8)
    reference[1:3, 1:3, 1:3] = 2  # any non-zero label is tumour by default
    m = case_metrics(reference, np.zeros_like(reference), (1.0, 1.0, 1.0))
    assert m["pred_empty"] and not m["ref_empty"]
    assert m["dice"] == 0.0 and m["recall"] == 0.0 and m["iou"] == 0.0
    assert math.isnan(m["precision"]) and math.isnan(m["hd95_mm"])
    assert m["object_f1"] == 0.0 and m["fn_objects"] == 1 and math.isnan(m["object_precision"])
    assert m["ref_volume_cm3"] == pytest.approx(8 / 1000)  # 8 voxels of 1 mm³


def test_foreground_labels_select_the_tumour() -> None:
    reference = np.zeros((1, 1, 6), dtype=np.uint8)
    reference[0, 0, :] = [1, 1, 2, 2, 0, 0]
    prediction = np.zeros_like(reference)
    prediction[0, 0, :] = [1, 0, 2, 0, 0, 0]
    only_two = case_metrics(reference, prediction, (1.0, 1.0, 1.0), foreground_labels=(2,))
    assert only_two["dice"] == pytest.approx(2 / 3)  # label 2: ref 2 voxels, pred 1, overlap 1 -> 2/3
    merged = case_metrics(reference, prediction, (1.0, 1.0, 1.0))
    assert merged["dice"] == pytest.approx(4 / 6)  # all labels: ref 4, pred 2, overlap 2 -> 4/6


def test_volume_uses_the_spacing() -> None:
    reference = np.zeros((3, 3, 3), dtype=np.uint8)
    reference[0, 0, 0:2] = 1
    m = case_metrics(reference, reference.copy(), (2.0, 0.5, 0.5))
    assert m["ref_volume_cm3"] == pytest.approx(2 * 0.5 / 1000)  # 2 voxels × (2 × 0.5 × 0.5) mm³


def test_harmonic_mean_edge_values() -> None:
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert math.isnan(harmonic_mean(float("nan"), 1.0))
    assert harmonic_mean(1.0, 1.0) == 1.0


def test_bounding_slices_margin_is_clipped() -> None:
    mask = np.zeros((5, 6, 7), dtype=bool)
    mask[0, 2, 6] = True
    assert bounding_slices(mask, margin=1) == (slice(0, 2), slice(1, 4), slice(5, 7))
    assert bounding_slices(np.zeros((2, 2, 2), dtype=bool)) is None
