"""Box augmentation modes measured over many draws, and the box-channel transform on hand-made samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_kd.boxes.augmentation import BoxAugmentation, augment_boxes
from nnunet_kd.boxes.axial_boxes import AxialBox, axial_axis_after_transpose, axial_box_mask
from nnunet_kd.boxes.channel import AxialBoxChannelTransform

NONE = BoxAugmentation(margin_mm=(0.0, 0.0), shift_mm=0.0, edge_jitter_mm=0.0, slice_drop_probability=0.0,
                       lesion_drop_probability=0.0)
BOX = AxialBox(3, 40, 59, 30, 69, lesion=1)  # 20 rows x 40 columns, far from the slice border
SLICE = (200, 200)


def draws(params: BoxAugmentation, n: int = 4000, spacing=(1.0, 1.0), boxes=None, seed=0):
    rng = np.random.default_rng(seed)
    return [augment_boxes(boxes or [BOX], rng, spacing, SLICE, params) for _ in range(n)]


def test_no_augmentation_is_identity():
    boxes = [BOX, AxialBox(4, 1, 2, 3, 4, lesion=2)]
    assert augment_boxes(boxes, np.random.default_rng(0), (0.7, 0.7), SLICE, NONE) == (boxes, set())


def test_fixed_margin_grows_every_edge_by_margin_over_spacing():
    params = BoxAugmentation(margin_mm=(3.0, 3.0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                             lesion_drop_probability=0)
    (box,), _ = augment_boxes([BOX], np.random.default_rng(0), (1.5, 0.75), SLICE, params)
    # rows: 3 mm / 1.5 mm = 2 pixels per edge; columns: 3 mm / 0.75 mm = 4 pixels per edge
    assert (box.row_min, box.row_max, box.col_min, box.col_max) == (38, 61, 26, 73)


def test_mean_margin_matches_the_range():
    params = BoxAugmentation(margin_mm=(-1.0, 5.0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                             lesion_drop_probability=0)
    growth = [(BOX.row_min - b.row_min) for (b,), _ in draws(params, spacing=(0.5, 0.5))]
    # per edge growth in mm = margin ~ U(-1, 5): mean 2 mm = 4 pixels at 0.5 mm
    assert abs(np.mean(growth) * 0.5 - 2.0) < 0.1
    assert min(growth) >= -2 and max(growth) <= 10


def test_shift_moves_the_box_without_changing_its_size():
    params = BoxAugmentation(margin_mm=(0, 0), shift_mm=4.0, edge_jitter_mm=0, slice_drop_probability=0,
                             lesion_drop_probability=0)
    results = [b for (b,), _ in draws(params)]
    assert all(b.row_max - b.row_min == BOX.row_max - BOX.row_min for b in results)
    shifts = np.array([b.row_min - BOX.row_min for b in results])
    assert abs(shifts.mean()) < 0.15 and shifts.min() == -4 and shifts.max() == 4
    assert abs(np.abs(shifts).mean() - 2.0) < 0.15  # |U(-4, 4)| has mean 2 (rounded to pixels)


def test_edge_jitter_is_independent_per_edge():
    params = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=3.0, slice_drop_probability=0,
                             lesion_drop_probability=0)
    results = [b for (b,), _ in draws(params)]
    top = np.array([b.row_min - BOX.row_min for b in results])
    bottom = np.array([b.row_max - BOX.row_max for b in results])
    assert abs(np.corrcoef(top, bottom)[0, 1]) < 0.05
    assert top.std() > 1.0 and bottom.std() > 1.0


def test_slice_drop_rate_and_a_lesion_keeps_one_box():
    lesion = [AxialBox(z, 10, 20, 10, 20, lesion=1) for z in range(60)]
    params = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0.3,
                             lesion_drop_probability=0)
    kept = [len(boxes) for boxes, _ in draws(params, n=500, boxes=lesion)]
    assert abs(1 - np.mean(kept) / 60 - 0.3) < 0.01
    always_drop = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=1.0,
                                  lesion_drop_probability=0)
    assert all(len(boxes) == 1 for boxes, _ in draws(always_drop, n=20, boxes=lesion))


def test_lesion_drop_rate_removes_all_boxes_of_the_lesion():
    boxes = [AxialBox(z, 10, 20, 10, 20, lesion=1) for z in range(5)] + [AxialBox(2, 50, 60, 50, 60, lesion=2)]
    params = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                             lesion_drop_probability=0.25)
    results = draws(params, n=4000, boxes=boxes)
    dropped_1 = np.mean([1 in dropped for _, dropped in results])
    assert abs(dropped_1 - 0.25) < 0.02
    for kept, dropped in results:
        assert all(b.lesion not in dropped for b in kept)
        assert len(kept) == 6 - 5 * (1 in dropped) - 1 * (2 in dropped)


def test_shrinking_never_inverts_and_clips_to_the_slice():
    params = BoxAugmentation(margin_mm=(-50.0, -50.0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                             lesion_drop_probability=0)
    (box,), _ = augment_boxes([BOX], np.random.default_rng(0), (1.0, 1.0), SLICE, params)
    assert box.row_min == box.row_max and box.col_min == box.col_max  # collapsed to one pixel
    grow = BoxAugmentation(margin_mm=(500.0, 500.0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                           lesion_drop_probability=0)
    (box,), _ = augment_boxes([BOX], np.random.default_rng(0), (1.0, 1.0), SLICE, grow)
    assert (box.row_min, box.row_max, box.col_min, box.col_max) == (0, 199, 0, 199)


def test_invalid_parameters():
    with pytest.raises(ValueError):
        BoxAugmentation(margin_mm=(2.0, 1.0))
    with pytest.raises(ValueError):
        BoxAugmentation(slice_drop_probability=1.5)


def _sample(label: np.ndarray) -> torch.Tensor:
    seg = np.stack([label, np.full_like(label, 7)])  # channel 1: garbage previous-stage content to be replaced
    return torch.from_numpy(seg.astype(np.int16))


def test_transform_without_augmentation_writes_exact_boxes_on_the_axial_axis():
    label = np.zeros((6, 10, 12), np.int16)
    label[1:4, 2:5, 3:6] = 1
    label[2, 7, 9] = 1
    for axial_axis in (0, 2):
        volume = np.moveaxis(label, 0, axial_axis)
        out = AxialBoxChannelTransform(axial_axis, (1.0, 1.0, 1.0))(segmentation=_sample(volume))["segmentation"]
        assert set(torch.unique(out[1]).tolist()) <= {0, 1}
        np.testing.assert_array_equal(out[1].numpy(), axial_box_mask(volume, axial_axis))
        np.testing.assert_array_equal(out[0].numpy(), volume)  # target untouched


def test_transform_leaves_the_image_alone():
    label = np.zeros((4, 6, 6), np.int16)
    label[1, 2:4, 2:4] = 1
    image = torch.randn(1, 4, 6, 6)
    out = AxialBoxChannelTransform(0, (1.0, 1.0, 1.0))(image=image.clone(), segmentation=_sample(label))
    assert torch.equal(out["image"], image)


def test_transform_removes_a_dropped_lesion_from_the_target():
    label = np.zeros((4, 12, 12), np.int16)
    label[1:3, 1:3, 1:3] = 1
    label[1:3, 8:10, 8:10] = 1
    drop_all = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                               lesion_drop_probability=1.0)
    out = AxialBoxChannelTransform(0, (1.0, 1.0, 1.0), drop_all)(segmentation=_sample(label))["segmentation"]
    assert out[0].sum() == 0 and out[1].sum() == 0
    np.random.seed(0)
    half = BoxAugmentation(margin_mm=(0, 0), shift_mm=0, edge_jitter_mm=0, slice_drop_probability=0,
                           lesion_drop_probability=0.5)
    seen_one_lesion = False
    for _ in range(40):
        out = AxialBoxChannelTransform(0, (1.0, 1.0, 1.0), half)(segmentation=_sample(label))["segmentation"]
        target, boxes = out[0].numpy(), out[1].numpy()
        np.testing.assert_array_equal(boxes, axial_box_mask(target))  # boxes and target stay consistent
        seen_one_lesion |= target.sum() == label.sum() // 2
    assert seen_one_lesion


def test_axial_axis_after_transpose():
    assert axial_axis_after_transpose([0, 1, 2]) == 0
    assert axial_axis_after_transpose([2, 0, 1]) == 1
    assert axial_axis_after_transpose([1, 2, 0]) == 2


@pytest.mark.parametrize("axial_axis", [0, 2])
def test_teacher_box_channel_is_appended_to_the_image_from_the_full_resolution_label(axial_axis):
    from nnunet_kd.boxes.channel import AppendTeacherBoxChannelTransform

    label = torch.zeros((1, 8, 12, 10), dtype=torch.int16)
    label[0, 1:4, 2:6, 3:5] = 1  # two lesions
    label[0, 5:7, 7:11, 6:9] = 1
    label[0, 5, 7, 6] = 0  # not a block: its boxes cover more than the lesion on every axis
    image = torch.randn(2, 8, 12, 10)
    segmentation = [label, label[:, ::2, ::2, ::2]]  # as nnU-Net's deep-supervision downsampling leaves it
    out = AppendTeacherBoxChannelTransform(axial_axis)(image=image.clone(), segmentation=segmentation)
    assert out["image"].shape == (3, 8, 12, 10)
    assert torch.equal(out["image"][:2], image)
    expected = torch.from_numpy(axial_box_mask(label[0].numpy() > 0, axial_axis)).float()
    assert torch.equal(out["image"][2], expected) and expected.sum() > label.sum()
    assert out["segmentation"] is segmentation
