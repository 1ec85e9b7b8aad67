"""Batch reduction with optional per-sample weights (multi-teacher weighting of feature losses, the
multi-teacher paper's eq. 7)."""

from __future__ import annotations

from torch import Tensor


def weighted_sample_sum(per_sample: Tensor, sample_weights: Tensor | None) -> Tensor:
    """``Σ_b w_b · L_b`` (``w_b = 1`` without weights); the caller divides by the number of samples that count.

    Args:
        per_sample: ``(B,)`` losses.
        sample_weights: ``(B,)`` weights, e.g. one teacher's column of the ``(B, J)`` teacher weights, or None.

    Raises:
        ValueError: ``sample_weights`` is not ``(B,)``.
    """
    if sample_weights is None:
        return per_sample.sum()
    if tuple(sample_weights.shape) != tuple(per_sample.shape):
        raise ValueError(f"sample_weights must have shape {tuple(per_sample.shape)}, got {tuple(sample_weights.shape)}")
    return (per_sample * sample_weights.detach().float()).sum()
