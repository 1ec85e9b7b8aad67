"""The compact student: a U-Net of depthwise-separable residual blocks with an optional ASPP bottleneck (U-NetDw).

Referenced from a plans file as ``nnunet_kd.students.depthwise_unet.DepthwiseSeparableResidualUNet`` (``nnunet_kd
add-student`` writes that configuration). The constructor takes the keywords of DNA's ``ResidualEncoderUNet``, so
nnU-Net's ``get_network_from_plans`` builds it unchanged, plus ``aspp_rates`` / ``aspp_image_pooling``.

Width: the class has no width multiplier. ``features_per_stage`` are the real channel counts; ``nnunet_kd
add-student --width`` scales nnU-Net's planned features before writing them into the plans, so the plans file states
what is built, and the distillation trainers read channel counts from it directly.

Module names (for feature hooks): ``encoder.stem``, ``encoder.stages[i]`` (i = 0 highest resolution, the last is the
bottleneck before ASPP), ``aspp`` (``nn.Identity`` when off), ``decoder.stages[j]`` / ``decoder.transpconvs[j]`` /
``decoder.seg_layers[j]`` (j = 0 lowest resolution), as in DNA's U-Nets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from nnunet_kd.students.aspp import AtrousSpatialPyramidPooling
from nnunet_kd.students.separable_blocks import DepthwiseSeparableResidualBlock
from nnunet_kd.students.separable_unet_parts import (
    DepthwiseSeparableResidualEncoder,
    DepthwiseSeparableUNetDecoder,
    per_stage,
)


class DepthwiseSeparableResidualUNet(AbstractDynamicNetworkArchitectures):
    """U-Net with depthwise-separable residual blocks in encoder and decoder and an optional ASPP bottleneck.

    ``forward(x)``: ``x`` ``(B, input_channels, *S)`` → logits ``(B, num_classes, *S)``, or with deep supervision
    (``decoder.deep_supervision``) a list of ``n_stages - 1`` logits, highest resolution first. No final nonlinearity.

    Args:
        input_channels: image channels.
        n_stages: resolution stages (encoder stages; the decoder has ``n_stages - 1``).
        features_per_stage: channels per stage (already scaled by any width multiplier).
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        kernel_sizes: per stage, e.g. ``[[3, 3, 3], ...]``.
        strides: per stage; the first is usually 1.
        n_blocks_per_stage: residual blocks (2 separable convolutions each) per encoder stage.
        num_classes: segmentation outputs.
        n_conv_per_stage_decoder: separable convolutions in each decoder stage's residual block (n_stages - 1).
        conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs: as in DNA.
        deep_supervision: return all decoder resolutions (switchable later via ``decoder.deep_supervision``).
        aspp_rates: dilation rates of the ASPP bottleneck; None or empty: no ASPP.
        aspp_image_pooling: add ASPP's global-average branch.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: int | Sequence[int],
        conv_op: type[_ConvNd],
        kernel_sizes: int | Sequence,
        strides: int | Sequence,
        n_blocks_per_stage: int | Sequence[int],
        num_classes: int,
        n_conv_per_stage_decoder: int | Sequence[int],
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[_DropoutNd] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = False,
        aspp_rates: Sequence[int] | None = None,
        aspp_image_pooling: bool = True,
    ) -> None:
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"a U-Net needs n_stages >= 2, got {n_stages}")
        features = per_stage(features_per_stage, n_stages, "features_per_stage")
        if any(f < 1 for f in features):
            raise ValueError(f"every stage needs at least one channel, got features_per_stage={features}")
        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stem"
        self.keys_to_in_proj = ("encoder.stem.convs.0.conv", "encoder.stem.convs.0.all_modules.0")

        self.encoder = DepthwiseSeparableResidualEncoder(
            input_channels, n_stages, features, conv_op, kernel_sizes, strides, n_blocks_per_stage, conv_bias,
            norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
        )
        if aspp_rates:
            self.aspp: nn.Module = AtrousSpatialPyramidPooling(
                conv_op, features[-1], aspp_rates, self.encoder.kernel_sizes[-1], image_pooling=aspp_image_pooling,
                conv_bias=conv_bias, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin,
                nonlin_kwargs=nonlin_kwargs,
            )
        else:
            self.aspp = nn.Identity()
        self.n_conv_per_stage_decoder = per_stage(n_conv_per_stage_decoder, n_stages - 1, "n_conv_per_stage_decoder")
        self.decoder = DepthwiseSeparableUNetDecoder(self.encoder, num_classes, self.n_conv_per_stage_decoder,
                                                     deep_supervision)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder skips with the bottleneck (last entry) passed through ASPP."""
        skips = self.encoder(x)
        skips[-1] = self.aspp(skips[-1])
        return skips

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encode(x))

    def bottleneck_size(self, input_size: Sequence[int]) -> list[int]:
        """Spatial size of the bottleneck feature map for an input patch of ``input_size``."""
        size = list(input_size)
        for stride in self.encoder.strides:
            size = [i // s for i, s in zip(size, stride)]
        return size

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Feature-map elements stored for one sample of spatial ``input_size`` (nnU-Net's VRAM estimate)."""
        if len(input_size) != convert_conv_op_to_dim(self.encoder.conv_op):
            raise ValueError(f"give the spatial size only, e.g. (x, y, z); got {tuple(input_size)}")
        total = self.encoder.compute_conv_feature_map_size(input_size)
        if isinstance(self.aspp, AtrousSpatialPyramidPooling):
            total += self.aspp.compute_conv_feature_map_size(self.bottleneck_size(input_size))
        return total + self.decoder.compute_conv_feature_map_size(input_size)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He initialisation of convolutions; the last norm of each residual block starts at zero (identity block)."""
        InitWeights_He(1e-2)(module)
        if isinstance(module, DepthwiseSeparableResidualBlock):
            norm = module.last_norm
            if norm is not None and getattr(norm, "weight", None) is not None:
                nn.init.zeros_(norm.weight)
                nn.init.zeros_(norm.bias)
