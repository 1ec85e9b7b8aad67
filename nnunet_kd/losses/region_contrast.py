"""Region contrast (the multi-teacher paper's eq. 4, after Qin et al.'s EMKD region affinity).

For one feature map ``F`` ``(C, *spatial)`` and the foreground ``m1`` / background ``m0 = 1 − m1`` of the label at
the feature's resolution, the region means are ``μ_k = Σ_v F_v m_k,v / Σ_v m_k,v`` (vectors over channels) and
the region contrast is their cosine similarity ``rc(F) = cos(μ0, μ1)``, one number per sample. Paper 003's term is
``‖rc_s − rc_t‖_2``; with one foreground region the contrast vector has one entry, so this is ``|rc_s − rc_t|``.

Choices (not in the paper): every label > 0 counts as foreground (multi-class labels are merged); the label is
resized to each feature's spatial size with ``nearest-exact``, as nnU-Net downsamples deep-supervision targets;
region means are exact (no smoothing term) and a sample counts only if both regions are non-empty at both the
student's and the teacher's resolution. The loss is the mean over the samples that count, 0 if none does
(nnU-Net's patches often hold no tumour). Channel-free: no adapter is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnunet_kd.losses._batch import weighted_sample_sum
from nnunet_kd.losses._resize import resize_labels


def region_contrast(features: Tensor, foreground: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Per-sample cosine similarity between the mean background and mean foreground feature vectors.

    Args:
        features: ``(B, C, *spatial)``.
        foreground: ``(B, 1, *spatial)`` bool mask.
        eps: cosine-similarity floor on the vector norms.

    Returns:
        ``(rc, valid)``: ``(B,)`` fp32 contrasts and ``(B,)`` bool, True where both regions are non-empty (``rc``
        is meaningless elsewhere).
    """
    f = features.float().flatten(2)  # (B, C, V)
    m1 = foreground.flatten(2).to(f.dtype)  # (B, 1, V)
    m0 = 1.0 - m1
    n1, n0 = m1.sum(dim=2), m0.sum(dim=2)  # (B, 1)
    mu1 = (f * m1).sum(dim=2) / n1.clamp_min(1.0)  # (B, C)
    mu0 = (f * m0).sum(dim=2) / n0.clamp_min(1.0)
    rc = F.cosine_similarity(mu0, mu1, dim=1, eps=eps)
    valid = (n1[:, 0] > 0) & (n0[:, 0] > 0)
    return rc, valid


class RegionContrastLoss(nn.Module):
    """``mean_{b valid} |rc(F_s[b]) − rc(F_t[b])|`` (see the module docstring); fp32, teacher detached."""

    def __init__(self, eps: float = 1e-8) -> None:
        """Args: eps: cosine-similarity floor on the region-mean norms."""
        super().__init__()
        self.eps = float(eps)

    def forward(self, student_features: Tensor, teacher_features: Tensor, target: Tensor,
                sample_weights: Tensor | None = None) -> Tensor:
        """Region-contrast loss.

        Args:
            student_features: ``(B, Cs, *spatial_s)``.
            teacher_features: ``(B, Ct, *spatial_t)``; channel counts and spatial sizes may differ.
            target: ``(B, 1, *spatial_any)`` integer label map (resized to each feature's size).
            sample_weights: optional ``(B,)`` per-sample weights (this teacher's column of the teacher weights).

        Returns:
            Scalar ``Σ_b w_b · valid_b · |rc_s − rc_t|_b / Σ_b valid_b`` (``w_b = 1`` by default); 0 (attached to
            the student graph) when no sample has both foreground and background at both resolutions.

        Raises:
            ValueError: batch sizes or numbers of spatial dims differ.
        """
        b = student_features.shape[0]
        if teacher_features.shape[0] != b or target.shape[0] != b or target.shape[1] != 1 or not (
                student_features.ndim == teacher_features.ndim == target.ndim):
            raise ValueError(f"student {tuple(student_features.shape)}, teacher {tuple(teacher_features.shape)} "
                             f"and target {tuple(target.shape)} must be (B, C, *spatial) / (B, 1, *spatial)")
        with torch.autocast(device_type=student_features.device.type, enabled=False):
            fg_s = resize_labels(target, student_features.shape[2:]) > 0
            fg_t = resize_labels(target, teacher_features.shape[2:]) > 0
            rc_s, valid_s = region_contrast(student_features, fg_s, self.eps)
            rc_t, valid_t = region_contrast(teacher_features.detach(), fg_t, self.eps)
            valid = (valid_s & valid_t).float()
            per_sample = (rc_s - rc_t).abs()
            return weighted_sample_sum(per_sample * valid, sample_weights) / valid.sum().clamp_min(1.0)
