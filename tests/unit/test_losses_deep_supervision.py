"""DeepSupervisionLoss and the pooling of full-resolution probabilities to deep-supervision scales."""

from __future__ import annotations

import pytest
import torch

from nnunet_kd.losses import (
    DeepSupervisionLoss,
    SoftenedKLDivergence,
    pool_probabilities_to_scales,
    pool_probabilities_to_shapes,
    soften,
)


class _Recorder(torch.nn.Module):
    """Returns the mean of |s - t| and records the extra keyword per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[object] = []

    def forward(self, s: torch.Tensor, t: torch.Tensor, extra: object = None) -> torch.Tensor:
        self.calls.append(extra)
        return (s - t).abs().mean()


def test_weighted_sum_skips_zero_weights() -> None:
    # per-scale losses |s - t|: 2, 4, 8 -> 0.5*2 + 0.25*4 + 0*8 = 2.0; the zero-weight scale is never evaluated
    inner = _Recorder()
    loss = DeepSupervisionLoss(inner, [0.5, 0.25, 0.0])
    outputs = [torch.full((1, 1, 4), 2.0), torch.full((1, 1, 2), 4.0), torch.full((1, 1, 1), 8.0)]
    targets = [torch.zeros(1, 1, 4), torch.zeros(1, 1, 2), torch.zeros(1, 1, 1)]
    assert loss(outputs, targets, extra=["a", "b", "c"]).item() == pytest.approx(2.0)
    assert inner.calls == ["a", "b"]  # list kwargs are taken per scale, scale 3 skipped


def test_scalar_kwargs_are_broadcast_and_lengths_checked() -> None:
    inner = _Recorder()
    loss = DeepSupervisionLoss(inner, [1.0, 1.0])
    loss([torch.zeros(1, 1, 2)] * 2, [torch.zeros(1, 1, 2)] * 2, extra="same")
    assert inner.calls == ["same", "same"]
    with pytest.raises(ValueError):
        loss([torch.zeros(1, 1, 2)] * 3, [torch.zeros(1, 1, 2)] * 3)
    with pytest.raises(ValueError):
        loss([torch.zeros(1, 1, 2)] * 2, [torch.zeros(1, 1, 2)] * 2, extra=["only one"])


def test_pool_to_nnunet_scales_hand_values() -> None:
    # class 1 is certain at voxel (0,0,0) of a 4^3 patch and absent elsewhere.
    # scale 1/2: the 2^3 block at the corner averages 1 of 8 voxels -> 0.125; scale 1/4: 1 of 64 -> 0.015625;
    # anisotropic [1, 1/2, 1/2]: 1 of 4 voxels -> 0.25
    probs = torch.zeros(1, 2, 4, 4, 4)
    probs[:, 0] = 1.0
    probs[0, 0, 0, 0, 0], probs[0, 1, 0, 0, 0] = 0.0, 1.0
    pooled = pool_probabilities_to_scales(probs, [[1, 1, 1], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [1, 0.5, 0.5]])
    assert [tuple(p.shape[2:]) for p in pooled] == [(4, 4, 4), (2, 2, 2), (1, 1, 1), (4, 2, 2)]
    assert pooled[1][0, 1, 0, 0, 0].item() == pytest.approx(0.125)
    assert pooled[1][0, 1, 1, 1, 1].item() == 0.0
    assert pooled[2][0, 1, 0, 0, 0].item() == pytest.approx(0.015625)
    assert pooled[3][0, 1, 0, 0, 0].item() == pytest.approx(0.25)
    for p in pooled:
        assert torch.allclose(p.sum(dim=1), torch.ones_like(p[:, 0]))


def test_pooled_random_probabilities_still_sum_to_one() -> None:
    probs = soften(torch.randn(2, 3, 6, 10, 8, generator=torch.Generator().manual_seed(0)), 2.0)
    for p in pool_probabilities_to_shapes(probs, [(3, 5, 4), (2, 3, 3)]):  # second shape is not a divisor
        assert torch.allclose(p.sum(dim=1), torch.ones_like(p[:, 0]), atol=1e-6)
    with pytest.raises(ValueError):
        pool_probabilities_to_shapes(probs, [(12, 10, 8)])


def test_kl_across_scales_with_pooled_teacher() -> None:
    # student equal to the teacher at full res -> 0 there (its 0-probability classes get logit ln 1e-30).
    # Low res (T=1), uniform student: corner block, pooled teacher [7/8, 1/8]:
    #   KL = 7/8 ln(7/4) + 1/8 ln(1/4) = 0.4896717 - 0.1732868 = 0.3163849;
    # the other 7 blocks, teacher [1, 0]: KL = ln 2 = 0.6931472 each.
    teacher = torch.zeros(1, 2, 4, 4, 4)
    teacher[:, 0] = 1.0
    teacher[0, 0, 0, 0, 0], teacher[0, 1, 0, 0, 0] = 0.0, 1.0
    targets = pool_probabilities_to_scales(teacher, [[1, 1, 1], [0.5, 0.5, 0.5]])
    student_full = torch.log(teacher.clamp_min(1e-30))
    student_low = torch.zeros(1, 2, 2, 2, 2)
    loss = DeepSupervisionLoss(SoftenedKLDivergence(1.0), [0.5, 0.5])([student_full, student_low], targets)
    # low-res mean KL = (0.3163849 + 7 ln 2) / 8 = (0.3163849 + 4.8520303) / 8 = 0.6460519; times weight 0.5
    assert loss.item() == pytest.approx(0.5 * 0.6460519, abs=1e-5)
