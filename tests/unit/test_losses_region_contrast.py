"""Region contrast: hand-computed cosines, skipping samples without foreground, label resizing, weights."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_kd.losses import RegionContrastLoss, region_contrast

LABEL = torch.tensor([[[[0, 0, 1, 1]]]])  # (1, 1, 1, 4): background voxels 0-1, foreground 2-3


def test_region_contrast_is_the_cosine_of_region_means() -> None:
    # channels [1,1,0,0] and [0,0,1,1]: mu0 = [1, 0], mu1 = [0, 1] -> cos 0
    # channels [1,1,1,1] and [0,0,1,1]: mu0 = [1, 0], mu1 = [1, 1] -> cos 1/sqrt2
    orthogonal = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]])
    diagonal = torch.tensor([[[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]]])
    rc, valid = region_contrast(torch.cat([orthogonal, diagonal]), torch.cat([LABEL, LABEL]) > 0)
    assert torch.allclose(rc, torch.tensor([0.0, 1 / math.sqrt(2)]), atol=1e-6)
    assert valid.tolist() == [True, True]


def test_hand_computed_loss() -> None:
    # student rc = 1/sqrt2 (diagonal case above); teacher: one channel [1,1,1,1] -> mu0 = mu1 = [1] -> rc = 1
    # loss = |0.7071068 - 1| = 0.2928932
    student = torch.tensor([[[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]]])
    teacher = torch.ones(1, 1, 1, 4)
    assert RegionContrastLoss()(student, teacher, LABEL).item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)


def test_samples_without_foreground_contribute_nothing() -> None:
    # sample 0: student rc 0 (orthogonal), teacher rc 1 -> 1.0; sample 1 has no foreground -> skipped, so the
    # mean stays 1.0 (not 0.5)
    student = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]]).repeat(2, 1, 1, 1)
    teacher = torch.ones(2, 1, 1, 4)
    labels = torch.cat([LABEL, torch.zeros_like(LABEL)])
    assert RegionContrastLoss()(student, teacher, labels).item() == pytest.approx(1.0, abs=1e-6)


def test_zero_when_no_sample_counts_and_backward_works() -> None:
    student = torch.randn(2, 3, 2, 2, 2, requires_grad=True)
    loss = RegionContrastLoss()(student, torch.randn(2, 4, 2, 2, 2), torch.zeros(2, 1, 2, 2, 2))
    assert loss.item() == 0.0
    loss.backward()
    assert student.grad is not None and torch.all(student.grad == 0)


def test_label_is_resized_to_each_feature() -> None:
    # full-res label (1, 1, 2, 8): columns 4-7 foreground; nearest-exact to (1, 4) -> [0, 0, 1, 1] for the student,
    # to (2, 8) unchanged for the teacher. Student orthogonal (rc 0), teacher one constant channel (rc 1) -> 1.0
    label = torch.tensor([[[[0, 0, 0, 0, 1, 1, 1, 1]] * 2]])
    student = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0]]]])
    teacher = torch.ones(1, 2, 2, 8)
    assert RegionContrastLoss()(student, teacher, label).item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_reach_only_the_student_and_weights_apply() -> None:
    student = torch.tensor([[[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]]], requires_grad=True)
    teacher = torch.ones(1, 1, 1, 4, requires_grad=True)
    loss = RegionContrastLoss()(student, teacher, LABEL, sample_weights=torch.tensor([0.5]))
    assert loss.item() == pytest.approx(0.5 * (1 - 1 / math.sqrt(2)), abs=1e-6)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
