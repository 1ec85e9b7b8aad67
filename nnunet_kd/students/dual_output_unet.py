"""The dual-output ("DO") student: a second decoder predicts the axial box mask (Fredriksen et al. 2022).

The box decoder shares the encoder (and ASPP) with the segmentation decoder and outputs 2-class logits (background,
inside an axial box) at full resolution. It only runs in training mode or while deep supervision is on (training
and nnU-Net's per-epoch validation): then ``forward`` still returns the segmentation output alone, exactly as the
single-output network, and leaves the box logits in :attr:`last_box_logits` for the loss. In eval mode with deep
supervision off (nnU-Net's predictor and final validation) the box decoder is skipped, so prediction works
unchanged and costs the same as the single-output student.

Train it with ``nnUNetTrainerDualOutput`` (``trainers/dual_output.py``), whose loss reads :attr:`last_box_logits`.
Under a trainer that ignores the box logits the box decoder gets no gradient (harmless on one device; DDP would
complain about unused parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet
from nnunet_kd.students.separable_unet_parts import DepthwiseSeparableUNetDecoder

NUM_BOX_CLASSES = 2


class DualOutputDepthwiseSeparableResidualUNet(DepthwiseSeparableResidualUNet):
    """:class:`DepthwiseSeparableResidualUNet` plus ``box_decoder`` (same structure, 2 classes, no deep supervision).

    Attributes:
        last_box_logits: ``(B, 2, *S)`` logits of the last forward pass that ran the box decoder, else None.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Same arguments as :class:`DepthwiseSeparableResidualUNet`."""
        super().__init__(*args, **kwargs)
        self.box_decoder = DepthwiseSeparableUNetDecoder(self.encoder, NUM_BOX_CLASSES, self.n_conv_per_stage_decoder,
                                                         deep_supervision=False)
        self.last_box_logits: torch.Tensor | None = None

    @property
    def box_output_active(self) -> bool:
        """Whether ``forward`` runs the box decoder (training mode or deep supervision on)."""
        return self.training or bool(self.decoder.deep_supervision)

    def forward_with_box_logits(self, x: torch.Tensor) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        """Segmentation output (as ``forward``) and box logits ``(B, 2, *S)``, whatever the mode."""
        skips = self.encode(x)
        return self.decoder(skips), self.box_decoder(skips)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not self.box_output_active:
            self.last_box_logits = None
            return super().forward(x)
        segmentation, self.last_box_logits = self.forward_with_box_logits(x)
        return segmentation

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Training-time estimate: includes the box decoder."""
        return super().compute_conv_feature_map_size(input_size) + self.box_decoder.compute_conv_feature_map_size(
            input_size
        )
