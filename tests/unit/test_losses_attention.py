"""Attention transfer: attention maps, hand-computed L1/L2 distances, resizing, gradients, sample weights."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_kd.losses import AttentionTransferLoss, attention_map


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Student (1, 2, 1, 2) with both channels [1, 0]; teacher (1, 1, 1, 2) = [1, 1]."""
    student = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]]])
    teacher = torch.tensor([[[[1.0, 1.0]]]])
    return student, teacher


def test_attention_map_sums_powers_over_channels() -> None:
    # channels [2, 0] and [0, -1]: p=2 -> [4, 1]; p=1 -> [2, 1]
    features = torch.tensor([[[[2.0, 0.0]], [[0.0, -1.0]]]])
    assert torch.equal(attention_map(features, p=2.0), torch.tensor([[[[4.0, 1.0]]]]))
    assert torch.equal(attention_map(features, p=1.0), torch.tensor([[[[2.0, 1.0]]]]))


def test_hand_computed_l1_and_l2() -> None:
    # student A = [2, 0] -> a_s = [1, 0]; teacher A = [1, 1] -> a_t = [1/sqrt2, 1/sqrt2]
    # d = [1 - 0.7071068, -0.7071068]; L1 = 0.2928932 + 0.7071068 = 1.0, over sqrt(V) = sqrt(2): 0.7071068;
    # L2 = sqrt(0.0857864 + 0.5) = sqrt(2 - sqrt2)
    student, teacher = _pair()
    assert AttentionTransferLoss(distance="l1")(student, teacher).item() == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    expected_l2 = math.sqrt(2 - math.sqrt(2))  # 0.7653669
    assert AttentionTransferLoss(distance="l2")(student, teacher).item() == pytest.approx(expected_l2, abs=1e-6)


def test_neither_distance_grows_with_the_patch_size() -> None:
    # tiling the pair 4x along the last axis shrinks the normalised maps by 1/sqrt(4): the raw L1 distance doubles
    # (1.0 -> 2.0), and so does sqrt(V) (sqrt2 -> sqrt8); the L2 distance stays sqrt(2 - sqrt2) = 0.7653669
    student, teacher = (x.repeat(1, 1, 1, 4) for x in _pair())
    assert AttentionTransferLoss(distance="l1")(student, teacher).item() == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert AttentionTransferLoss(distance="l2")(student, teacher).item() == pytest.approx(0.7653669, abs=1e-6)


def test_l1_is_the_same_for_a_pattern_on_a_small_and_a_realistic_patch() -> None:
    # one per-voxel pattern on 8x16x16 and repeated 10x per axis on nnU-Net's 80x160x160 CT patch; without the
    # size normalisation the L1 distance was 5.4 and 174 (about sqrt(1000) apart)
    generator = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(1, 2, 8, 16, 16, generator=generator), torch.randn(1, 3, 8, 16, 16,
                                                                                     generator=generator)
    small = AttentionTransferLoss(distance="l1")(student, teacher).item()
    def grow(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(10, 2).repeat_interleave(10, 3).repeat_interleave(10, 4)

    large = AttentionTransferLoss(distance="l1")(grow(student), grow(teacher)).item()
    assert 0.05 < small < 2.0
    assert large == pytest.approx(small, rel=1e-4)


def test_zero_for_identical_or_rescaled_features() -> None:
    features = torch.randn(2, 4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    loss = AttentionTransferLoss()
    assert loss(features, features).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(3 * features, features).item() == pytest.approx(0.0, abs=1e-5)  # maps are L2-normalised


def test_student_map_is_resized_to_the_teacher() -> None:
    # uniform maps stay uniform under trilinear resizing -> identical normalised maps, loss 0
    student, teacher = torch.ones(1, 2, 2, 2, 2), torch.full((1, 5, 4, 4, 4), 3.0)
    assert AttentionTransferLoss()(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # a non-uniform student now differs from the uniform teacher
    student[0, 0, 0, 0, 0] = 5.0
    assert AttentionTransferLoss()(student, teacher).item() > 0.1


def test_gradients_reach_only_the_student() -> None:
    g = torch.Generator().manual_seed(1)
    student = torch.randn(2, 3, 2, 2, 2, generator=g, requires_grad=True)
    teacher = torch.randn(2, 5, 2, 2, 2, generator=g, requires_grad=True)
    AttentionTransferLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_sample_weights_scale_each_sample_before_the_batch_mean() -> None:
    # sample 0: the hand-computed case, d = 1/sqrt2; sample 1: identical maps (0).
    # no weights: (d + 0) / 2; weights [0.5, 1]: (0.5 d + 1 * 0) / 2
    student, teacher = _pair()
    students = torch.cat([student, torch.ones(1, 2, 1, 2)])
    teachers = torch.cat([teacher, torch.ones(1, 1, 1, 2)])
    loss = AttentionTransferLoss()
    d = 1 / math.sqrt(2)
    assert loss(students, teachers).item() == pytest.approx(d / 2, abs=1e-6)
    assert loss(students, teachers, sample_weights=torch.tensor([0.5, 1.0])).item() == pytest.approx(d / 4, abs=1e-6)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        AttentionTransferLoss(distance="l3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AttentionTransferLoss()(torch.ones(2, 1, 2, 2), torch.ones(1, 1, 2, 2))
