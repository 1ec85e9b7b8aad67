"""Pseudo-label arrays: ensemble weighting, fold averaging, box cleanup and provenance numbers on a constructed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.pseudo_labels.cleanup import clean_with_boxes
from nnunet_kd.pseudo_labels.ensemble import (
    fold_average_log_probabilities,
    hard_labels,
    normalised_weights,
    softmax,
)
from nnunet_kd.pseudo_labels.export import ExportOptions, pseudo_label_case
from nnunet_kd.pseudo_labels.provenance import CaseRecord, Thresholds, label_statistics, provenance_csv
from nnunet_kd.pseudo_labels.uncertainty import UncertainBand, uncertain_voxels

SPACING = (2.0, 1.0, 1.0)  # z, y, x in mm


def two_class(p_foreground: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p_foreground, p_foreground]).astype(np.float32)


def constructed_case():
    """Box A: z 1..2, rows 1..2, cols 1..3 (12 voxels), teacher fills its z = 1 half (6 voxels, p = 0.9).
    Box B: z 1, rows 4..5, cols 4..5 (4 voxels), p = 0.4 there: empty. One stray voxel (3, 5, 0) with p = 0.8,
    sqrt(2^2 + 3^2 + 1^2) = 3.74 mm from box A and 5.66 mm from box B."""
    boxes = np.zeros((4, 6, 6), dtype=np.uint8)
    boxes[1:3, 1:3, 1:4] = 1
    boxes[1, 4:6, 4:6] = 1
    p = np.full((4, 6, 6), 0.1, dtype=np.float32)
    p[1, 1:3, 1:4] = 0.9
    p[1, 4:6, 4:6] = 0.4
    p[3, 5, 0] = 0.8
    return two_class(p), boxes


def h(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)


def test_teacher_weights_are_normalised():
    assert normalised_weights([1, 3]) == [0.25, 0.75]


@pytest.mark.parametrize("weights", [[0, 0], [-1, 2], [float("nan"), 1]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ConfigurationError):
        normalised_weights(weights)


def test_folds_are_averaged_as_probabilities_not_logits():
    fold_a = np.zeros((2, 1, 1, 1), dtype=np.float32)  # p(fg) = 0.5
    fold_b = np.zeros((2, 1, 1, 1), dtype=np.float32)
    fold_b[1] = math.log(3.0)  # p(fg) = 3 / 4
    combined = softmax(fold_average_log_probabilities([fold_a, fold_b]))
    np.testing.assert_allclose(combined[:, 0, 0, 0], [0.375, 0.625], rtol=1e-6)  # logit mean would give 0.634
    single = fold_average_log_probabilities([fold_b])
    np.testing.assert_array_equal(single, fold_b)  # one fold: nnU-Net's logits unchanged


def test_cleanup_removes_voxels_outside_the_margin_and_components_touching_no_box():
    probabilities, boxes = constructed_case()
    labels = hard_labels(probabilities)
    assert labels.sum() == 7  # 6 in box A + the stray voxel; p = 0.4 in box B is background
    cleaned, report = clean_with_boxes(labels, boxes, SPACING, margin_mm=5.0)
    assert (report.removed_outside, report.removed_components, report.removed_component_voxels) == (0, 1, 1)
    assert cleaned.sum() == 6 and cleaned[3, 5, 0] == 0 and cleaned[1, 1:3, 1:4].all()
    cleaned, report = clean_with_boxes(labels, boxes, SPACING, margin_mm=3.0)  # 3.74 mm > 3: outside
    assert (report.removed_outside, report.removed_components) == (1, 0)
    assert cleaned.sum() == 6


def test_cleanup_keeps_a_component_that_leaves_its_box_within_the_margin():
    boxes = np.zeros((3, 8, 8), dtype=np.uint8)
    boxes[1, 2:5, 2:5] = 1
    labels = np.zeros_like(boxes)
    labels[1, 3:7, 3:5] = 1  # rows 5..6 lie outside the box but 1-2 mm from it, same component
    cleaned, report = clean_with_boxes(labels, boxes, (1.0, 1.0, 1.0), margin_mm=2.0)
    np.testing.assert_array_equal(cleaned, labels)
    assert report.removed_outside == 0 and report.removed_components == 0


def test_provenance_numbers_match_hand_computed_values():
    probabilities, boxes = constructed_case()
    options = ExportOptions(thresholds=Thresholds(margin_mm=5.0))
    labels, fields = pseudo_label_case(probabilities, boxes, SPACING, options)
    assert fields["num_boxes"] == 2
    assert fields["box_fill"] == [0.5, 0.0]  # box A: 6 / 12, box B: 0 / 4
    assert fields["foreground_voxels"] == 6
    assert fields["mean_foreground_probability"] == pytest.approx(0.9, abs=1e-6)
    # region = 16 box voxels (the label lies inside box A): 12 with p in {0.1, 0.9}, 4 with p = 0.4
    assert fields["mean_entropy"] == pytest.approx((12 * h(0.1) + 4 * h(0.4)) / 16, abs=1e-5)  # 0.5945
    assert fields["outside_voxels"] == 0 and fields["removed_outside_voxels"] == 0
    assert fields["removed_components"] == 1
    assert fields["flags"] == ["empty_box"]
    assert labels.sum() == 6


def test_flags_follow_the_thresholds():
    probabilities, boxes = constructed_case()
    _, fields = pseudo_label_case(probabilities, boxes, SPACING, ExportOptions(thresholds=Thresholds(0.6, 0.95, 3.0)))
    assert fields["flags"] == ["empty_box", "low_fill", "outside_boxes"]  # 0 < 0.5 < 0.6; stray voxel at 3.74 mm
    assert fields["outside_voxels"] == 1 and fields["removed_outside_voxels"] == 1
    _, fields = pseudo_label_case(probabilities, boxes, SPACING,
                                  ExportOptions(cleanup=False, thresholds=Thresholds(0.2, 0.4, 5.0)))
    assert fields["flags"] == ["empty_box", "high_fill"]  # 0.5 > 0.4
    assert fields["removed_outside_voxels"] is None and fields["foreground_voxels"] == 7  # no cleanup: stray kept


def test_statistics_without_boxes_and_of_an_empty_prediction():
    probabilities = two_class(np.full((2, 3, 3), 0.3))
    stats = label_statistics(probabilities, hard_labels(probabilities), None, SPACING)
    assert stats.num_boxes is None and stats.box_fill == [] and stats.flags == []
    assert stats.mean_foreground_probability is None and stats.mean_entropy is None  # nothing labelled, no boxes
    stats = label_statistics(probabilities, hard_labels(probabilities), np.zeros((2, 3, 3), np.uint8), SPACING)
    assert stats.num_boxes == 0 and stats.flags == ["no_boxes"]


def test_provenance_csv_lists_and_missing_values():
    record = CaseRecord("weak_a", "a", "Dataset902_W", "pseudo", ["t1", "t2"], 2, [0.5, 0.0], 6, 0.9, 0.59448,
                        0, 0, 1, ["empty_box"])
    strong = CaseRecord("strong_b", "b", "Dataset900_S", "strong")
    lines = provenance_csv([record, strong]).splitlines()
    assert lines[0].startswith("case,source_case,source_dataset,kind,teachers,num_boxes,box_fill,min_box_fill")
    assert lines[1] == "weak_a,a,Dataset902_W,pseudo,t1;t2,2,0.5;0,0,6,0.9,0.59448,0,0,1,empty_box,,"
    assert lines[2] == "strong_b,b,Dataset900_S,strong,,,,,,,,,,,,,"


def test_qc_slices_prefer_box_middles_then_stray_voxels_then_box_ends():
    from nnunet_kd.pseudo_labels.qc import qc_slices

    boxes = np.zeros((10, 6, 6), dtype=np.uint8)
    boxes[2:7, 1:3, 1:3] = 1  # middle slice 4, ends 2 and 6
    labels = np.zeros_like(boxes)
    labels[3:6, 1:3, 1:3] = 1
    labels[9, 5, 5] = 1  # outside the box
    assert qc_slices(labels, boxes, max_slices=2) == [4, 9]
    # then the largest label slice (3, first of three equal ones), then the box ends 2 and 6
    assert qc_slices(labels, boxes, max_slices=4) == [2, 3, 4, 9]
    assert qc_slices(labels, boxes, max_slices=5) == [2, 3, 4, 6, 9]
    assert qc_slices(np.zeros_like(labels), None) == [5]


def test_hard_labels_equal_argmax_with_ties_to_the_lower_label():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=(4, 5, 6)).transpose(3, 0, 1, 2).astype(np.float32)
    p[:, 0, 0, 0] = [0.25, 0.375, 0.375]  # tie between labels 1 and 2
    labels = hard_labels(p)
    np.testing.assert_array_equal(labels, np.argmax(p, axis=0))
    assert labels[0, 0, 0] == 1


def test_dilation_around_each_box_equals_dilation_of_all_boxes():
    from nnunet_kd.boxes.constraint import dilate_mm
    from nnunet_kd.pseudo_labels.cleanup import dilated_boxes

    boxes = np.zeros((12, 20, 20), dtype=np.uint8)
    boxes[1:3, 1:4, 1:5] = 1
    boxes[8:11, 14:19, 12:18] = 1
    boxes[5, 10, 0] = 1  # a box at the volume border
    for margin in (0.0, 2.5, 6.0):
        np.testing.assert_array_equal(dilated_boxes(boxes, SPACING, margin), dilate_mm(boxes, margin, SPACING))


def test_unsure_voxels_are_those_in_the_open_band_inside_the_region():
    probabilities, boxes = constructed_case()  # p(tumour): 0.1 background, 0.9 box A's z = 1 half, 0.4 box B, 0.8 stray
    assert uncertain_voxels(probabilities, UncertainBand(0.3, 0.7)).sum() == 4  # box B only
    assert uncertain_voxels(probabilities, UncertainBand(0.4, 0.7)).sum() == 0  # open band: 0.4 itself is sure
    wide = UncertainBand(0.05, 0.5)  # every 0.1 and 0.4 voxel: 144 - 6 (0.9) - 1 (0.8)
    assert uncertain_voxels(probabilities, wide).sum() == 137
    assert uncertain_voxels(probabilities, wide, boxes > 0).sum() == 6 + 4  # box A's z = 2 half and box B


@pytest.mark.parametrize(("low", "high"), [(0.7, 0.3), (0.5, 0.5), (-0.1, 0.5), (0.2, 1.5)])
def test_uncertainty_thresholds_out_of_order_are_refused(low, high):
    with pytest.raises(ConfigurationError, match="--ignore-uncertain thresholds"):
        ExportOptions(ignore_uncertain=(low, high))


def test_confidence_aware_pseudo_label_puts_the_ignore_label_on_unsure_voxels_inside_the_boxes_only():
    probabilities, boxes = constructed_case()
    options = ExportOptions(thresholds=Thresholds(margin_mm=0.0), ignore_uncertain=(0.3, 0.7))
    labels, fields = pseudo_label_case(probabilities, boxes, SPACING, options)
    hard, hard_fields = pseudo_label_case(probabilities, boxes, SPACING, ExportOptions(thresholds=Thresholds(
        margin_mm=0.0)))
    assert np.array_equal(labels == 2, boxes.astype(bool) & (probabilities[1] == np.float32(0.4)))  # ignore = C = 2
    assert np.array_equal(labels[labels != 2], hard[labels != 2])  # everything else as the hard label
    assert fields["ignored_voxels"] == 4 and fields["ignored_fraction"] == pytest.approx(4 / 16)
    assert fields["box_fill"] == hard_fields["box_fill"]  # provenance numbers describe the hard label
    # with a stray 0.5 voxel outside the boxes: it stays background (outside the boxes is certain)
    probabilities[:, 3, 0, 5] = [0.5, 0.5]
    labels, fields = pseudo_label_case(probabilities, boxes, SPACING, options)
    assert labels[3, 0, 5] == 0 and fields["ignored_voxels"] == 4
    # without a box mask the rule applies everywhere
    labels, fields = pseudo_label_case(probabilities, None, SPACING, options)
    assert labels[3, 0, 5] == 2 and fields["ignored_voxels"] == 5 and fields["ignored_fraction"] == 5 / labels.size


def test_disagreement_becomes_the_ignore_label_inside_the_boxes_only():
    probabilities, boxes = constructed_case()
    disagreement = np.zeros(boxes.shape, dtype=bool)
    disagreement[1, 1, 1] = disagreement[3, 0, 5] = True  # one voxel in box A, one outside every box
    options = ExportOptions(thresholds=Thresholds(margin_mm=0.0), ignore_disagreement=True)
    labels, fields = pseudo_label_case(probabilities, boxes, SPACING, options, disagreement)
    assert labels[1, 1, 1] == 2 and labels[3, 0, 5] == 0 and fields["ignored_voxels"] == 1
    unchanged, _ = pseudo_label_case(probabilities, boxes, SPACING, ExportOptions(thresholds=Thresholds(
        margin_mm=0.0)), disagreement)
    assert not (unchanged == 2).any()  # without the option the disagreement is not used
