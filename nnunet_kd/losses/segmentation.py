"""Paper 003's segmentation loss ``Seg = α1·Dice + α2·Lovász`` (eq. 5, α1 = 0.2, α2 = 0.3).

Inputs follow nnU-Net: logits ``(B, C, *spatial)`` and integer labels ``(B, 1, *spatial)`` (float dtype allowed).
Lovász-softmax follows Berman, Rannen & Blaschko (CVPR 2018): per class ``c``, the errors
``e_i = |y_i,c − p_i,c|`` are sorted in decreasing order and the loss is the Lovász extension of the Jaccard loss,
``Σ_i e_(i) · g_i`` with ``g_i = Δ_J(first i voxels) − Δ_J(first i−1 voxels)`` and
``Δ_J(M) = 1 − |F \\ M| / |F ∪ M|`` (``F`` the class's reference voxels, ``M`` the voxels counted as mispredicted),
averaged over the classes present in the reference (the paper's ``classes='present'``), computed over the whole
batch at once (``per_image=False``), all classes including background.

nnU-Net's ignore label: voxels carrying it are left out of both terms, as in nnU-Net's own Dice + CE (its Dice
sums run over the other voxels only, its CE skips them) and in Berman et al.'s reference code (its ``ignore``
drops those voxels before the errors are sorted). They neither count as reference nor as prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nnunet_kd.losses.dice import one_hot_labels, soft_dice_per_sample, split_ignore_label


def _lovasz_jaccard_gradient(sorted_reference: Tensor) -> Tensor:
    """``g_i`` for a reference vector ``(N,)`` (0/1) sorted by decreasing error."""
    total = sorted_reference.sum()
    missed_foreground = total - sorted_reference.cumsum(0)  # |F \ M_i|
    union = total + (1.0 - sorted_reference).cumsum(0)  # |F ∪ M_i|
    jaccard_loss = 1.0 - missed_foreground / union  # Δ_J(M_i), i = 1..N
    return torch.cat([jaccard_loss[:1], jaccard_loss[1:] - jaccard_loss[:-1]])


def lovasz_softmax(probs: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Lovász-softmax loss.

    Args:
        probs: ``(B, C, *spatial)`` softmax probabilities.
        target: ``(B, 1, *spatial)`` integer labels.
        mask: ``(B, 1, *spatial)`` bool, the voxels that count (``None``: all); the others are dropped before sorting.

    Returns:
        Scalar fp32, the mean over classes present in ``target`` (0 if none counts).
    """
    num_classes = probs.shape[1]
    p = torch.movedim(probs.float(), 1, -1).reshape(-1, num_classes)  # (N, C)
    reference = torch.movedim(one_hot_labels(target, num_classes), 1, -1).reshape(-1, num_classes)
    if mask is not None:
        counted = mask.reshape(-1)
        p, reference = p[counted], reference[counted]
    losses = []
    for c in range(num_classes):
        if reference[:, c].sum() == 0:
            continue
        errors = (reference[:, c] - p[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_jaccard_gradient(reference[order, c])))
    if not losses:
        return probs.float().sum() * 0.0
    return torch.stack(losses).mean()


def soft_dice_loss(probs: Tensor, target: Tensor, include_background: bool = False, batch_dice: bool = True,
                   smooth: float = 1e-5, mask: Tensor | None = None) -> Tensor:
    """``1 − mean_c Dice_c``: soft Dice (the multi-teacher paper's eq. 8 on probabilities) averaged over classes.

    Args:
        probs: ``(B, C, *spatial)`` softmax probabilities.
        target: ``(B, 1, *spatial)`` integer labels.
        include_background: also average class 0 (nnU-Net's default leaves it out).
        batch_dice: pool the whole batch into one Dice per class (nnU-Net's 3d_fullres default, robust to patches
            without tumour); otherwise one Dice per sample and class, averaged.
        smooth: added to numerator and denominator (an empty class predicted empty scores 1).
        mask: ``(B, 1, *spatial)`` bool, the voxels that count (``None``: all); the others add nothing to the sums.

    Returns:
        Scalar fp32.
    """
    one_hot = one_hot_labels(target, probs.shape[1])
    if mask is not None:
        probs, one_hot = probs * mask, one_hot * mask
    if batch_dice:
        probs, one_hot = (torch.movedim(x, 0, 1).reshape(1, x.shape[1], -1) for x in (probs, one_hot))
    dice = soft_dice_per_sample(probs, one_hot, smooth)
    if not include_background and dice.shape[1] > 1:
        dice = dice[:, 1:]
    return 1.0 - dice.mean()


class DiceLovaszLoss(nn.Module):
    """``dice_weight · soft_dice_loss + lovasz_weight · lovasz_softmax`` on ``softmax(logits)``, in fp32."""

    def __init__(self, dice_weight: float = 0.2, lovasz_weight: float = 0.3, include_background: bool = False,
                 batch_dice: bool = True, smooth: float = 1e-5, ignore_label: int | None = None) -> None:
        """Args: dice_weight / lovasz_weight: α1, α2 of eq. (5); ignore_label: nnU-Net's ignore label (its voxels
        count in neither term), or None. The rest: see ``soft_dice_loss``."""
        super().__init__()
        self.ignore_label = ignore_label
        self.dice_weight = float(dice_weight)
        self.lovasz_weight = float(lovasz_weight)
        self.include_background = include_background
        self.batch_dice = batch_dice
        self.smooth = float(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Args: logits ``(B, C, *spatial)``; target ``(B, 1, *spatial)`` labels. Returns: scalar fp32."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = torch.softmax(logits.float(), dim=1)
            target, mask = split_ignore_label(target, self.ignore_label)
            loss = self.dice_weight * soft_dice_loss(probs, target, self.include_background, self.batch_dice,
                                                      self.smooth, mask)
            return loss + self.lovasz_weight * lovasz_softmax(probs, target, mask)
