"""Distillation losses: logit KL, deep supervision, attention transfer, region contrast, feature alignment,
the paper's Dice + Lovász segmentation loss and the combined ``Seg + α·Mid + β·KL``.

Every loss is an ``nn.Module`` (or a function) taking ``(B, C, *spatial)`` tensors and computing in fp32.
"""

from __future__ import annotations

from nnunet_kd.losses.attention import AttentionTransferLoss, attention_map
from nnunet_kd.losses.combined import combine_kd_losses
from nnunet_kd.losses.deep_supervision import (
    DeepSupervisionLoss,
    pool_probabilities_to_scales,
    pool_probabilities_to_shapes,
)
from nnunet_kd.losses.dice import one_hot_labels, soft_dice_per_sample
from nnunet_kd.losses.feature import FeatureAlignmentLoss
from nnunet_kd.losses.kl import SoftenedKLDivergence, soften
from nnunet_kd.losses.region_contrast import RegionContrastLoss, region_contrast
from nnunet_kd.losses.segmentation import DiceLovaszLoss, lovasz_softmax, soft_dice_loss

__all__ = [
    "AttentionTransferLoss",
    "DeepSupervisionLoss",
    "DiceLovaszLoss",
    "FeatureAlignmentLoss",
    "RegionContrastLoss",
    "SoftenedKLDivergence",
    "attention_map",
    "combine_kd_losses",
    "lovasz_softmax",
    "one_hot_labels",
    "pool_probabilities_to_scales",
    "pool_probabilities_to_shapes",
    "region_contrast",
    "soft_dice_loss",
    "soft_dice_per_sample",
    "soften",
]
