"""Apply a loss across deep-supervision outputs, and bring a full-resolution teacher to the supervision scales.

The scale weights are nnU-Net's own (``nnUNetTrainer._build_loss``: ``1/2^i``, last one 0, normalised); the trainer
passes them in, they are not re-derived here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

_ADAPTIVE_POOL = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


class DeepSupervisionLoss(nn.Module):
    """``Σ_i w_i · loss(student_outputs[i], targets[i], **kwargs_i)`` over deep-supervision scales.

    Scales with ``w_i == 0`` are skipped (never evaluated). Keyword arguments whose value is a list or tuple are
    taken per scale (``mask=[m0, m1, ...]``); any other keyword value is passed unchanged to every scale.
    """

    def __init__(self, loss: nn.Module | Callable[..., Tensor], weights: Sequence[float]) -> None:
        """Args: loss: the per-scale loss. weights: one weight per scale, highest resolution first."""
        super().__init__()
        if len(weights) == 0:
            raise ValueError("deep-supervision weights must not be empty")
        self.loss = loss
        self.weights = [float(w) for w in weights]

    def forward(self, student_outputs: Sequence[Tensor], targets: Sequence[Tensor], **kwargs: object) -> Tensor:
        """Weighted sum over scales.

        Args:
            student_outputs: one ``(B, C, *spatial_i)`` tensor per scale, highest resolution first.
            targets: one target per scale, matching ``student_outputs``.
            **kwargs: extra arguments of ``loss``; list/tuple values are indexed per scale.

        Returns:
            Scalar tensor (a zero that keeps the graph when every weight is 0).

        Raises:
            ValueError: the number of outputs, targets and weights differ.
        """
        n = len(self.weights)
        if len(student_outputs) != n or len(targets) != n:
            raise ValueError(f"expected {n} deep-supervision outputs and targets (one per weight), got "
                             f"{len(student_outputs)} outputs and {len(targets)} targets")
        for key, value in kwargs.items():
            if isinstance(value, (list, tuple)) and len(value) != n:
                raise ValueError(f"per-scale argument {key!r} has {len(value)} entries, expected {n}")
        total: Tensor | None = None
        for i, weight in enumerate(self.weights):
            if weight == 0:
                continue
            scale_kwargs = {k: (v[i] if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items()}
            term = weight * self.loss(student_outputs[i], targets[i], **scale_kwargs)
            total = term if total is None else total + term
        if total is None:
            return student_outputs[0].float().sum() * 0.0
        return total


def pool_probabilities_to_shapes(probs: Tensor, shapes: Sequence[Sequence[int]]) -> list[Tensor]:
    """Average-pool a probability map to each given spatial shape (fp32).

    Pooling is linear, so each output still sums to 1 over classes. When a shape divides the input evenly this is
    exactly non-overlapping average pooling; otherwise PyTorch's adaptive average pooling windows are used.

    Args:
        probs: ``(B, C, *spatial)`` probabilities (1–3 spatial dims).
        shapes: target spatial shapes, e.g. the student's deep-supervision output shapes.

    Returns:
        One ``(B, C, *shape_i)`` tensor per shape; an unchanged shape returns ``probs`` itself (as fp32).

    Raises:
        ValueError: a target shape has the wrong length or is larger than the input.
    """
    spatial = tuple(probs.shape[2:])
    if len(spatial) not in _ADAPTIVE_POOL:
        raise ValueError(f"probabilities must have 1-3 spatial dims, got shape {tuple(probs.shape)}")
    pooled = []
    probs = probs.float()
    for shape in shapes:
        shape = tuple(int(s) for s in shape)
        if len(shape) != len(spatial) or any(s < 1 or s > full for s, full in zip(shape, spatial)):
            raise ValueError(f"cannot pool spatial shape {spatial} to {shape}")
        pooled.append(probs if shape == spatial else _ADAPTIVE_POOL[len(spatial)](probs, shape))
    return pooled


def pool_probabilities_to_scales(probs: Tensor, scales: Sequence[Sequence[float]]) -> list[Tensor]:
    """Average-pool a full-resolution probability map to nnU-Net's deep-supervision scales.

    Args:
        probs: ``(B, C, *spatial)`` probabilities at full resolution.
        scales: nnU-Net's ``deep_supervision_scales``, e.g. ``[[1, 1, 1], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]``;
            the shape at scale ``s`` is ``round(size · s)`` per axis, as nnU-Net's ``DownsampleSegForDSTransform``
            computes it for the targets.

    Returns:
        One ``(B, C, *shape_i)`` fp32 tensor per scale, each summing to 1 over classes.
    """
    spatial = probs.shape[2:]
    shapes = [[round(size * float(s)) for size, s in zip(spatial, scale)] for scale in scales]
    for scale in scales:
        if len(scale) != len(spatial):
            raise ValueError(f"scale {list(scale)} does not match {len(spatial)} spatial dims")
    return pool_probabilities_to_shapes(probs, shapes)
