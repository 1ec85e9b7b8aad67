"""Axial box derivation on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_kd.boxes.axial_boxes import (
    AxialBox,
    axial_box_mask,
    axial_boxes_from_label,
    rasterize_boxes,
)


def test_single_lesion_gives_tight_rectangle_per_slice():
    label = np.zeros((4, 10, 12), np.uint8)
    label[1, 2:5, 3:7] = 1  # slice 1: rows 2..4, cols 3..6
    label[2, 3, 5] = 1  # slice 2: one voxel, touching slice 1's block
    label[2, 6, 8] = 0
    boxes = axial_boxes_from_label(label)
    assert boxes == [AxialBox(1, 2, 4, 3, 6, lesion=1), AxialBox(2, 3, 3, 5, 5, lesion=1)]


def test_l_shaped_lesion_box_covers_more_than_the_lesion():
    label = np.zeros((1, 6, 6), np.uint8)
    label[0, 1, 1:5] = 1
    label[0, 1:5, 1] = 1
    mask = axial_box_mask(label)
    assert mask[0, 1:5, 1:5].all() and mask.sum() == 16  # the 4x4 rectangle, corners included


def test_two_lesions_on_one_slice_get_two_boxes_and_merged_mode_one():
    label = np.zeros((3, 10, 10), np.uint8)
    label[1, 1:3, 1:3] = 1
    label[1, 6:9, 5:8] = 1
    separate = axial_boxes_from_label(label)
    assert [(b.row_min, b.row_max, b.col_min, b.col_max) for b in separate] == [(1, 2, 1, 2), (6, 8, 5, 7)]
    assert {b.lesion for b in separate} == {1, 2}
    merged = axial_boxes_from_label(label, merge_per_slice=True)
    assert merged == [AxialBox(1, 1, 8, 1, 7, lesion=0)]


def test_touching_lesions_are_one_lesion_with_26_connectivity_but_two_with_6():
    label = np.zeros((2, 6, 6), np.uint8)
    label[0, 1, 1] = 1
    label[1, 2, 2] = 1  # diagonal neighbour across slices
    assert {b.lesion for b in axial_boxes_from_label(label, connectivity=26)} == {1}
    assert {b.lesion for b in axial_boxes_from_label(label, connectivity=6)} == {1, 2}


def test_one_voxel_lesion_and_border_lesion():
    label = np.zeros((3, 5, 5), np.uint8)
    label[0, 0, 0] = 1  # corner of the volume
    label[2, 4, 2:5] = 1  # touches the last row and last column
    boxes = axial_boxes_from_label(label)
    assert AxialBox(0, 0, 0, 0, 0, lesion=1) in boxes
    assert AxialBox(2, 4, 4, 2, 4, lesion=2) in boxes
    assert axial_box_mask(label).sum() == 1 + 3


def test_other_axial_axis_is_equivalent_to_moving_the_axis():
    rng = np.random.default_rng(0)
    label = (rng.random((5, 7, 9)) > 0.85).astype(np.uint8)
    reference = axial_box_mask(label, axial_axis=0)
    moved = axial_box_mask(np.moveaxis(label, 0, 2), axial_axis=2)
    np.testing.assert_array_equal(np.moveaxis(moved, 2, 0), reference)


def test_anisotropic_volume_boxes_are_in_voxel_units_and_every_label_voxel_is_boxed():
    rng = np.random.default_rng(1)
    label = (rng.random((6, 20, 11)) > 0.9).astype(np.uint8)
    mask = axial_box_mask(label)
    assert not (label.astype(bool) & ~mask.astype(bool)).any()
    # every box is tight: its border rows/cols each contain a labelled voxel of that slice
    for box in axial_boxes_from_label(label, connectivity=26):
        plane = label[box.slice_index, box.row_min : box.row_max + 1, box.col_min : box.col_max + 1]
        assert plane[0].any() and plane[-1].any() and plane[:, 0].any() and plane[:, -1].any()


def test_rasterize_clips_to_the_volume():
    boxes = [AxialBox(0, 1, 2, 1, 3), AxialBox(1, -3, 1, 8, 20)]
    mask = rasterize_boxes(boxes, (2, 5, 10))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask[0].sum() == 2 * 3 and mask[1].sum() == 2 * 2  # second box clipped to rows 0..1, cols 8..9
    assert mask[0, 1:3, 1:4].all() and mask[1, 0:2, 8:10].all()


def test_empty_label_and_invalid_input():
    assert axial_boxes_from_label(np.zeros((2, 3, 3))) == []
    assert axial_box_mask(np.zeros((2, 3, 3))).sum() == 0
    with pytest.raises(ValueError):
        axial_boxes_from_label(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        AxialBox(0, 3, 2, 0, 0)


def _reference_boxes(label: np.ndarray, merge: bool, connectivity: int) -> list[AxialBox]:
    """The definition, written out slowly: label the whole volume, then one tight rectangle per lesion and slice."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 3 if connectivity == 26 else 1)
    components, count = ndimage.label(label > 0, structure=structure)
    if merge:
        components, count = (label > 0).astype(int), int((label > 0).any())
    boxes = []
    for lesion in range(1, count + 1):
        for z in range(label.shape[0]):
            rows, cols = np.nonzero(components[z] == lesion)
            if rows.size:
                boxes.append(AxialBox(z, int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max()),
                                      lesion=0 if merge else lesion))
    return sorted(boxes)


@pytest.mark.parametrize("seed", range(6))
def test_boxes_equal_the_definition_on_random_multi_lesion_volumes(seed):
    # blobs anywhere, touching the borders too: cropping to the foreground before labelling must change nothing
    rng = np.random.default_rng(seed)
    label = (rng.random((12, 20, 24)) > 0.93).astype(np.uint8)
    label[0, 0, :3] = 1
    label[-1, -2:, -1] = 2
    for merge in (False, True):
        for connectivity in (6, 26):
            expected = _reference_boxes(label, merge, connectivity)
            found = axial_boxes_from_label(label, merge_per_slice=merge, connectivity=connectivity)
            if merge:
                assert found == expected
            else:  # lesion ids may be numbered differently: compare the rectangles and how they group into lesions
                def grouped(boxes):
                    return sorted(tuple(sorted((b.slice_index, b.row_min, b.row_max, b.col_min, b.col_max)
                                               for b in boxes if b.lesion == k)) for k in {b.lesion for b in boxes})
                assert grouped(found) == grouped(expected)
