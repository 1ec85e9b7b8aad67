"""Depthwise-separable convolution and the residual block built from it.

A depthwise-separable convolution factors a dense k×k×k convolution (``C_in·C_out·k³`` weights) into a depthwise
k×k×k convolution (one filter per input channel, ``groups == C_in``: ``C_in·k³`` weights) followed by a pointwise
1×1×1 convolution (``C_in·C_out`` weights). :class:`DepthwiseSeparableConv` has the constructor of an ``nn.ConvNd``
after its first argument, so ``functools.partial(DepthwiseSeparableConv, nn.Conv3d)`` can be handed to
dynamic-network-architectures' ``ConvDropoutNormReLU`` as its ``conv_op``: the block keeps that library's
conv → dropout → norm → nonlinearity ordering.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

IntOrSequence = int | Sequence[int]


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k×k(×k) convolution (``groups == in_channels``) followed by a pointwise 1×1(×1) convolution.

    Input ``(B, in_channels, *spatial)``, output ``(B, out_channels, *spatial / stride)``. The stride and dilation
    act in the depthwise convolution; the bias (if any) sits on the pointwise one.
    """

    def __init__(
        self,
        conv_op: type[_ConvNd],
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSequence,
        stride: IntOrSequence = 1,
        padding: IntOrSequence = 0,
        dilation: IntOrSequence = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depthwise = conv_op(
            in_channels, in_channels, kernel_size, stride, padding=padding, dilation=dilation, groups=in_channels,
            bias=False,
        )
        self.pointwise = conv_op(in_channels, out_channels, 1, 1, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def separable_conv_op(conv_op: type[_ConvNd]) -> partial:
    """A ``conv_op`` factory for DNA blocks that builds :class:`DepthwiseSeparableConv` of ``conv_op``'s dimension."""
    return partial(DepthwiseSeparableConv, conv_op)


class DepthwiseSeparableResidualBlock(nn.Module):
    """Residual block whose k×k(×k) convolutions are depthwise-separable (the U-NetDw block).

    Main path: ``num_convs`` × (separable conv → dropout → norm → nonlinearity), the first one with ``stride``; the
    last one has no nonlinearity before the addition. Skip path (ResNet-D style, as DNA's ``BasicBlockD``): average
    pooling when strided, then a dense 1×1(×1) convolution + norm when the channel count changes. The nonlinearity is
    applied after the addition. Input ``(B, input_channels, *S)``, output ``(B, output_channels, *S / stride)``.
    """

    def __init__(
        self,
        conv_op: type[_ConvNd],
        input_channels: int,
        output_channels: int,
        kernel_size: IntOrSequence,
        stride: IntOrSequence = 1,
        num_convs: int = 2,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[_DropoutNd] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"a residual block needs at least one convolution, got num_convs={num_convs}")
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.stride = list(maybe_convert_scalar_to_list(conv_op, stride))
        kernel_size = list(maybe_convert_scalar_to_list(conv_op, kernel_size))
        unit_stride = [1] * len(self.stride)
        nonlin_kwargs = nonlin_kwargs or {}
        separable = separable_conv_op(conv_op)  # sizes go in as lists: DNA only needs the class for scalars
        convs = []
        for i in range(num_convs):
            last = i == num_convs - 1
            convs.append(
                ConvDropoutNormReLU(
                    separable, input_channels if i == 0 else output_channels, output_channels, kernel_size,
                    self.stride if i == 0 else unit_stride, conv_bias, norm_op, norm_op_kwargs,
                    dropout_op, dropout_op_kwargs, None if last else nonlin, None if last else nonlin_kwargs,
                )
            )
        self.convs = nn.Sequential(*convs)

        has_stride = any(s != 1 for s in self.stride)
        skip: list[nn.Module] = []
        if has_stride:
            pool_op = get_matching_pool_op(conv_op=conv_op, adaptive=False, pool_type="avg")
            skip.append(pool_op(self.stride, self.stride))
        if input_channels != output_channels:
            skip.append(
                ConvDropoutNormReLU(conv_op, input_channels, output_channels, 1, 1, False, norm_op, norm_op_kwargs)
            )
        self.skip = nn.Sequential(*skip) if skip else nn.Identity()
        self.nonlin = nonlin(**nonlin_kwargs) if nonlin is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.convs(x) + self.skip(x))

    @property
    def last_norm(self) -> nn.Module | None:
        """The norm before the addition (zero-initialised by the networks' ``initialize``), if there is one."""
        return getattr(self.convs[-1], "norm", None)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Number of feature-map elements this block stores (batch 1), for nnU-Net's VRAM estimate.

        Counts the depthwise and pointwise outputs of every separable convolution and the skip projection.
        """
        if len(input_size) != len(self.stride):
            raise ValueError(f"give the spatial size only (len {len(self.stride)}), got {tuple(input_size)}")
        size = [i // s for i, s in zip(input_size, self.stride)]
        voxels = np.prod(size, dtype=np.int64)
        total = np.int64(0)
        channels_in = self.input_channels
        for _ in self.convs:
            total += voxels * (channels_in + self.output_channels)  # depthwise output + pointwise output
            channels_in = self.output_channels
        if not isinstance(self.skip, nn.Identity):
            total += voxels * self.output_channels
        return total


class StackedDepthwiseSeparableResidualBlocks(nn.Module):
    """``n_blocks`` :class:`DepthwiseSeparableResidualBlock` in a row; only the first has ``initial_stride``.

    Input ``(B, input_channels, *S)``, output ``(B, output_channels, *S / initial_stride)``.
    """

    def __init__(
        self,
        n_blocks: int,
        conv_op: type[_ConvNd],
        input_channels: int,
        output_channels: int,
        kernel_size: IntOrSequence,
        initial_stride: IntOrSequence,
        num_convs_per_block: int = 2,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[_DropoutNd] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        common = dict(
            num_convs=num_convs_per_block, conv_bias=conv_bias, norm_op=norm_op, norm_op_kwargs=norm_op_kwargs,
            dropout_op=dropout_op, dropout_op_kwargs=dropout_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs,
        )
        self.blocks = nn.Sequential(
            DepthwiseSeparableResidualBlock(conv_op, input_channels, output_channels, kernel_size, initial_stride,
                                            **common),
            *[DepthwiseSeparableResidualBlock(conv_op, output_channels, output_channels, kernel_size, 1, **common)
              for _ in range(1, n_blocks)],
        )
        self.initial_stride = maybe_convert_scalar_to_list(conv_op, initial_stride)
        self.output_channels = output_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        total = self.blocks[0].compute_conv_feature_map_size(input_size)
        size = [i // s for i, s in zip(input_size, self.initial_stride)]
        for block in self.blocks[1:]:
            total += block.compute_conv_feature_map_size(size)
        return total
