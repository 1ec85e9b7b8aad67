"""Attention transfer (Zagoruyko & Komodakis 2017) in the form the multi-teacher paper (Ben Loussaief et al.) uses for
its ``Mid`` loss (eq. 3).

Spatial attention map of a feature ``F`` ``(B, C, *spatial)``: ``A(F) = Σ_c |F_c|^p``, flattened per sample and
L2-normalised, ``a = A / ‖A‖_2``. Loss per layer pair, averaged over the batch, with ``V`` the number of voxels of
the (teacher's) map:

- ``distance='l1'`` (default, the multi-teacher paper): ``‖a_s − a_t‖_1 / √V``;
- ``distance='l2'`` (Zagoruyko & Komodakis' paper): ``‖a_s − a_t‖_2``, the L2 norm (not squared).

Reading of the multi-teacher paper: eq. (3) is printed as ``‖(at_s − at_t) / ‖at_s − at_t‖_2‖_1``, which taken
literally is the ratio ``‖d‖_1 / ‖d‖_2`` of the difference — scale-free and not minimised by ``d = 0``. Following its
cited source, the L2 normalisation is applied to each map and the paper's outer L1 norm to their difference. The
paper's text sums absolute values (``p = 1``); the default here is Zagoruyko's ``p = 2`` (pass ``p=1`` for the text's
form).

Size normalisation (not in the paper): the L1 norm of the difference of two unit-L2 vectors grows like ``√V`` for
the same per-voxel pattern (5.4 at 8×16×16, 174 at 80×160×160), so that with α = 0.1 it would outweigh nnU-Net's
segmentation loss on real patches. Dividing by ``√V`` makes the value independent of the patch size (exactly so for a
pattern repeated on a finer grid) and bounds it by 2, like the L2 distance. Channel-free: no adapter is needed.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from nnunet_kd.losses._batch import weighted_sample_sum
from nnunet_kd.losses._resize import resize_linear


def attention_map(features: Tensor, p: float = 2.0) -> Tensor:
    """Un-normalised spatial attention ``Σ_c |F_c|^p``.

    Args:
        features: ``(B, C, *spatial)``.
        p: exponent, > 0.

    Returns:
        ``(B, 1, *spatial)`` fp32.
    """
    return features.float().abs().pow(p).sum(dim=1, keepdim=True)


class AttentionTransferLoss(nn.Module):
    """Attention-transfer distance between a student and a teacher feature map (see the module docstring).

    When spatial sizes differ, the student's attention map is resized (bi/trilinear) to the teacher's before
    normalisation. Computed in fp32; the teacher feature is detached.
    """

    def __init__(self, p: float = 2.0, distance: Literal["l1", "l2"] = "l1", eps: float = 1e-12) -> None:
        """Args: p: attention exponent. distance: ``'l1'`` (the multi-teacher paper, size-normalised) or ``'l2'``.
        eps: normalisation floor."""
        super().__init__()
        if not p > 0:
            raise ValueError(f"p must be > 0, got {p}")
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
        self.p = float(p)
        self.distance = distance
        self.eps = float(eps)

    def forward(self, student_features: Tensor, teacher_features: Tensor, sample_weights: Tensor | None = None
                ) -> Tensor:
        """Attention-transfer loss.

        Args:
            student_features: ``(B, Cs, *spatial_s)``.
            teacher_features: ``(B, Ct, *spatial_t)``; channel counts may differ.
            sample_weights: optional ``(B,)`` per-sample weights (this teacher's column of the teacher weights).

        Returns:
            Scalar: ``(1/B) Σ_b w_b · d_b`` with ``d_b`` the per-sample distance (``w_b = 1`` by default).

        Raises:
            ValueError: batch sizes or numbers of spatial dims differ.
        """
        if student_features.shape[0] != teacher_features.shape[0] or student_features.ndim != teacher_features.ndim:
            raise ValueError(f"student {tuple(student_features.shape)} and teacher {tuple(teacher_features.shape)} "
                             "features must share batch size and number of spatial dims")
        with torch.autocast(device_type=student_features.device.type, enabled=False):
            a_s = resize_linear(attention_map(student_features, self.p), teacher_features.shape[2:])
            a_t = attention_map(teacher_features.detach(), self.p)
            a_s = nn.functional.normalize(a_s.flatten(1), p=2.0, dim=1, eps=self.eps)
            a_t = nn.functional.normalize(a_t.flatten(1), p=2.0, dim=1, eps=self.eps)
            if self.distance == "l1":
                per_sample = torch.linalg.vector_norm(a_s - a_t, ord=1, dim=1) / math.sqrt(a_t.shape[1])
            else:
                per_sample = torch.linalg.vector_norm(a_s - a_t, ord=2, dim=1)
            return weighted_sample_sum(per_sample, sample_weights) / per_sample.shape[0]
