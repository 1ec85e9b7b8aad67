"""Logit distillation: Kullback–Leibler divergence between temperature-softened class distributions.

Hinton et al. (2015) as used by the multi-teacher paper (Ben Loussaief et al., eq. 1–2): ``p = softmax(z / T)``
over the class dimension, one KL per voxel, averaged over the voxels. Reduction: **sum over classes, mean over batch
and voxels**, times ``T²`` so that the soft-target gradient keeps the scale of the hard loss. Neither
``reduction='mean'`` (also divides by C) nor ``'batchmean'`` (grows with the patch volume) is used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def soften(logits: Tensor, temperature: float) -> Tensor:
    """Class probabilities at temperature ``T``, in fp32.

    Args:
        logits: ``(B, C, *spatial)`` raw network outputs, any float dtype.
        temperature: ``T > 0``; ``T = 1`` is the ordinary softmax.

    Returns:
        ``(B, C, *spatial)`` fp32 probabilities, ``softmax(logits / T)`` over dim 1.

    Raises:
        ValueError: ``temperature <= 0``.
    """
    _check_temperature(temperature)
    return torch.softmax(logits.float() / temperature, dim=1)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


class SoftenedKLDivergence(nn.Module):
    """``T² · mean_voxels Σ_c p_c (log p_c − log q_c)`` with ``q = softmax(student / T)``: KL(teacher ‖ student).

    The teacher side is given as probabilities already softened at the same ``T`` (``soften(teacher_logits, T)``,
    or the weighted fusion of several teachers' softened probabilities), so the multi-teacher fusion happens in
    probability space before the loss. The target is detached: gradients reach the student logits only.
    Everything is computed in fp32 with autocast disabled, whatever the input dtypes.

    Deviation from the multi-teacher paper: eq. (2) prints ``KL(p^s ‖ p^t)``; we use Hinton's ``KL(p^t ‖ p^s)`` (the
    usual KD direction, gradient ``(q − p)/T`` per logit) and add the ``T²`` factor the paper omits.

    Masking: with ``mask`` (``(B, 1, *spatial)``, bool or float weights, e.g. an ignore-label or lung mask) the
    voxel mean becomes ``Σ m·kl / Σ m``; an all-zero mask gives 0. Region-based (sigmoid) outputs are not supported:
    the class dimension must be a softmax over mutually exclusive classes.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        """Args: temperature: ``T > 0`` used for the student's softmax and the ``T²`` factor."""
        super().__init__()
        _check_temperature(temperature)
        self.temperature = float(temperature)

    def forward(self, student_logits: Tensor, target_probs: Tensor, mask: Tensor | None = None) -> Tensor:
        """KL loss.

        Args:
            student_logits: ``(B, C, *spatial)`` student logits (not softened).
            target_probs: ``(B, C, *spatial)`` teacher probabilities softened at ``T`` (rows sum to 1 over C).
            mask: optional ``(B, 1, *spatial)`` voxel weights.

        Returns:
            Scalar fp32 tensor.

        Raises:
            ValueError: shapes differ.
        """
        if student_logits.shape != target_probs.shape:
            raise ValueError(f"student logits {tuple(student_logits.shape)} and target probabilities "
                             f"{tuple(target_probs.shape)} must have the same shape (B, C, *spatial)")
        with torch.autocast(device_type=student_logits.device.type, enabled=False):
            log_q = torch.log_softmax(student_logits.float() / self.temperature, dim=1)
            p = target_probs.detach().float()
            kl = (torch.xlogy(p, p) - p * log_q).sum(dim=1)  # (B, *spatial); xlogy: 0·log 0 = 0
            if mask is None:
                per_voxel = kl.mean()
            else:
                expected = (kl.shape[0], 1, *kl.shape[1:])
                if tuple(mask.shape) != expected:
                    raise ValueError(f"mask shape {tuple(mask.shape)} must be {expected}")
                m = mask[:, 0].float()
                per_voxel = (kl * m).sum() / m.sum().clamp_min(1e-12)
        return per_voxel * self.temperature ** 2
