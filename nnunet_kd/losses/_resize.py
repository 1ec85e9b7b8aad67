"""Spatial resizing shared by the feature losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resize_linear(x: Tensor, spatial: Sequence[int]) -> Tensor:
    """(Bi/tri)linear resize of ``(B, C, *spatial_in)`` to ``(B, C, *spatial)``; a no-op when already that size."""
    spatial = tuple(int(s) for s in spatial)
    if tuple(x.shape[2:]) == spatial:
        return x
    if len(spatial) != x.ndim - 2 or len(spatial) not in _LINEAR_MODES:
        raise ValueError(f"cannot resize a tensor of shape {tuple(x.shape)} to spatial size {spatial}")
    return F.interpolate(x, size=spatial, mode=_LINEAR_MODES[len(spatial)], align_corners=False)


def resize_labels(labels: Tensor, spatial: Sequence[int]) -> Tensor:
    """Resize an integer label map ``(B, 1, *spatial_in)`` with ``nearest-exact``, as nnU-Net's deep-supervision
    target downsampling does; a no-op when already that size."""
    spatial = tuple(int(s) for s in spatial)
    if tuple(labels.shape[2:]) == spatial:
        return labels
    if len(spatial) != labels.ndim - 2:
        raise ValueError(f"cannot resize labels of shape {tuple(labels.shape)} to spatial size {spatial}")
    return F.interpolate(labels.float(), size=spatial, mode="nearest-exact").to(labels.dtype)
