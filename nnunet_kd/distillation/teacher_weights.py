"""Per-sample weights of several teachers, and the fused (weighted) teacher probabilities.

Schemes (``weights`` has shape ``(B, J)`` for ``J`` teachers; every row sums to 1):

- ``'uniform'``: ``w_j = 1/J``.
- ``'fixed'``: the given ``fixed_weights``, normalised to sum 1, the same for every sample.
- ``'adaptive'`` (default; the multi-teacher paper's §3.3 in spirit: the teacher that agrees better with the label
  weighs more):
  ``w_j = (a_j + eps) / Σ_k (a_k + eps)`` where ``a_j ∈ [0, 1]`` is teacher j's agreement with the label on that
  sample, the soft Dice ``2 Σ p·y / (Σ p + Σ y)`` between its probabilities and the one-hot label, averaged over
  the foreground classes present in the sample's label. Weights are strictly positive, and a teacher with higher
  agreement always gets the larger weight.
- ``'paper_literal'``: ``w_j = DiceLoss_j / Σ_k DiceLoss_k`` with ``DiceLoss_j = 1 − a_j``, exactly as printed
  in the multi-teacher paper (Ben Loussaief et al., §3.3). Note that this gives the *worse* teacher the larger
  weight (and a perfect teacher weight 0); it is kept under this explicit name only to reproduce the paper. If
  every teacher is perfect on a sample (``Σ DiceLoss = 0``) the fallback applies.

Fallback (adaptive schemes): a sample whose label has no foreground (Dice undefined), that is marked untrusted
(``trusted[b] = False``, e.g. a pseudo-labelled case) or for which no target is given gets the normalised
``fixed_weights`` if they are given, uniform weights otherwise.

The agreement should be measured on ordinary probabilities (``softmax`` at ``T = 1``), not the softened ones. With
nnU-Net's ignore label, voxels carrying it are left out of the agreement (neither prediction nor label counts there):
the label says nothing about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from nnunet_kd.distillation.spec import WEIGHTING_SCHEMES
from nnunet_kd.losses.dice import one_hot_labels, soft_dice_per_sample, split_ignore_label

WeightScheme = Literal["uniform", "fixed", "adaptive", "paper_literal"]


def teacher_agreement(teacher_probs: Sequence[Tensor], target: Tensor,
                      ignore_label: int | None = None) -> tuple[Tensor, Tensor]:
    """Soft Dice of each teacher with the label, per sample, on the voxels whose label is not ``ignore_label``.

    Args:
        teacher_probs: ``J`` tensors ``(B, C, *spatial)`` of class probabilities.
        target: ``(B, 1, *spatial)`` integer labels (``0..C-1``, or ``ignore_label``).
        ignore_label: nnU-Net's ignore label of the dataset, or None.

    Returns:
        ``(agreement, has_foreground)``: ``(B, J)`` fp32 mean soft Dice over the foreground classes present in each
        sample's label (0 where none is present), and ``(B,)`` bool, True where some foreground class is present.
    """
    _check_probs(teacher_probs)
    target, labelled = split_ignore_label(target, ignore_label)  # labelled: (B, 1, *spatial) bool, or None
    one_hot = one_hot_labels(target, teacher_probs[0].shape[1])[:, 1:]  # foreground classes only
    if labelled is not None:
        one_hot = one_hot * labelled
    present = one_hot.flatten(2).sum(dim=2) > 0  # (B, C-1)
    counts = present.sum(dim=1).clamp_min(1)
    columns = []
    for probs in teacher_probs:
        foreground = probs[:, 1:] if labelled is None else probs[:, 1:] * labelled
        dice = soft_dice_per_sample(foreground, one_hot).nan_to_num(0.0)  # (B, C-1); absent classes masked below
        columns.append((dice * present).sum(dim=1) / counts)
    return torch.stack(columns, dim=1), present.any(dim=1)


def compute_teacher_weights(teacher_probs: Sequence[Tensor], target: Tensor | None = None,
                            scheme: WeightScheme = "adaptive", fixed_weights: Sequence[float] | None = None,
                            trusted: Tensor | None = None, eps: float = 1e-3,
                            ignore_label: int | None = None) -> Tensor:
    """Per-sample teacher weights (see the module docstring for the schemes and the fallback).

    Args:
        teacher_probs: ``J`` tensors ``(B, C, *spatial)``, probabilities at ``T = 1``.
        target: ``(B, 1, *spatial)`` integer labels; needed by the adaptive schemes (None → fallback everywhere).
        scheme: ``'uniform'``, ``'fixed'``, ``'adaptive'`` or ``'paper_literal'``.
        fixed_weights: ``J`` positive numbers; required by ``'fixed'``, the fallback of the adaptive schemes.
        trusted: optional ``(B,)`` bool; False forces the fallback for that sample.
        eps: agreement offset of ``'adaptive'`` (keeps weights positive; all-zero agreement → uniform).
        ignore_label: voxels with this label do not count in the agreement (nnU-Net's ignore label).

    Returns:
        ``(B, J)`` fp32, no gradient, every row summing to 1.

    Raises:
        ValueError: unknown scheme, missing or invalid fixed weights, mismatched shapes.
    """
    _check_probs(teacher_probs)
    if scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"unknown teacher weighting scheme {scheme!r}; choose one of {', '.join(WEIGHTING_SCHEMES)}")
    batch, num_teachers = teacher_probs[0].shape[0], len(teacher_probs)
    device = teacher_probs[0].device
    if fixed_weights is not None:
        base = _normalised_fixed(fixed_weights, num_teachers).to(device)
    elif scheme == "fixed":
        raise ValueError("the 'fixed' teacher weighting needs fixed_weights (one per teacher)")
    else:
        base = torch.full((num_teachers,), 1.0 / num_teachers, device=device)
    fallback = base.expand(batch, num_teachers).clone()
    if scheme in ("uniform", "fixed") or target is None:
        if scheme == "uniform":
            fallback.fill_(1.0 / num_teachers)
        return fallback
    with torch.no_grad():
        agreement, usable = teacher_agreement([p.detach() for p in teacher_probs], target, ignore_label)
        if trusted is not None:
            if tuple(trusted.shape) != (batch,):
                raise ValueError(f"trusted must have shape ({batch},), got {tuple(trusted.shape)}")
            usable = usable & trusted.to(device=device, dtype=torch.bool)
        if scheme == "adaptive":
            scores = agreement + eps
        else:  # paper_literal
            scores = 1.0 - agreement
            usable = usable & (scores.sum(dim=1) > 0)
        weights = scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.where(usable[:, None], weights, fallback)


def fuse_teacher_probabilities(probs_list: Sequence[Tensor], weights: Tensor) -> Tensor:
    """Per-sample weighted average of teacher probabilities: ``Σ_j w[b, j] · p_j[b]``.

    Args:
        probs_list: ``J`` tensors ``(B, C, *spatial)`` (e.g. softened at ``T`` for the KL target).
        weights: ``(B, J)``, rows summing to 1.

    Returns:
        ``(B, C, *spatial)`` fp32 probabilities.

    Raises:
        ValueError: mismatched shapes.
    """
    _check_probs(probs_list)
    batch = probs_list[0].shape[0]
    if tuple(weights.shape) != (batch, len(probs_list)):
        raise ValueError(f"weights must have shape ({batch}, {len(probs_list)}), got {tuple(weights.shape)}")
    view = (batch, 1) + (1,) * (probs_list[0].ndim - 2)
    fused = torch.zeros_like(probs_list[0], dtype=torch.float32)
    for j, probs in enumerate(probs_list):
        fused = fused + weights[:, j].float().reshape(view) * probs.float()
    return fused


def _check_probs(teacher_probs: Sequence[Tensor]) -> None:
    if len(teacher_probs) == 0:
        raise ValueError("at least one teacher is needed")
    shape = tuple(teacher_probs[0].shape)
    if len(shape) < 3 or any(tuple(p.shape) != shape for p in teacher_probs):
        raise ValueError(f"teacher probabilities must all be (B, C, *spatial) of one shape, got "
                         f"{[tuple(p.shape) for p in teacher_probs]}")


def _normalised_fixed(fixed_weights: Sequence[float], num_teachers: int) -> Tensor:
    values = torch.as_tensor([float(w) for w in fixed_weights], dtype=torch.float32)
    if values.numel() != num_teachers or not bool((values > 0).all()):
        raise ValueError(f"fixed_weights must be {num_teachers} positive numbers (one per teacher), "
                         f"got {list(fixed_weights)}")
    return values / values.sum()
