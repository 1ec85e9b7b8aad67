"""Per-sample multi-teacher weights and the fused teacher probabilities."""

from __future__ import annotations

import pytest
import torch

from nnunet_kd.distillation.teacher_weights import (
    compute_teacher_weights,
    fuse_teacher_probabilities,
    teacher_agreement,
)


def _binary(foreground: list[list[float]]) -> torch.Tensor:
    """(B, 2, N) probabilities from per-sample foreground probabilities."""
    fg = torch.tensor(foreground)[:, None]
    return torch.cat([1 - fg, fg], dim=1)


# sample 0: label [1, 1, 0, 0]; sample 1: no foreground
TARGET = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]]])
GOOD = _binary([[0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])  # Dice on sample 0: 2*1.8/(2.0+2) = 0.9
POOR = _binary([[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])  # Dice on sample 0: 2*1.0/(2.0+2) = 0.5


def test_agreement_is_the_soft_dice_with_the_label() -> None:
    agreement, has_foreground = teacher_agreement([GOOD, POOR], TARGET)
    assert torch.allclose(agreement[0], torch.tensor([0.9, 0.5]), atol=1e-6)
    assert has_foreground.tolist() == [True, False]


def test_adaptive_gives_the_better_teacher_more_weight() -> None:
    # w = (a + eps) / sum: (0.9 + 0.001) / 1.402 = 0.6426534, (0.5 + 0.001) / 1.402 = 0.3573466
    weights = compute_teacher_weights([GOOD, POOR], TARGET, scheme="adaptive", eps=1e-3)
    assert torch.allclose(weights[0], torch.tensor([0.6426534, 0.3573466]), atol=1e-6)
    weights_swapped = compute_teacher_weights([POOR, GOOD], TARGET)
    assert weights_swapped[0, 1] > weights_swapped[0, 0]
    assert torch.allclose(weights.sum(dim=1), torch.ones(2))
    assert bool((weights > 0).all())


def test_paper_literal_reproduces_the_printed_formula() -> None:
    # w_j = DiceLoss_j / sum_k DiceLoss_k with DiceLoss = 1 - Dice: 0.1 / 0.6 = 1/6, 0.5 / 0.6 = 5/6
    weights = compute_teacher_weights([GOOD, POOR], TARGET, scheme="paper_literal")
    assert torch.allclose(weights[0], torch.tensor([1 / 6, 5 / 6]), atol=1e-6)  # the worse teacher wins


def test_fallback_without_foreground_untrusted_or_without_target() -> None:
    uniform = compute_teacher_weights([GOOD, POOR], TARGET)
    assert torch.allclose(uniform[1], torch.tensor([0.5, 0.5]))  # sample 1 has no foreground
    fixed = compute_teacher_weights([GOOD, POOR], TARGET, fixed_weights=[3.0, 1.0])
    assert torch.allclose(fixed[1], torch.tensor([0.75, 0.25]))  # fixed weights, normalised
    assert torch.allclose(fixed[0], uniform[0])  # labelled sample still adaptive
    untrusted = compute_teacher_weights([GOOD, POOR], TARGET, trusted=torch.tensor([False, True]))
    assert torch.allclose(untrusted, torch.full((2, 2), 0.5))
    assert torch.allclose(compute_teacher_weights([GOOD, POOR], None), torch.full((2, 2), 0.5))
    # every teacher perfect: sum of Dice losses is 0, paper_literal falls back
    perfect = _binary([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    literal = compute_teacher_weights([perfect, perfect], TARGET, scheme="paper_literal")
    assert torch.allclose(literal, torch.full((2, 2), 0.5))


def test_uniform_and_fixed_schemes() -> None:
    assert torch.allclose(compute_teacher_weights([GOOD, POOR, GOOD], TARGET, scheme="uniform"),
                          torch.full((2, 3), 1 / 3))
    fixed = compute_teacher_weights([GOOD, POOR], TARGET, scheme="fixed", fixed_weights=[1.0, 3.0])
    assert torch.allclose(fixed, torch.tensor([[0.25, 0.75], [0.25, 0.75]]))


def test_agreement_averages_present_foreground_classes_only() -> None:
    # 3 classes, label [1, 1, 0, 0]: class 2 absent, so only class 1's Dice counts.
    # teacher puts 0.8 on class 1 at voxels 0-1, 0.2 on class 2 there: Dice_1 = 2*1.6/(1.6+2) = 0.8888889
    probs = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.8, 0.8, 0.0, 0.0], [0.2, 0.2, 0.0, 0.0]]])
    agreement, _ = teacher_agreement([probs], torch.tensor([[[1, 1, 0, 0]]]))
    assert agreement[0, 0].item() == pytest.approx(0.8888889, abs=1e-6)


def test_fuse_is_the_per_sample_weighted_average() -> None:
    # sample 0: 0.25 * GOOD + 0.75 * POOR at voxel 0 (fg): 0.25*0.9 + 0.75*0.5 = 0.6
    # sample 1: 1.0 * GOOD -> 0.1
    weights = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    fused = fuse_teacher_probabilities([GOOD, POOR], weights)
    assert fused[0, 1, 0].item() == pytest.approx(0.6)
    assert fused[1, 1, 0].item() == pytest.approx(0.1)
    assert torch.allclose(fused.sum(dim=1), torch.ones(2, 4))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        compute_teacher_weights([GOOD, POOR], TARGET, scheme="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_teacher_weights([GOOD, POOR], TARGET, scheme="fixed")
    with pytest.raises(ValueError):
        compute_teacher_weights([GOOD, POOR], TARGET, fixed_weights=[1.0, -1.0])
    with pytest.raises(ValueError):
        fuse_teacher_probabilities([GOOD, POOR], torch.ones(2, 3) / 3)
