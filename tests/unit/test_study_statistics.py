"""Study statistics against hand-computed values: Wilcoxon, bootstrap intervals, seed means, claim verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_kd.errors import InputError
from nnunet_kd.evaluation.study_statistics import (
    PairedComparison,
    bootstrap_ci,
    claim_verdict,
    compare,
    converged,
    curve_noise,
    final_trend,
    plateau_change,
    seed_means,
)


def rows_of(model: str, values: dict[tuple[int, str], float]) -> list[dict]:
    return [{"model": model, "seed": seed, "case": case, "dice": v} for (seed, case), v in values.items()]


def test_wilcoxon_of_a_small_paired_sample_is_the_exact_hand_computed_p_value():
    # differences b - a = 1, 2, -3, 4, 5: ranks 1..5, W- = 3; of the 32 equally likely sign patterns, 5 have a
    # negative rank sum <= 3 ({}, {1}, {2}, {3}, {1, 2}), so the two-sided p is 2 * 5 / 32
    a = {(0, f"c{i}"): 0.5 for i in range(5)}
    b = {(0, f"c{i}"): 0.5 + d for i, d in enumerate([0.01, 0.02, -0.03, 0.04, 0.05])}
    result = compare(rows_of("a", a) + rows_of("b", b), "a", "b")
    assert result.p_wilcoxon == pytest.approx(2 * 5 / 32)
    assert result.n_pairs == 5 and result.median_difference == pytest.approx(0.02)
    assert result.mean_difference == pytest.approx(0.018)


def test_bootstrap_interval_contains_the_true_difference_of_a_constructed_case():
    from scipy.stats import norm

    # 399 differences at the quantiles of N(5, 1), shuffled: the median difference is 5 by construction
    differences = np.random.default_rng(7).permutation(5.0 + norm.ppf(np.linspace(0.0025, 0.9975, 399)))
    low, high = bootstrap_ci(differences, seed=1)
    assert low < 5.0 < high and high - low < 0.5
    assert bootstrap_ci(differences, seed=1) == (low, high)  # a fixed seed recomputes the same interval
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0) and all(math.isnan(v) for v in bootstrap_ci([]))


def test_comparison_pools_seeds_and_pairs_only_cases_scored_for_both():
    a = {(0, "c0"): 0.2, (0, "c1"): 0.4, (1, "c0"): 0.6, (1, "c9"): 0.9}
    b = {(0, "c0"): 0.5, (0, "c1"): 0.5, (1, "c0"): 0.7, (2, "c0"): 0.1}
    result = compare(rows_of("a", a) + rows_of("b", b), "a", "b", n_resamples=200)
    assert result.n_pairs == 3  # (0, c0), (0, c1), (1, c0); "c0" of seed 1 is not "c0" of seed 0
    assert result.median_difference == pytest.approx(0.1) and result.mean_difference == pytest.approx(0.5 / 3)
    with pytest.raises(InputError, match="no dice of model 'c'"):
        compare(rows_of("a", a), "a", "c")


def test_seed_means_are_the_mean_and_sample_std_of_the_per_seed_means():
    rows = rows_of("m", {(0, "c0"): 0.2, (0, "c1"): 0.4, (1, "c0"): 0.5, (1, "c1"): 0.7, (2, "c0"): 0.9})
    rows.append({"model": "m", "seed": 2, "case": "c1", "dice": None})  # undefined: left out
    mean, std, seeds = seed_means(rows, "m")
    assert seeds == 3 and mean == pytest.approx((0.3 + 0.6 + 0.9) / 3) and std == pytest.approx(0.3)


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.11, 0.2, "reproduced"), (0.1, 0.2, "reproduced"),
                                                      (0.05, 0.2, "inconclusive"), (-0.1, 0.09, "not reproduced")])
def test_a_claim_is_reproduced_only_when_its_whole_interval_clears_the_threshold(low, high, verdict):
    comparison = PairedComparison("a", "b", "dice", 10, 0.1, 0.1, low, high, 0.01)
    assert claim_verdict(comparison, at_least=0.1) == verdict


def test_final_trend_is_the_least_squares_change_over_the_last_fifth_of_the_epochs():
    # 10 epochs: the window is the last 2; 15 epochs: the last 3, [0.80, 0.81, 0.83] -> slope 0.015, change 0.03
    assert final_trend([0.1] * 8 + [0.5, 0.6]) == pytest.approx(0.1)
    assert final_trend([0.0] * 12 + [0.80, 0.81, 0.83]) == pytest.approx(0.03)
    assert final_trend([0.2, 0.9, 0.7, 0.8, 0.9, 0.8, 0.7], fraction=0.5) == pytest.approx(-0.12)  # last 4: slope -0.04
    assert math.isnan(final_trend([0.5]))
    # measured every 2 epochs: 10 epochs, window 2 holds one value -> undefined; window of 4 (fraction 0.4): epochs
    # 6 and 8 (indices 7 and 9) measured, slope (0.9 - 0.8) / 2 = 0.05 per epoch over 3 epochs = 0.15
    sparse = [None, 0.3, None, 0.5, None, 0.7, None, 0.8, None, 0.9]
    assert math.isnan(final_trend(sparse[:-1] + [None]))
    assert final_trend(sparse, fraction=0.4) == pytest.approx(0.15)


def test_plateau_change_is_the_last_fifths_mean_minus_the_fifth_before():
    # 10 epochs: windows of 2; last [0.80, 0.82] -> 0.81, before [0.70, 0.72] -> 0.71
    assert plateau_change([0.1] * 6 + [0.70, 0.72, 0.80, 0.82]) == pytest.approx(0.10)
    # measured every 2 epochs, windows of 4 (fraction 0.4): last (indices 6-9) 0.8, 0.9 -> 0.85; before (2-5) 0.5,
    # 0.7 -> 0.6; windows of 2: 0.9 - 0.8
    sparse = [None, 0.3, None, 0.5, None, 0.7, None, 0.8, None, 0.9]
    assert plateau_change(sparse, fraction=0.4) == pytest.approx(0.25)
    assert plateau_change(sparse) == pytest.approx(0.10)
    assert math.isnan(plateau_change([0.5, 0.6, 0.7]))  # shorter than two windows of 2
    assert math.isnan(plateau_change([0.5, 0.6, None, None]))  # the last window holds no value


def test_a_curve_converged_when_its_plateau_moves_less_than_the_tolerance_either_way():
    assert converged([0.1, 0.5, 0.80, 0.81, 0.80, 0.805])  # 0.8025 - 0.805 = -0.0025
    assert not converged([0.1, 0.5, 0.7, 0.75, 0.8, 0.82])  # 0.81 - 0.725 = +0.085
    assert not converged([0.9, 0.9, 0.9, 0.9, 0.88, 0.85])  # falling by 3.5 points: not settled either
    assert converged([0.1, 0.5, 0.7, 0.75, 0.8, 0.82], tolerance=0.1) and not converged([0.5])


def test_curve_noise_is_the_spread_around_the_line_through_the_tail():
    # last 4 of 10 values (fraction 0.4): 0.80, 0.82, 0.80, 0.82 around the line 0.804 + 0.004 x: residuals
    # -0.004, +0.012, -0.012, +0.004 (sum of squares 0.00032, 2 degrees of freedom) -> sqrt(0.00016)
    assert curve_noise([0.1] * 6 + [0.80, 0.82, 0.80, 0.82]) == pytest.approx(math.sqrt(0.00016))
    assert curve_noise([0.1] * 6 + [0.5, 0.6, 0.7, 0.8]) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(curve_noise([0.5, None, 0.6]))


def test_the_verdict_can_be_read_from_the_mean_differences_interval():
    # a median interval wholly below the threshold, a mean interval wholly above (a few large differences)
    comparison = PairedComparison("a", "b", "dice", 20, 0.16, 0.04, 0.006, 0.07, 0.01, 0.11, 0.21)
    assert claim_verdict(comparison, at_least=0.1) == "not reproduced"
    assert claim_verdict(comparison, at_least=0.1, statistic="mean") == "reproduced"
    no_mean = PairedComparison("a", "b", "dice", 20, 0.16, 0.04, 0.006, 0.07, 0.01)
    assert claim_verdict(no_mean, at_least=0.1, statistic="mean") == "inconclusive"


def test_comparison_carries_a_bootstrap_interval_of_the_mean_difference():
    # 19 differences of 0 and one of 1: mean 0.05, median 0; the mean's interval holds 0.05, the median's is [0, 0]
    a = {(0, f"c{i}"): 0.5 for i in range(20)}
    b = {**a, (0, "c0"): 1.5}
    result = compare(rows_of("a", a) + rows_of("b", b), "a", "b", n_resamples=500)
    assert result.mean_difference == pytest.approx(0.05) and (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.mean_ci_low <= 0.05 <= result.mean_ci_high and result.mean_ci_high > 0
