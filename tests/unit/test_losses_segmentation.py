"""Paper 003's segmentation loss: Lovász-softmax and soft Dice against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from nnunet_kd.losses import DiceLovaszLoss, lovasz_softmax, soft_dice_loss

# three voxels (1D), labels [1, 0, 1]; class-1 probabilities [0.9, 0.4, 0.3]
TARGET = torch.tensor([[[1, 0, 1]]])
PROBS = torch.tensor([[[0.1, 0.6, 0.7], [0.9, 0.4, 0.3]]])


def test_lovasz_hand_computed() -> None:
    # class 1: errors |y - p| = [0.1, 0.4, 0.7]; sorted desc 0.7 (fg), 0.4 (bg), 0.1 (fg); |F| = 2
    #   Δ_J after i voxels: 1 - |F\M|/|F∪M| = 1 - 1/2, 1 - 1/3, 1 - 0/3 = 0.5, 0.6667, 1 -> g = 0.5, 0.1667, 0.3333
    #   loss = 0.7*0.5 + 0.4*0.1667 + 0.1*0.3333 = 0.35 + 0.0667 + 0.0333 = 0.45
    # class 0: errors [0.1, 0.4, 0.7]; sorted 0.7 (bg), 0.4 (fg), 0.1 (bg); |F| = 1
    #   Δ_J = 1 - 1/2, 1 - 0/2, 1 - 0/3 = 0.5, 1, 1 -> g = 0.5, 0.5, 0 -> loss = 0.35 + 0.2 + 0 = 0.55
    # mean over the two present classes: 0.5
    assert lovasz_softmax(PROBS, TARGET).item() == pytest.approx(0.5, abs=1e-6)


def test_lovasz_equals_jaccard_loss_on_hard_predictions() -> None:
    # the Lovász extension is tight on 0/1 vectors: labels [1,1,0,0], hard prediction of class 1 at [1,0,1,0]
    # class 1: IoU = 1/3; class 0: IoU = 1/3 -> mean Jaccard loss 2/3
    target = torch.tensor([[[1, 1, 0, 0]]])
    probs = torch.tensor([[[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]]])
    assert lovasz_softmax(probs, target).item() == pytest.approx(2 / 3, abs=1e-6)
    perfect = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]])
    assert lovasz_softmax(perfect, target).item() == pytest.approx(0.0, abs=1e-7)


def test_lovasz_skips_absent_classes() -> None:
    # only class 0 present; probabilities [0.8, 0.6] for class 0 -> errors [0.2, 0.4], all fg, |F| = 2
    # sorted 0.4, 0.2: Δ_J = 1 - 1/2, 1 - 0/2 -> g = 0.5, 0.5 -> 0.3 (class 1 absent, not averaged in)
    probs = torch.tensor([[[0.8, 0.6], [0.2, 0.4]]])
    assert lovasz_softmax(probs, torch.tensor([[[0, 0]]])).item() == pytest.approx(0.3, abs=1e-6)


def test_soft_dice_hand_computed() -> None:
    # foreground only, batch Dice: 2*(0.9 + 0.3) / ((0.9 + 0.4 + 0.3) + 2) = 2.4 / 3.6 -> loss 1/3
    assert soft_dice_loss(PROBS, TARGET).item() == pytest.approx(1 / 3, abs=1e-5)
    # with background: class 0 Dice = 2*0.6 / (1.4 + 1) = 0.5 -> loss 1 - (0.5 + 2/3)/2 = 0.4166667
    assert soft_dice_loss(PROBS, TARGET, include_background=True).item() == pytest.approx(0.4166667, abs=1e-5)


def test_per_sample_dice_differs_from_batch_dice() -> None:
    # sample 0 as above (Dice 2/3); sample 1: no foreground, class-1 probabilities 0.5 everywhere ->
    #   per-sample Dice (1e-5) / (1.5 + 1e-5) ~ 0 -> mean loss 1 - (2/3 + 0)/2 = 2/3
    #   batch Dice 2.4 / (1.6 + 1.5 + 2) = 0.4705882 -> loss 0.5294118
    probs = torch.cat([PROBS, torch.full((1, 2, 3), 0.5)])
    target = torch.cat([TARGET, torch.zeros_like(TARGET)])
    assert soft_dice_loss(probs, target, batch_dice=False).item() == pytest.approx(2 / 3, abs=1e-4)
    assert soft_dice_loss(probs, target, batch_dice=True).item() == pytest.approx(0.5294118, abs=1e-5)


def test_dice_lovasz_weights_and_nnunet_inputs() -> None:
    # logits = log(probs) reproduce PROBS after softmax; 0.2 * 1/3 + 0.3 * 0.5 = 0.0666667 + 0.15 = 0.2166667
    logits = torch.log(PROBS).requires_grad_(True)
    loss = DiceLovaszLoss()(logits, TARGET.float())  # nnU-Net passes float label maps
    assert loss.item() == pytest.approx(0.2166667, abs=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError):
        lovasz_softmax(PROBS, torch.tensor([[[0, 2, 1]]]))


def test_ignored_voxels_count_in_neither_term() -> None:
    # a fourth voxel with nnU-Net's ignore label (2) and a confidently wrong prediction (class 1 at 0.95): every
    # hand-computed value above is unchanged (Lovász 0.5, Dice loss 1/3, 0.2 * 1/3 + 0.3 * 0.5), and the ignored
    # voxel's logits get no gradient
    target = torch.tensor([[[1, 0, 1, 2]]])
    probs = torch.tensor([[[0.1, 0.6, 0.7, 0.05], [0.9, 0.4, 0.3, 0.95]]])
    mask = target != 2
    labels = torch.where(mask, target, 0)
    assert lovasz_softmax(probs, labels, mask).item() == pytest.approx(0.5, abs=1e-6)
    assert soft_dice_loss(probs, labels, mask=mask).item() == pytest.approx(1 / 3, abs=1e-5)
    logits = torch.log(probs).requires_grad_(True)
    loss = DiceLovaszLoss(ignore_label=2)(logits, target.float())
    assert loss.item() == pytest.approx(0.2166667, abs=1e-5)
    loss.backward()
    assert logits.grad[..., 3].abs().max() == 0 and logits.grad[..., :3].abs().sum() > 0
    with pytest.raises(ValueError):  # without the ignore label, the value 2 is a class the logits do not have
        DiceLovaszLoss()(logits, target.float())


def test_a_batch_whose_voxels_are_all_ignored_gives_zero_loss() -> None:
    probs = torch.tensor([[[0.1, 0.6], [0.9, 0.4]]])
    target = torch.tensor([[[2, 2]]])
    mask = target != 2
    assert lovasz_softmax(probs, torch.where(mask, target, 0), mask).item() == 0.0
