"""FeatureAlignmentLoss: adapter presence, hand-computed MSE/cosine, resizing, gradients, sample weights."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_kd.losses import FeatureAlignmentLoss


def test_adapter_present_iff_channels_differ() -> None:
    same = FeatureAlignmentLoss(4, 4)
    assert not same.has_adapter and len(list(same.parameters())) == 0
    different = FeatureAlignmentLoss(4, 8)
    assert different.has_adapter
    assert isinstance(different.adapter, torch.nn.Conv3d) and different.adapter.kernel_size == (1, 1, 1)
    assert sum(p.numel() for p in different.parameters()) == 8 * 4 + 8  # weights + bias
    assert isinstance(FeatureAlignmentLoss(2, 3, spatial_dims=2).adapter, torch.nn.Conv2d)


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_zero_for_identical_features(kind: str) -> None:
    features = torch.randn(2, 4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    assert FeatureAlignmentLoss(4, 4, kind=kind)(features, features).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_mse_and_cosine() -> None:
    # 1D, identity adapter. MSE: student [1, 2] vs teacher [0, 0] (1 channel) -> (1 + 4) / 2 = 2.5
    mse = FeatureAlignmentLoss(1, 1, kind="mse", spatial_dims=1)
    assert mse(torch.tensor([[[1.0, 2.0]]]), torch.zeros(1, 1, 2)).item() == pytest.approx(2.5)
    # cosine over channels at one voxel: s = [1, 0], t = [1, 1] -> 1 - 1/sqrt2 = 0.2928932
    cosine = FeatureAlignmentLoss(2, 2, kind="cosine", spatial_dims=1)
    loss = cosine(torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[1.0], [1.0]]]))
    assert loss.item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)


def test_student_is_resized_to_the_teacher() -> None:
    # constant maps stay constant under trilinear upsampling: equal constants -> 0, else the squared difference
    loss = FeatureAlignmentLoss(2, 2)
    assert loss(torch.full((1, 2, 2, 2, 2), 3.0), torch.full((1, 2, 4, 4, 4), 3.0)).item() == pytest.approx(0.0)
    assert loss(torch.full((1, 2, 2, 2, 2), 3.0), torch.full((1, 2, 4, 4, 4), 1.0)).item() == pytest.approx(4.0)


def test_gradients_reach_adapter_and_student_never_teacher() -> None:
    g = torch.Generator().manual_seed(1)
    loss_fn = FeatureAlignmentLoss(3, 6, kind="cosine")
    student = torch.randn(2, 3, 2, 2, 2, generator=g, requires_grad=True)
    teacher = torch.randn(2, 6, 2, 2, 2, generator=g, requires_grad=True)
    loss_fn(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert loss_fn.adapter.weight.grad is not None and loss_fn.adapter.weight.grad.abs().sum() > 0
    assert teacher.grad is None


def test_sample_weights() -> None:
    # per-sample MSE: sample 0 -> 1.0, sample 1 -> 4.0; weights [1, 0.5] -> (1 + 2) / 2 = 1.5 (unweighted 2.5)
    student = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]]])
    loss = FeatureAlignmentLoss(1, 1, spatial_dims=1)
    assert loss(student, torch.zeros(2, 1, 2)).item() == pytest.approx(2.5)
    assert loss(student, torch.zeros(2, 1, 2), sample_weights=torch.tensor([1.0, 0.5])).item() == pytest.approx(1.5)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        FeatureAlignmentLoss(2, 2, kind="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FeatureAlignmentLoss(2, 3)(torch.ones(1, 4, 2, 2, 2), torch.ones(1, 3, 2, 2, 2))  # wrong student channels
    with pytest.raises(ValueError):
        FeatureAlignmentLoss(2, 2)(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2))  # 2D tensors, 3D loss


def test_computed_in_fp32_under_autocast() -> None:
    # autocast would run the adapter convolution in bfloat16; the loss disables it and matches the fp32 value
    g = torch.Generator().manual_seed(2)
    loss_fn = FeatureAlignmentLoss(3, 5)
    student, teacher = torch.randn(1, 3, 3, 3, 3, generator=g), torch.randn(1, 5, 3, 3, 3, generator=g)
    reference = loss_fn(student, teacher)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        autocast = loss_fn(student, teacher.bfloat16())
    assert autocast.dtype == torch.float32
    assert autocast.item() == pytest.approx(loss_fn(student, teacher.bfloat16().float()).item(), rel=1e-6)
    assert autocast.item() == pytest.approx(reference.item(), rel=1e-2)
