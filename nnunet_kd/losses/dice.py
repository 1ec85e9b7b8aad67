"""Soft Dice on softmax probabilities and integer labels (used by the segmentation loss and the teacher weights)."""

from __future__ import annotations

import torch
from torch import Tensor


def one_hot_labels(target: Tensor, num_classes: int) -> Tensor:
    """``(B, 1, *spatial)`` integer labels (any dtype, as nnU-Net's float targets) → ``(B, C, *spatial)`` fp32.

    Raises:
        ValueError: ``target`` does not have one channel or holds a label outside ``0..num_classes-1``.
    """
    if target.ndim < 3 or target.shape[1] != 1:
        raise ValueError(f"target must be (B, 1, *spatial) integer labels, got shape {tuple(target.shape)}")
    labels = target[:, 0].long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"target holds labels outside 0..{num_classes - 1} (an ignore label must be masked out first)")
    return torch.movedim(torch.nn.functional.one_hot(labels, num_classes), -1, 1).float()


def split_ignore_label(target: Tensor, ignore_label: int | None) -> tuple[Tensor, Tensor | None]:
    """``(B, 1, *spatial)`` labels → (labels with the ignore label's voxels set to 0, ``(B, 1, *spatial)`` bool mask of
    the voxels that count); ``(target, None)`` when there is no ignore label."""
    if ignore_label is None:
        return target, None
    counted = target != ignore_label
    return torch.where(counted, target, torch.zeros_like(target)), counted


def soft_dice_per_sample(probs: Tensor, one_hot: Tensor, smooth: float = 0.0) -> Tensor:
    """Soft Dice ``(2 Σ p·y + smooth) / (Σ p + Σ y + smooth)`` per sample and class.

    Args:
        probs: ``(B, C, *spatial)`` probabilities.
        one_hot: ``(B, C, *spatial)`` one-hot reference.
        smooth: added to numerator and denominator.

    Returns:
        ``(B, C)`` fp32; 0/0 (empty prediction and reference, ``smooth = 0``) gives NaN, which callers handle.
    """
    p = probs.float().flatten(2)
    y = one_hot.float().flatten(2)
    return (2.0 * (p * y).sum(dim=2) + smooth) / (p.sum(dim=2) + y.sum(dim=2) + smooth)
