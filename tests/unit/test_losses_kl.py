"""SoftenedKLDivergence and soften: hand-computed values, reduction, T², gradients, dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_kd.losses import SoftenedKLDivergence, soften


def _one_voxel(student: list[float], target: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, 1) tensors from per-class lists."""
    return torch.tensor(student).reshape(1, -1, 1), torch.tensor(target).reshape(1, -1, 1)


def test_soften_divides_logits_by_temperature() -> None:
    # logits [2 ln 3, 0] at T=2 -> [ln 3, 0] -> softmax [3/4, 1/4]
    probs = soften(torch.tensor([[2 * math.log(3.0), 0.0]]), temperature=2.0)
    assert torch.allclose(probs, torch.tensor([[0.75, 0.25]]))
    assert probs.dtype == torch.float32


def test_hand_computed_value_with_temperature() -> None:
    # student at T=2: q = [3/4, 1/4]; target p = [1/2, 1/2]
    # KL(p||q) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(4/3) = 0.1438410; times T^2 = 4 -> 0.5753641
    student, target = _one_voxel([2 * math.log(3.0), 0.0], [0.5, 0.5])
    loss = SoftenedKLDivergence(temperature=2.0)(student, target)
    assert loss.item() == pytest.approx(0.5753641, abs=1e-6)


def test_sums_over_classes_and_averages_over_voxels() -> None:
    # C=3, uniform student (q = 1/3), one-hot target p = [1, 0, 0] -> KL = ln 3 = 1.0986123 per voxel
    # (reduction='mean' would give ln3/3). Second voxel: student equals target -> 0. Mean over 2 voxels: ln3/2.
    student = torch.tensor([[[0.0, 0.0], [0.0, -100.0], [0.0, -100.0]]])  # (1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    loss = SoftenedKLDivergence(temperature=1.0)(student, target)
    assert loss.item() == pytest.approx(math.log(3.0) / 2, abs=1e-5)


def test_mask_gives_masked_mean() -> None:
    # voxel 0: the 0.5753641 case above (T=2); voxel 1: identical distributions -> 0.
    # unmasked: (0.5753641 + 0) / 2 = 0.2876821; mask on voxel 0 only: 0.5753641; empty mask: 0
    student = torch.tensor([[[2 * math.log(3.0), 2 * math.log(3.0)], [0.0, 0.0]]])  # (1, 2, 2)
    target = torch.tensor([[[0.5, 0.75], [0.5, 0.25]]])
    kl = SoftenedKLDivergence(temperature=2.0)
    assert kl(student, target).item() == pytest.approx(0.2876821, abs=1e-6)
    assert kl(student, target, mask=torch.tensor([[[1.0, 0.0]]])).item() == pytest.approx(0.5753641, abs=1e-6)
    assert kl(student, target, mask=torch.zeros(1, 1, 2)).item() == 0.0


def test_zero_for_identical_logits() -> None:
    logits = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
    for temperature in (1.0, 4.0):
        loss = SoftenedKLDivergence(temperature)(logits, soften(logits, temperature))
        assert abs(loss.item()) < 1e-5


def test_independent_of_patch_size() -> None:
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(2, 3, 2, 2, 2, generator=g), torch.randn(2, 3, 2, 2, 2, generator=g)
    kl = SoftenedKLDivergence(temperature=3.0)
    small = kl(student, soften(teacher, 3.0))
    big = kl(student.repeat(1, 1, 3, 2, 4), soften(teacher.repeat(1, 1, 3, 2, 4), 3.0))  # same voxels, 24x more
    assert big.item() == pytest.approx(small.item(), rel=1e-5)
    assert small.item() > 0.01


def test_temperature_squared_factor() -> None:
    # uniform student logits give q = 1/C at every T, so only the T^2 factor changes: ratio 9 for T=3 vs T=1
    student, target = _one_voxel([0.0, 0.0], [0.9, 0.1])
    one = SoftenedKLDivergence(1.0)(student, target)
    three = SoftenedKLDivergence(3.0)(student, target)
    assert three.item() == pytest.approx(9 * one.item(), rel=1e-6)
    assert one.item() > 0


def test_gradients_reach_only_the_student() -> None:
    # d/dz (T^2 * KL) = T^2 * (q - p) / T = T (q - p) per voxel; T=2, q=[3/4,1/4], p=[1/2,1/2] -> [0.5, -0.5]
    student = torch.tensor([[[2 * math.log(3.0)], [0.0]]], requires_grad=True)
    teacher_logits = torch.zeros(1, 2, 1, requires_grad=True)
    SoftenedKLDivergence(2.0)(student, soften(teacher_logits, 2.0)).backward()
    assert torch.allclose(student.grad, torch.tensor([[[0.5], [-0.5]]]), atol=1e-6)
    assert teacher_logits.grad is None


def test_fp16_inputs_give_the_fp32_result() -> None:
    g = torch.Generator().manual_seed(2)
    student = (torch.randn(1, 3, 4, 4, generator=g) * 4).half()
    target = soften(torch.randn(1, 3, 4, 4, generator=g), 2.0).half()
    kl = SoftenedKLDivergence(2.0)
    loss16 = kl(student, target)
    assert loss16.dtype == torch.float32
    assert loss16.item() == kl(student.float(), target.float()).item()


def test_rejects_bad_shapes_and_temperature() -> None:
    with pytest.raises(ValueError):
        SoftenedKLDivergence(2.0)(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError):
        SoftenedKLDivergence(2.0)(torch.zeros(1, 2, 3), torch.full((1, 2, 3), 0.5), mask=torch.ones(1, 3))
    with pytest.raises(ValueError):
        SoftenedKLDivergence(0.0)
