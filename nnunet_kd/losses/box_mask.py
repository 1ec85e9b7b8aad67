"""Loss of the dual-output student: segmentation loss + ``box_loss_weight`` × box-mask loss.

The box target is derived from the segmentation target of the (augmented) patch itself: per sample, on the CPU,
:func:`~nnunet_kd.boxes.channel.box_channel_of_labels` fills the rectangle of every lesion on every axial slice. The
patch axis that indexes axial slices depends on the plans' ``transpose_forward`` (``axial_axis``); a 2D patch is
one axial slice. The box loss is nnU-Net's Dice + cross-entropy on the 2-class box mask (full resolution only: the
box decoder has no deep supervision).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch import nn

from nnunet_kd.boxes.channel import box_channel_of_labels

SegmentationOutput = torch.Tensor | list[torch.Tensor]
SegmentationTarget = torch.Tensor | list[torch.Tensor]


def default_box_loss() -> nn.Module:
    """nnU-Net's Dice (foreground only, per sample) + cross-entropy, as for a 2-class segmentation."""
    return DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)


class DualOutputLoss(nn.Module):
    """``segmentation_loss(output, target) + box_loss_weight * box_loss(box_logits, box_mask(target))``.

    Args:
        segmentation_loss: nnU-Net's loss (with its deep-supervision wrapper when training with deep supervision).
        box_loss_weight: weight of the box term (>= 0).
        axial_axis: spatial axis of the patch that indexes axial slices.
        ignore_label: label value excluded from the foreground when deriving boxes.
        box_loss: loss on ``(B, 2, *S)`` logits and a ``(B, 1, *S)`` box mask; default :func:`default_box_loss`.
    """

    def __init__(
        self,
        segmentation_loss: nn.Module,
        box_loss_weight: float = 1.0,
        axial_axis: int = 0,
        ignore_label: int | None = None,
        box_loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if box_loss_weight < 0:
            raise ValueError(f"box_loss_weight must be >= 0, got {box_loss_weight}")
        self.segmentation_loss = segmentation_loss
        self.box_loss = box_loss if box_loss is not None else default_box_loss()
        self.box_loss_weight = box_loss_weight
        self.axial_axis = axial_axis
        self.ignore_label = ignore_label

    def forward(self, segmentation_output: SegmentationOutput, box_logits: torch.Tensor,
                target: SegmentationTarget) -> torch.Tensor:
        """Args: segmentation output and target as nnU-Net passes them (lists with deep supervision, highest
        resolution first), box logits ``(B, 2, *S)`` at the resolution of the first target."""
        loss = self.segmentation_loss(segmentation_output, target)
        if self.box_loss_weight == 0:
            return loss
        full_resolution = target[0] if isinstance(target, (list, tuple)) else target
        if tuple(box_logits.shape[2:]) != tuple(full_resolution.shape[2:]):
            raise ValueError(
                f"box logits {tuple(box_logits.shape)} do not match the target {tuple(full_resolution.shape)}"
            )
        box_target = box_channel_of_labels(full_resolution, self.axial_axis, self.ignore_label)
        return loss + self.box_loss_weight * self.box_loss(box_logits, box_target)


class NetworkBoxOutputLoss(nn.Module):
    """nnU-Net-style ``loss(output, target)`` for a network that leaves its box logits in an attribute.

    nnU-Net's ``train_step`` / ``validation_step`` call ``self.loss(output, target)`` with the segmentation output
    only; this adaptor fetches the box logits of the same forward pass from ``box_logits_source()`` (e.g. the
    network's ``last_box_logits``) and evaluates a :class:`DualOutputLoss`.
    """

    def __init__(self, loss: DualOutputLoss, box_logits_source: Callable[[], torch.Tensor | None]) -> None:
        super().__init__()
        self.loss = loss
        self.box_logits_source = box_logits_source

    def forward(self, output: SegmentationOutput, target: SegmentationTarget) -> torch.Tensor:
        box_logits = self.box_logits_source()
        if box_logits is None:
            raise RuntimeError("the network produced no box logits in this forward pass (is it a dual-output network "
                               "in training mode or with deep supervision on?)")
        return self.loss(output, box_logits, target)
