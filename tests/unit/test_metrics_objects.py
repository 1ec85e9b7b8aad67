"""Object matching: split (pieces summed), merged and missed lesions, fragments, false positives, the 25 % edge,
empty masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_kd.metrics import ObjectMatch, match_objects

SHAPE = (12, 12, 24)


def _box(z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = True
    return mask


LESION = _box((1, 11), (1, 11), (2, 12))  # 10 × 10 × 10 = 1000 voxels, x from 2 to 11


def test_split_prediction_detects_the_lesion_once() -> None:
    # two predicted pieces covering x 2..5 and x 8..11: 400 voxels each (40 % of the lesion), not touching
    prediction = _box((1, 11), (1, 11), (2, 6)) | _box((1, 11), (1, 11), (8, 12))
    match = match_objects(LESION, prediction)
    assert (match.n_ref, match.n_pred, match.tp, match.fn, match.fp, match.fragments) == (1, 2, 1, 0, 0, 0)
    m = match.metrics()
    assert m["object_precision"] == 1.0 and m["object_recall"] == 1.0 and m["object_f1"] == 1.0
    assert m["dsc_tp"] == pytest.approx(2 * 800 / (1000 + 800))  # both pieces matched: 800 voxels, all inside


def test_pieces_are_summed_two_small_pieces_detect_the_lesion() -> None:
    # pieces of x 2..3 and x 10..11: 200 voxels each = 20 % < 25 %, together 40 % of the lesion: detected
    prediction = _box((1, 11), (1, 11), (2, 4)) | _box((1, 11), (1, 11), (10, 12))
    match = match_objects(LESION, prediction)
    assert (match.tp, match.fn, match.fp, match.fragments) == (1, 0, 0, 0)
    m = match.metrics()
    assert m["object_recall"] == 1.0 and m["object_precision"] == 1.0 and m["object_f1"] == 1.0
    assert m["dsc_tp"] == pytest.approx(2 * 400 / (1000 + 400))


def test_pieces_below_the_threshold_together_are_a_miss_with_fragments() -> None:
    # two pieces of 100 voxels (10 % each, 20 % together) inside the lesion: missed; the pieces are fragments
    prediction = _box((1, 11), (1, 11), (2, 3)) | _box((1, 11), (1, 11), (11, 12))
    match = match_objects(LESION, prediction)
    assert (match.tp, match.fn, match.fp, match.fragments) == (0, 1, 0, 2)
    m = match.metrics()
    assert m["object_recall"] == 0.0 and m["object_f1"] == 0.0  # 0 / (0 + 0 + 1)
    assert math.isnan(m["object_precision"])  # 0 / (0 + 0): no detection claimed, no false positive
    assert math.isnan(m["dsc_tp"])


def test_fragment_inside_a_detected_lesion_counts_in_dsc_tp_which_then_equals_dice() -> None:
    # a 40 % piece detects the lesion; a separate 10 % piece inside it belongs to the same true positive
    prediction = _box((1, 11), (1, 11), (2, 6)) | _box((1, 11), (1, 11), (10, 11))
    match = match_objects(LESION, prediction)
    assert (match.tp, match.fp, match.fragments) == (1, 0, 0)
    dice = 2 * 500 / (1000 + 500)  # no lesion missed, no false positive: DSC-TP is the Dice
    assert match.dice_tp == pytest.approx(dice)


def test_over_segmenting_object_still_matches_the_lesion_it_covers() -> None:
    small = _box((4, 6), (4, 6), (4, 6))  # 8 voxels
    blob = _box((2, 9), (2, 9), (2, 9))  # 343 voxels around it: 2 % of the blob lies in the lesion
    match = match_objects(small, blob)
    assert (match.tp, match.fp, match.fragments) == (1, 0, 0)
    assert match.dice_tp == pytest.approx(2 * 8 / (8 + 343))


def test_merged_prediction_detects_both_lesions() -> None:
    reference = _box((1, 11), (1, 11), (2, 6)) | _box((1, 11), (1, 11), (8, 12))  # two lesions of 400 voxels
    prediction = LESION  # one object covering both and the gap (1000 voxels)
    match = match_objects(reference, prediction)
    assert (match.n_ref, match.n_pred, match.tp, match.fn, match.fp) == (2, 1, 2, 0, 0)
    assert match.metrics()["object_f1"] == 1.0
    assert match.dice_tp == pytest.approx(2 * 800 / (800 + 1000))


def test_missed_lesion_and_false_positive() -> None:
    lesion_a = _box((1, 4), (1, 4), (1, 4))  # 27 voxels
    lesion_b = _box((7, 10), (7, 10), (1, 4))  # 27 voxels, far from a
    false_positive = _box((1, 3), (8, 10), (18, 20))  # 8 voxels, nowhere near a lesion
    match = match_objects(lesion_a | lesion_b, lesion_a | false_positive)
    assert (match.tp, match.fn, match.fp, match.fragments) == (1, 1, 1, 0)
    m = match.metrics()
    assert m["object_precision"] == 0.5 and m["object_recall"] == 0.5  # 1/(1+1), 1/(1+1)
    assert m["object_f1"] == pytest.approx(0.5)  # 2·1 / (2·1 + 1 + 1)
    assert m["dsc_tp"] == 1.0  # lesion a predicted exactly; b and the FP are left out


# Lesion of 4 × 5 × 5 = 100 voxels; a predicted slab 1 × 5 × 5 inside it covers 25 voxels = exactly 25 %.
EDGE_LESION = _box((2, 6), (2, 7), (2, 7))


def test_overlap_exactly_at_threshold_is_detected() -> None:
    slab = _box((2, 3), (2, 7), (2, 7))  # 25 of 100 voxels
    outside = _box((0, 2), (2, 7), (2, 7))  # grows the predicted object outside the lesion: |R ∩ P| is still 25
    match = match_objects(EDGE_LESION, slab | outside)
    assert match.tp == 1 and match.fp == 0


def test_overlap_just_below_threshold_is_missed() -> None:
    slab = _box((2, 3), (2, 7), (2, 7))
    slab[2, 2, 2] = False  # 24 of 100 voxels (still one 26-connected object)
    match = match_objects(EDGE_LESION, slab)
    assert match.tp == 0 and match.fn == 1
    assert (match.fp, match.fragments) == (0, 1)  # all its voxels lie inside the missed lesion


def test_threshold_is_a_parameter() -> None:
    prediction = _box((1, 11), (1, 11), (2, 6)) | _box((1, 11), (1, 11), (8, 12))  # 40 % pieces, 80 % together
    assert match_objects(LESION, prediction, threshold=0.8).tp == 1  # 800 / 1000 = 0.8, inclusive
    assert match_objects(LESION, prediction, threshold=0.81).tp == 0
    with pytest.raises(ValueError):
        match_objects(LESION, prediction, threshold=0.0)


def test_unmatched_prediction_mostly_outside_is_a_false_positive() -> None:
    detector = _box((1, 11), (1, 6), (2, 12))  # 500 voxels inside the lesion: detects it (50 %)
    stray = _box((5, 6), (8, 9), (11, 21))  # x 11..20 on one row: 10 voxels, only x = 11 inside (10 % < 25 %)
    fragment = _box((8, 9), (8, 9), (4, 6))  # 2 voxels, both inside the lesion, touching nothing else
    match = match_objects(LESION, detector | stray | fragment)
    assert match.n_pred == 3
    # the stray touches the detected lesion but lies mostly outside: a false positive; the fragment lies inside the
    # detected lesion: part of the true positive
    assert (match.tp, match.fp, match.fragments) == (1, 1, 0)
    assert match.metrics()["object_precision"] == 0.5  # 1 / (1 + 1)
    assert match.dice_tp == pytest.approx(2 * 502 / (1000 + 502))


def test_26_connectivity_joins_diagonal_voxels() -> None:
    reference = np.zeros((3, 3, 3), dtype=bool)
    reference[0, 0, 0] = reference[1, 1, 1] = True  # touch at a corner only: one object under 26-connectivity
    prediction = np.zeros_like(reference)
    prediction[0, 0, 0] = True  # covers 1 of 2 voxels = 50 %
    match = match_objects(reference, prediction)
    assert (match.n_ref, match.tp) == (1, 1)


def test_empty_masks() -> None:
    empty = np.zeros(SHAPE, dtype=bool)
    both = match_objects(empty, empty)
    assert both == ObjectMatch(0, 0, 0, 0, 0, 0, both.dice_tp) and math.isnan(both.dice_tp)
    assert all(math.isnan(v) for v in both.metrics().values())
    only_pred = match_objects(empty, LESION).metrics()
    assert only_pred["object_precision"] == 0.0 and only_pred["object_f1"] == 0.0
    assert math.isnan(only_pred["object_recall"])
    only_ref = match_objects(LESION, empty).metrics()
    assert only_ref["object_recall"] == 0.0 and only_ref["object_f1"] == 0.0
    assert math.isnan(only_ref["object_precision"])
