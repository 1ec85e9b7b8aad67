"""Feature alignment (FitNets-style; the weakly supervised KD paper's feature-level and
multi-scale KD) with a learned channel adapter.

The student feature goes through a 1×1×1 (1×1 in 2D) convolution to the teacher's channel count when the counts
differ (identity otherwise), is resized (bi/trilinear) to the teacher's spatial size when the sizes differ, and is
compared with the detached teacher feature:

- ``kind='mse'``: ``mean_{b,c,v} (s' − t)²``;
- ``kind='cosine'``: ``1 − mean_{b,v} cos_c(s'_v, t_v)`` (cosine over channels at each voxel);

with optional per-sample weights ``w_b`` (the multi-teacher paper's eq. 7) applied before the batch mean.

The adapter's parameters are this module's parameters: the trainer adds them to the optimiser and saves them
with its checkpoint, outside the exported network. Deviation from the weakly supervised KD paper's code, which
puts the adapter on the teacher side: here the frozen teacher feature stays the fixed target and only the student
side is adapted, so the loss cannot be lowered by moving the target.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnunet_kd.losses._batch import weighted_sample_sum
from nnunet_kd.losses._resize import resize_linear

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class FeatureAlignmentLoss(nn.Module):
    """Adapter + MSE or cosine distance between a student and a teacher feature map (see the module docstring)."""

    def __init__(self, student_channels: int, teacher_channels: int, kind: Literal["mse", "cosine"] = "mse",
                 spatial_dims: int = 3) -> None:
        """Args:
            student_channels: channels of the student feature.
            teacher_channels: channels of the teacher feature.
            kind: ``'mse'`` or ``'cosine'``.
            spatial_dims: 1, 2 or 3 (picks the adapter's convolution type).

        Raises:
            ValueError: unknown ``kind`` or ``spatial_dims``, non-positive channel counts.
        """
        super().__init__()
        if kind not in ("mse", "cosine"):
            raise ValueError(f"kind must be 'mse' or 'cosine', got {kind!r}")
        if spatial_dims not in _CONVS:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        if student_channels < 1 or teacher_channels < 1:
            raise ValueError(f"channel counts must be positive, got {student_channels} and {teacher_channels}")
        self.kind = kind
        self.spatial_dims = spatial_dims
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.adapter: nn.Module = (nn.Identity() if student_channels == teacher_channels
                                   else _CONVS[spatial_dims](student_channels, teacher_channels, kernel_size=1))

    @property
    def has_adapter(self) -> bool:
        """True when a learned convolution maps the student's channels to the teacher's."""
        return not isinstance(self.adapter, nn.Identity)

    def forward(self, student_features: Tensor, teacher_features: Tensor, sample_weights: Tensor | None = None
                ) -> Tensor:
        """Alignment loss.

        Args:
            student_features: ``(B, Cs, *spatial_s)``.
            teacher_features: ``(B, Ct, *spatial_t)``.
            sample_weights: optional ``(B,)`` per-sample weights (this teacher's column of the teacher weights).

        Returns:
            Scalar fp32: ``(1/B) Σ_b w_b · L_b`` with ``L_b`` the per-sample distance (``w_b = 1`` by default).

        Raises:
            ValueError: batch size, channel counts or number of spatial dims are wrong.
        """
        if (student_features.ndim != self.spatial_dims + 2 or teacher_features.ndim != self.spatial_dims + 2
                or student_features.shape[0] != teacher_features.shape[0]
                or student_features.shape[1] != self.student_channels
                or teacher_features.shape[1] != self.teacher_channels):
            raise ValueError(f"student {tuple(student_features.shape)} and teacher {tuple(teacher_features.shape)} "
                             f"features must be (B, {self.student_channels} / {self.teacher_channels}, *spatial) "
                             f"with {self.spatial_dims} spatial dims")
        with torch.autocast(device_type=student_features.device.type, enabled=False):
            adapted = self.adapter(student_features.float())
            adapted = resize_linear(adapted, teacher_features.shape[2:])
            target = teacher_features.detach().float()
            if self.kind == "mse":
                per_sample = (adapted - target).pow(2).flatten(1).mean(dim=1)
            else:
                per_sample = 1.0 - F.cosine_similarity(adapted, target, dim=1, eps=1e-8).flatten(1).mean(dim=1)
            return weighted_sample_sum(per_sample, sample_weights) / per_sample.shape[0]
