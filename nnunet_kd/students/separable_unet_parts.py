"""Encoder and decoder of the depthwise-separable residual U-Net.

The encoder mirrors DNA's ``ResidualEncoder`` (a dense stem convolution, then ``stages[i]`` of residual blocks, the
first block of each stage strided) with depthwise-separable residual blocks, and exposes the attributes DNA's
``UNetDecoder`` reads (``output_channels``, ``strides``, ``conv_op``, ``kernel_sizes``, norm/dropout/nonlin).
The decoder *is* a ``UNetDecoder``: transposed-convolution upsampling, concatenation with the skip, one stage per
resolution, 1×1 segmentation layers always built (so a state dict loads with deep supervision on or off), its
``forward`` (deep-supervision list, highest resolution first) and ``compute_conv_feature_map_size``. Only the
stage blocks differ, and ``UNetDecoder.__init__`` hard-wires dense ``StackedConvBlocks``, so the constructor
builds the same three module lists itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from nnunet_kd.students.separable_blocks import DepthwiseSeparableResidualBlock, StackedDepthwiseSeparableResidualBlocks


def per_stage(value: int | Sequence, n: int, name: str) -> list:
    """Broadcast a scalar to ``n`` entries, or check that a sequence has ``n`` entries (``ValueError`` otherwise)."""
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} must have {n} entries (one per stage), got {len(values)}: {values}")
    return values


class DepthwiseSeparableResidualEncoder(nn.Module):
    """Dense stem, then ``n_stages`` stages of depthwise-separable residual blocks.

    ``forward(x)`` with ``x`` of shape ``(B, input_channels, *S)`` returns the list of stage outputs (skips), stage
    ``i`` of shape ``(B, features_per_stage[i], *S / prod(strides[:i + 1]))``; the last one is the bottleneck.
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
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[_DropoutNd] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        features_per_stage = per_stage(features_per_stage, n_stages, "features_per_stage")
        kernel_sizes = per_stage(kernel_sizes, n_stages, "kernel_sizes")
        strides = per_stage(strides, n_stages, "strides")
        n_blocks_per_stage = per_stage(n_blocks_per_stage, n_stages, "n_blocks_per_stage")
        norm_kwargs = dict(conv_bias=conv_bias, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, dropout_op=dropout_op,
                           dropout_op_kwargs=dropout_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)

        # a depthwise convolution of the 1-2 input channels would see no cross-channel context: the stem stays dense
        self.stem = StackedConvBlocks(1, conv_op, input_channels, features_per_stage[0], kernel_sizes[0], 1,
                                      **norm_kwargs)
        stages = []
        channels = features_per_stage[0]
        for s in range(n_stages):
            stages.append(StackedDepthwiseSeparableResidualBlocks(
                n_blocks_per_stage[s], conv_op, channels, features_per_stage[s], kernel_sizes[s], strides[s],
                **norm_kwargs,
            ))
            channels = features_per_stage[s]
        self.stages = nn.Sequential(*stages)

        # what UNetDecoder reads from its encoder
        self.output_channels = features_per_stage
        self.strides = [maybe_convert_scalar_to_list(conv_op, s) for s in strides]
        self.kernel_sizes = kernel_sizes
        self.conv_op = conv_op
        self.conv_bias = conv_bias
        self.norm_op = norm_op
        self.norm_op_kwargs = norm_op_kwargs
        self.dropout_op = dropout_op
        self.dropout_op_kwargs = dropout_op_kwargs
        self.nonlin = nonlin
        self.nonlin_kwargs = nonlin_kwargs
        self.return_skips = True

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        total = self.stem.compute_conv_feature_map_size(input_size)
        for stage, stride in zip(self.stages, self.strides):
            total += stage.compute_conv_feature_map_size(input_size)
            input_size = [i // s for i, s in zip(input_size, stride)]
        return total


class DepthwiseSeparableUNetDecoder(UNetDecoder):
    """DNA's ``UNetDecoder`` whose stages are depthwise-separable residual blocks.

    ``stages[j]`` (j = 0 is the lowest resolution) maps the concatenation ``2 * C_j`` → ``C_j`` with one residual
    block of ``n_conv_per_stage[j]`` separable convolutions. ``forward(skips)`` returns the logits
    ``(B, num_classes, *S)`` or, with ``deep_supervision``, the list of ``n_stages - 1`` logits, highest resolution
    first (inherited).
    """

    def __init__(
        self,
        encoder: DepthwiseSeparableResidualEncoder,
        num_classes: int,
        n_conv_per_stage: int | Sequence[int],
        deep_supervision: bool,
    ) -> None:
        nn.Module.__init__(self)  # UNetDecoder.__init__ would build dense stages; we build the same lists ourselves
        self.deep_supervision = deep_supervision
        self.encoder = encoder
        self.num_classes = num_classes
        n_stages_encoder = len(encoder.output_channels)
        n_conv_per_stage = per_stage(n_conv_per_stage, n_stages_encoder - 1, "n_conv_per_stage_decoder")
        transpconv_op = get_matching_convtransp(conv_op=encoder.conv_op)
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, n_stages_encoder):
            channels_below = encoder.output_channels[-s]
            channels_skip = encoder.output_channels[-(s + 1)]
            stride = encoder.strides[-s]
            transpconvs.append(transpconv_op(channels_below, channels_skip, stride, stride, bias=encoder.conv_bias))
            stages.append(DepthwiseSeparableResidualBlock(
                encoder.conv_op, 2 * channels_skip, channels_skip, encoder.kernel_sizes[-(s + 1)], 1,
                num_convs=n_conv_per_stage[s - 1], conv_bias=encoder.conv_bias, norm_op=encoder.norm_op,
                norm_op_kwargs=encoder.norm_op_kwargs, dropout_op=encoder.dropout_op,
                dropout_op_kwargs=encoder.dropout_op_kwargs, nonlin=encoder.nonlin, nonlin_kwargs=encoder.nonlin_kwargs,
            ))
            seg_layers.append(encoder.conv_op(channels_skip, num_classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)
