"""nnU-Net's ignore label in the plugin's trainers' helpers: teacher agreement and boxes skip ignored voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_kd.boxes.channel import AppendTeacherBoxChannelTransform, AxialBoxChannelTransform, box_channel_of_labels
from nnunet_kd.distillation.teacher_weights import compute_teacher_weights, teacher_agreement

IGNORE = 2  # labels {background: 0, tumour: 1, ignore: 2}


def probabilities(tumour: np.ndarray) -> torch.Tensor:
    """(1, 2, *spatial) probabilities from a tumour-probability map."""
    p = torch.from_numpy(tumour.astype(np.float32))[None]
    return torch.stack([1 - p, p], dim=1)


def test_agreement_leaves_the_ignored_voxels_out():
    target = np.zeros((1, 4, 4), np.int64)
    target[0, 0, :2] = 1        # 2 tumour voxels
    target[0, 2:, :] = IGNORE   # 8 ignored voxels
    a = np.zeros((1, 4, 4))
    a[0, 0, :2] = 1.0           # right on the labelled voxels
    a[0, 2:, :] = 1.0           # and "tumour" everywhere in the ignored part
    b = np.zeros((1, 4, 4))
    b[0, 0, :1] = 1.0           # finds one of the two tumour voxels, nothing in the ignored part
    labels = torch.from_numpy(target)[None]
    agreement, present = teacher_agreement([probabilities(a), probabilities(b)], labels, IGNORE)
    # A: 2·2 / (2 + 2) = 1 (its 8 voxels in the ignored part do not count); B: 2·1 / (1 + 2) = 2/3
    assert agreement[0].tolist() == pytest.approx([1.0, 2 / 3]) and bool(present[0])
    weights = compute_teacher_weights([probabilities(a), probabilities(b)], labels, "adaptive", eps=0.0,
                                      ignore_label=IGNORE)
    assert weights[0].tolist() == pytest.approx([0.6, 0.4])  # 1 : 2/3
    with pytest.raises(ValueError, match="an ignore label must be masked out first"):  # without knowing the ignore label
        teacher_agreement([probabilities(a)], labels)


def test_a_sample_with_only_ignored_voxels_gets_the_fallback_weights():
    labels = torch.full((1, 1, 1, 4, 4), IGNORE)
    ones = probabilities(np.ones((1, 4, 4)))
    weights = compute_teacher_weights([ones, probabilities(np.zeros((1, 4, 4)))], labels, "adaptive",
                                      fixed_weights=[3.0, 1.0], ignore_label=IGNORE)
    assert weights[0].tolist() == pytest.approx([0.75, 0.25])


def label_volume() -> np.ndarray:
    """(z, y, x) = (3, 8, 8): a tumour in slice 1, an ignored region in slices 0-2 elsewhere."""
    label = np.zeros((3, 8, 8), np.int16)
    label[1, 1:3, 1:3] = 1
    label[:, 5:8, 4:8] = IGNORE
    return label


def expected_boxes() -> np.ndarray:
    boxes = np.zeros((3, 8, 8), np.int16)
    boxes[1, 1:3, 1:3] = 1
    return boxes


def test_boxes_of_a_batch_come_from_tumour_voxels_only():
    labels = torch.from_numpy(label_volume())[None, None]
    assert np.array_equal(box_channel_of_labels(labels, 0, IGNORE)[0, 0].numpy(), expected_boxes())


def test_teacher_box_channel_and_box_guided_channel_skip_ignored_voxels():
    label = torch.from_numpy(label_volume())
    sample = {"image": torch.zeros((1, 3, 8, 8)), "segmentation": label[None].clone()}
    out = AppendTeacherBoxChannelTransform(axial_axis=0, ignore_label=IGNORE)(**sample)
    assert np.array_equal(out["image"][1].numpy(), expected_boxes())
    segmentation = torch.stack([label.clone(), torch.zeros_like(label)])
    transform = AxialBoxChannelTransform(axial_axis=0, spacing=(3.0, 1.0, 1.0), ignore_label=IGNORE)
    result = transform(segmentation=segmentation, image=torch.zeros((1, 3, 8, 8)))
    assert np.array_equal(result["segmentation"][1].numpy(), expected_boxes())
    assert np.array_equal(result["segmentation"][0].numpy(), label_volume())  # the target keeps its ignore label
