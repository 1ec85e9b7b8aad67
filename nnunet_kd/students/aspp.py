"""Atrous spatial pyramid pooling (ASPP) for the bottleneck of a U-Net.

Parallel branches see the bottleneck at several receptive fields (DeepLab v3): a 1×1(×1) convolution, one
k×k(×k) depthwise-separable convolution per dilation rate, and optionally an image-pooling branch (global average →
1×1 convolution → nonlinearity, broadcast back to the feature-map size; no norm there, instance norm of a single
voxel is undefined). The branch outputs are concatenated and projected back to the input channel count by a 1×1
convolution + norm + nonlinearity, so the module is shape-preserving: ``(B, C, *S) -> (B, C, *S)``.

A dilation rate ``r`` is only useful when the bottleneck has more than ``r`` voxels along every axis (otherwise all
off-centre taps read padding): :func:`check_aspp_rates` checks that against the bottleneck size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn
from torch.nn.modules.conv import _ConvNd

from nnunet_kd.students.separable_blocks import DepthwiseSeparableConv

DEFAULT_ASPP_RATES = (1, 2, 3)


def check_aspp_rates(rates: Sequence[int], bottleneck_size: Sequence[int] | None = None) -> None:
    """Raise ``ValueError`` for rates that are not positive integers or that the bottleneck cannot use.

    Args:
        rates: dilation rates, one branch each.
        bottleneck_size: spatial size of the bottleneck feature map; every rate must be smaller than its smallest axis.
    """
    if len(rates) == 0:
        raise ValueError("ASPP needs at least one dilation rate")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
            raise ValueError(f"ASPP dilation rates must be positive integers, got {list(rates)}")
    if len(set(rates)) != len(rates):
        raise ValueError(f"ASPP dilation rates must be distinct, got {list(rates)}")
    if bottleneck_size is not None and max(rates) >= min(bottleneck_size):
        raise ValueError(
            f"ASPP dilation rate {max(rates)} is too large for a bottleneck feature map of size "
            f"{tuple(int(s) for s in bottleneck_size)}: every rate must be < {min(bottleneck_size)}"
        )


class AtrousSpatialPyramidPooling(nn.Module):
    """ASPP: ``(B, channels, *S) -> (B, channels, *S)``.

    Attributes:
        branches: ``branches[0]`` is the 1×1 branch, ``branches[1 + i]`` the separable branch with ``rates[i]``.
        image_pooling: the global-context branch, or None.
        projection: 1×1 convolution + norm + nonlinearity from ``n_branches * branch_channels`` to ``channels``.
    """

    def __init__(
        self,
        conv_op: type[_ConvNd],
        channels: int,
        rates: Sequence[int] = DEFAULT_ASPP_RATES,
        kernel_size: int | Sequence[int] = 3,
        branch_channels: int | None = None,
        image_pooling: bool = True,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        check_aspp_rates(rates)
        self.rates = tuple(int(r) for r in rates)
        self.channels = channels
        self.branch_channels = branch_channels or channels
        kernel_size = maybe_convert_scalar_to_list(conv_op, kernel_size)
        nonlin_kwargs = nonlin_kwargs or {}
        common = dict(norm_op=norm_op, norm_op_kwargs=norm_op_kwargs, nonlin=nonlin, nonlin_kwargs=nonlin_kwargs)

        branches: list[nn.Module] = [
            ConvDropoutNormReLU(conv_op, channels, self.branch_channels, 1, 1, conv_bias, **common)
        ]
        for rate in self.rates:
            conv = DepthwiseSeparableConv(
                conv_op, channels, self.branch_channels, kernel_size, 1,
                padding=[rate * (k - 1) // 2 for k in kernel_size], dilation=rate, bias=conv_bias,
            )
            layers: list[nn.Module] = [conv]
            if norm_op is not None:
                layers.append(norm_op(self.branch_channels, **(norm_op_kwargs or {})))
            if nonlin is not None:
                layers.append(nonlin(**nonlin_kwargs))
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)

        self.image_pooling: nn.Module | None = None
        if image_pooling:
            pool = get_matching_pool_op(conv_op=conv_op, adaptive=True, pool_type="avg")(1)
            layers = [pool, conv_op(channels, self.branch_channels, 1, 1, 0, bias=True)]
            if nonlin is not None:
                layers.append(nonlin(**nonlin_kwargs))
            self.image_pooling = nn.Sequential(*layers)

        n_branches = len(self.branches) + int(image_pooling)
        self.projection = ConvDropoutNormReLU(conv_op, n_branches * self.branch_channels, channels, 1, 1, conv_bias,
                                              **common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        if self.image_pooling is not None:
            outputs.append(self.image_pooling(x).expand(-1, -1, *x.shape[2:]))
        return self.projection(torch.cat(outputs, dim=1))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Feature-map elements (batch 1): branch outputs (separable: depthwise + pointwise), concat, projection."""
        voxels = np.prod(list(input_size), dtype=np.int64)
        n_branches = len(self.branches) + int(self.image_pooling is not None)
        total = voxels * self.branch_channels  # 1×1 branch
        total += len(self.rates) * voxels * (self.channels + self.branch_channels)
        total += voxels * n_branches * self.branch_channels  # concatenation (pooling branch broadcast included)
        total += voxels * self.channels  # projection
        return total
