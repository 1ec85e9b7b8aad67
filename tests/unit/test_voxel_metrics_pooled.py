"""Pooled foreground Dice of several label maps (the validation-curve measure), with the ignore label."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_kd.metrics import pooled_dice


def test_pooled_dice_counts_all_pairs_together_and_skips_ignored_reference_voxels():
    ref_a, pred_a = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])  # TP 1, FN 1, FP 1
    ref_b, pred_b = np.array([2, 2, 2, 0]), np.array([1, 1, 1, 1])  # any label > 0 is foreground: TP 3, FP 1
    assert pooled_dice([(ref_a, pred_a), (ref_b, pred_b)]) == pytest.approx(2 * 4 / (2 * 4 + 2 + 1))
    # label 2 as ignore: case b's three reference-2 voxels are left out: TP 0, FP 1 there
    assert pooled_dice([(ref_a, pred_a), (ref_b, pred_b)], ignore_label=2) == pytest.approx(2 / (2 + 2 + 1))
    assert math.isnan(pooled_dice([(np.zeros(3), np.zeros(3))]))
    assert pooled_dice([(np.ones(3), np.zeros(3))]) == 0.0
