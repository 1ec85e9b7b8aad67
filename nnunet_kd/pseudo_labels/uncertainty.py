"""Confidence-aware pseudo-labels: voxels where the teacher ensemble is unsure get nnU-Net's ignore label.

A weak case's box says where tumour may be; inside the (dilated) boxes the ensemble's tumour probability decides.
Where that probability lies strictly between two thresholds the pseudo-label does not guess: the voxel gets the
ignore label, which nnU-Net's Dice + CE loss skips (the weakly supervised KD paper masks its low-confidence
pseudo-label pixels the same way). Outside the boxes the pseudo-label stays background (certain), and a case
without a box mask has the rule applied everywhere. nnU-Net wants the ignore label to be the highest label: with
``C`` output classes (labels ``0 .. C-1``) it is ``C``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_kd.errors import ConfigurationError


@dataclass(frozen=True)
class UncertainBand:
    """Tumour probabilities strictly between ``low`` and ``high`` are unsure."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 1.0:
            raise ConfigurationError(f"--ignore-uncertain thresholds must satisfy 0 <= LOW < HIGH <= 1, got "
                                     f"{self.low} and {self.high}")


def uncertain_voxels(probabilities: np.ndarray, band: UncertainBand, region: np.ndarray | None = None) -> np.ndarray:
    """``(z, y, x)`` bool: the tumour probability ``1 − p(background)`` of ``(C, z, y, x)`` probabilities lies in
    the open band, inside ``region`` (``(z, y, x)`` bool, e.g. the dilated boxes; ``None``: everywhere)."""
    tumour = 1.0 - probabilities[0].astype(np.float32, copy=False)
    unsure = (tumour > band.low) & (tumour < band.high)
    return unsure if region is None else unsure & np.asarray(region, dtype=bool)


def with_ignore_label(labels: np.ndarray, unsure: np.ndarray, ignore_label: int) -> np.ndarray:
    """A copy of ``labels`` with ``ignore_label`` on the unsure voxels."""
    result = labels.copy()
    result[unsure] = ignore_label
    return result
