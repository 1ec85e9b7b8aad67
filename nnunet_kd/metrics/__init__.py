"""Segmentation metrics of the papers: voxel-wise overlap, HD95 in mm, object-wise detection and DSC-TP.

Arrays are SimpleITK order ``(z, y, x)``; spacing is in mm per array axis. Undefined values (zero denominators,
HD95 with an empty mask) are ``nan``: see :mod:`nnunet_kd.metrics.voxel` for the one empty-mask rule.
"""

from __future__ import annotations

from nnunet_kd.metrics.case import LOWER_IS_BETTER, METRIC_NAMES, case_metrics, foreground_mask
from nnunet_kd.metrics.objects import DEFAULT_OVERLAP_THRESHOLD, ObjectMatch, match_objects
from nnunet_kd.metrics.surface import directed_surface_distances, hausdorff_distance_95, surface
from nnunet_kd.metrics.voxel import VoxelCounts, pooled_dice, voxel_counts, voxel_metrics

__all__ = [
    "DEFAULT_OVERLAP_THRESHOLD",
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "ObjectMatch",
    "VoxelCounts",
    "case_metrics",
    "directed_surface_distances",
    "foreground_mask",
    "hausdorff_distance_95",
    "match_objects",
    "pooled_dice",
    "surface",
    "voxel_counts",
    "voxel_metrics",
]
