"""Lower-resolution students: the parent configuration at a coarser target spacing.

A student that sees the image at ``f`` times the parent's voxel size has about ``f³`` fewer voxels to cover, so its
sliding window needs about ``f³`` fewer windows of the same size. nnU-Net does the rest itself: the configuration
names its own ``spacing`` and ``data_identifier`` (``nnUNetv2_preprocess -c <student>`` writes its own preprocessed
data), and ``nnUNetv2_predict`` resamples the prediction back to the image's grid. The patch is the parent's, cut to
the coarser median image where that is smaller (rounded up to a multiple of the network's total stride per axis).
Distillation needs a teacher at the same spacing (the distillation trainers check it).

Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from nnunet_kd.errors import ConfigurationError


def total_strides(strides: Sequence[Sequence[int] | int], n_axes: int) -> list[int]:
    """Per axis, the product of the stage strides (a scalar stride applies to every axis)."""
    total = [1] * n_axes
    for stride in strides:
        per_axis = [stride] * n_axes if isinstance(stride, int) else list(stride)
        total = [t * int(s) for t, s in zip(total, per_axis, strict=True)]
    return total


def coarser_resolution_entries(parent_configuration: dict[str, Any], factor: float, data_identifier: str,
                               strides: Sequence[Sequence[int] | int] | None = None) -> dict[str, Any]:
    """The configuration entries of the parent at ``factor`` times its spacing.

    Args:
        parent_configuration: the resolved parent (``spacing``, ``patch_size``, ``median_image_size_in_voxels``,
            ``architecture``).
        factor: > 1; every axis of the spacing is multiplied by it.
        data_identifier: the student's own preprocessed-data folder name (nnU-Net: ``<plans>_<configuration>``).
        strides: the student network's stage strides (default: the parent network's).

    Returns:
        ``{"spacing", "median_image_size_in_voxels", "patch_size", "data_identifier"}`` (no median, and the parent's
        patch, when the parent has no median image size).

    Example: spacing ``[2.5, 0.8, 0.8]``, median ``[100, 400, 400]``, patch ``[80, 160, 160]``, total stride
    ``[16, 32, 32]``, factor 2: spacing ``[5.0, 1.6, 1.6]``, median ``[50, 200, 200]``, patch
    ``[64, 160, 160]`` (``ceil(50 / 16) * 16 = 64`` is below 80).
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1.0 or math.isinf(factor):
        raise ConfigurationError(f"--spacing-factor must be a number above 1 (the student's voxels are that many "
                                 f"times the parent's), got {factor}")
    entries: dict[str, Any] = {"spacing": [float(s) * factor for s in parent_configuration["spacing"]]}
    patch = list(parent_configuration["patch_size"])
    if "median_image_size_in_voxels" in parent_configuration:  # plans written by nnU-Net have it; without: no cut
        median = [max(1, round(m / factor)) for m in parent_configuration["median_image_size_in_voxels"]]
        if strides is None:
            strides = parent_configuration["architecture"]["arch_kwargs"]["strides"]
        total = total_strides(strides, len(patch))
        patch = [min(p, math.ceil(m / t) * t) for p, m, t in zip(patch, median, total, strict=True)]
        entries["median_image_size_in_voxels"] = median
    return {**entries, "patch_size": patch, "data_identifier": data_identifier}
