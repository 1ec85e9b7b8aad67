"""Paper 003's total distillation loss ``KD = Seg + α·Mid + β·KL`` (eq. 6; α = β = 0.1)."""

from __future__ import annotations

from torch import Tensor


def combine_kd_losses(seg: Tensor, mid: Tensor | None = None, kl: Tensor | None = None, alpha: float = 0.1,
                      beta: float = 0.1) -> dict[str, Tensor]:
    """Weighted sum of the loss components, plus the components for logging.

    Args:
        seg: scalar segmentation loss (nnU-Net's DC+CE with deep supervision, or ``DiceLovaszLoss``).
        mid: scalar intermediate (feature) loss, or None when not used (counts as 0).
        kl: scalar logit-distillation loss, or None when not used (counts as 0).
        alpha: weight of ``mid``.
        beta: weight of ``kl``.

    Returns:
        ``{'loss': seg + α·mid + β·kl, 'seg': ..., 'mid': ..., 'kl': ...}``. Only ``'loss'`` carries gradients;
        the components are detached (unweighted) copies for logging, 0 for a missing term.
    """
    total = seg
    if mid is not None:
        total = total + alpha * mid
    if kl is not None:
        total = total + beta * kl
    zero = seg.detach() * 0.0
    return {
        "loss": total,
        "seg": seg.detach(),
        "mid": mid.detach() if mid is not None else zero,
        "kl": kl.detach() if kl is not None else zero,
    }
