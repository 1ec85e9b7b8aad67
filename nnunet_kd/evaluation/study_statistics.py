"""Statistics of a multi-seed study: paired comparisons pooled over seeds, bootstrap confidence intervals, seed means.

A study row is one model, seed and test case: ``{"model", "seed", "case", "dice", ...}`` (metrics as fractions).
Two models are compared on the (seed, case) pairs both were scored on; the difference is ``b − a``:

- the Wilcoxon signed-rank test of the differences (two-sided, :func:`~nnunet_kd.evaluation.paired.wilcoxon_p`);
- the median difference with a percentile bootstrap confidence interval (``scipy.stats.bootstrap``, resampling the
  pairs with replacement, a fixed seed so that the figures can be recomputed), and the mean difference with its
  interval (the papers report mean Dice; a few missed tumours move the mean far from the median);
- per model, the mean and sample standard deviation over seeds of the per-seed means (the spread a reader would
  see by rerunning the study with another seed).

A claim such as "SO − baseline ≥ +10 points" is *reproduced* when the whole confidence interval of the median
difference lies at or above the threshold, *not reproduced* when it lies wholly below, and *inconclusive* otherwise;
the same verdict can be read from the mean difference's interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnunet_kd.errors import InputError
from nnunet_kd.evaluation.paired import wilcoxon_p

StudyRow = dict[str, Any]


@dataclass(frozen=True)
class PairedComparison:
    """``b − a`` over the (seed, case) pairs of two models."""

    a: str
    b: str
    metric: str
    n_pairs: int
    mean_difference: float
    median_difference: float
    ci_low: float
    ci_high: float
    p_wilcoxon: float
    mean_ci_low: float = math.nan  # bootstrap interval of the mean difference (the papers report means)
    mean_ci_high: float = math.nan


def bootstrap_ci(values: Sequence[float], statistic: Callable[..., Any] = np.median, confidence: float = 0.95,
                 n_resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` of ``values`` (``nan``s dropped).

    Returns ``(nan, nan)`` for no value; the single value twice for one value or identical values.
    """
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = bootstrap((data,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                       method="percentile", random_state=np.random.default_rng(seed), vectorized=True, axis=-1)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_values(rows: Sequence[StudyRow], a: str, b: str, metric: str = "dice") -> tuple[np.ndarray, np.ndarray]:
    """The metric of ``a`` and of ``b`` on every (seed, case) both were scored on with a defined value."""
    by_model: dict[str, dict[tuple[Any, Any], float]] = {a: {}, b: {}}
    for row in rows:
        if row["model"] in by_model and row.get(metric) is not None and not math.isnan(float(row[metric])):
            by_model[row["model"]][(row["seed"], row["case"])] = float(row[metric])
    for model, values in by_model.items():
        if not values:
            raise InputError(f"study: no {metric} of model {model!r}")
    common = sorted(set(by_model[a]) & set(by_model[b]), key=str)
    return (np.array([by_model[a][k] for k in common]), np.array([by_model[b][k] for k in common]))


def compare(rows: Sequence[StudyRow], a: str, b: str, metric: str = "dice", confidence: float = 0.95,
            n_resamples: int = 10000, seed: int = 0) -> PairedComparison:
    """Pooled paired comparison ``b − a`` (see the module docstring)."""
    values_a, values_b = paired_values(rows, a, b, metric)
    differences = values_b - values_a
    if differences.size == 0:
        raise InputError(f"study: models {a!r} and {b!r} share no scored (seed, case)")
    low, high = bootstrap_ci(differences, np.median, confidence, n_resamples, seed)
    mean_low, mean_high = bootstrap_ci(differences, np.mean, confidence, n_resamples, seed)
    return PairedComparison(a, b, metric, int(differences.size), float(differences.mean()),
                            float(np.median(differences)), low, high, wilcoxon_p(differences), mean_low, mean_high)


def seed_means(rows: Sequence[StudyRow], model: str, metric: str = "dice") -> tuple[float, float, int]:
    """``(mean, sample std, number of seeds)`` of the per-seed means of ``model`` (std ``nan`` for one seed)."""
    per_seed: dict[Any, list[float]] = {}
    for row in rows:
        if row["model"] == model and row.get(metric) is not None and not math.isnan(float(row[metric])):
            per_seed.setdefault(row["seed"], []).append(float(row[metric]))
    if not per_seed:
        raise InputError(f"study: no {metric} of model {model!r}")
    means = np.array([np.mean(v) for v in per_seed.values()])
    std = float(means.std(ddof=1)) if means.size > 1 else math.nan
    return float(means.mean()), std, int(means.size)


def claim_verdict(comparison: PairedComparison, at_least: float, statistic: str = "median") -> str:
    """``reproduced`` / ``not reproduced`` / ``inconclusive`` for "``statistic`` of ``b − a`` ≥ ``at_least``", judged
    by that statistic's confidence interval (``median``, the default, or ``mean``)."""
    low, high = ((comparison.ci_low, comparison.ci_high) if statistic == "median"
                 else (comparison.mean_ci_low, comparison.mean_ci_high))
    if math.isnan(low):
        return "inconclusive"
    if low >= at_least:
        return "reproduced"
    if high < at_least:
        return "not reproduced"
    return "inconclusive"


def curve_values(curve: Sequence[float | None]) -> np.ndarray:
    """A per-epoch curve as a float array, ``nan`` in the epochs without a measurement (``None``)."""
    return np.array([math.nan if v is None else v for v in curve], dtype=float)


def final_trend(curve: Sequence[float | None], fraction: float = 0.2) -> float:
    """Change of the least-squares line through the last ``fraction`` of a per-epoch curve, over that span.

    The window is the last ``ceil(fraction * len(curve))`` epochs, at least 2; epochs without a value (``None`` or
    ``nan``: a curve measured every few epochs) are left out of the fit, which needs 2 values. For ``[.., 0.80,
    0.81, 0.83]`` with a window of 3 the slope is 0.015 per epoch and the change 0.03. ``nan`` when the window holds
    fewer than 2 values.
    """
    values = curve_values(curve)
    window = max(2, math.ceil(fraction * values.size))
    epochs = np.arange(values.size, dtype=float)[-window:]
    tail = values[-window:]
    defined = ~np.isnan(tail)
    if defined.sum() < 2:
        return math.nan
    slope = np.polyfit(epochs[defined], tail[defined], 1)[0]
    return float(slope * (min(window, values.size) - 1))


def plateau_change(curve: Sequence[float | None], fraction: float = 0.2) -> float:
    """Mean of the last ``fraction`` of a per-epoch curve minus the mean of the ``fraction`` just before it.

    Both windows are ``ceil(fraction * len(curve))`` epochs long, at least 2; epochs without a value (``None`` or
    ``nan``) are left out of the means. For ``[.., 0.70, 0.72, 0.80, 0.82]`` with windows of 2 the change is
    0.81 − 0.71 = 0.10. ``nan`` when the curve is shorter than the two windows or a window holds no value.

    Why block means rather than :func:`final_trend`: the whole-case validation Dice of the study's models varies by
    0.5–3 points around its trend from one measurement to the next, and the least-squares change over 10 points has
    a standard error about equal to that noise, so a flat curve with 1 point of noise would miss a 1-point tolerance
    about one time in three; the difference of two means of 10 points has a standard error of 0.45 times the noise.
    """
    values = curve_values(curve)
    window = max(2, math.ceil(fraction * values.size))
    if values.size < 2 * window:
        return math.nan
    last, before = values[-window:], values[-2 * window:-window]
    if np.isnan(last).all() or np.isnan(before).all():
        return math.nan
    return float(np.nanmean(last) - np.nanmean(before))


def curve_noise(curve: Sequence[float | None], fraction: float = 0.4) -> float:
    """Sample standard deviation of a curve's values around the least-squares line through its last ``fraction``
    (the measurement-to-measurement noise the convergence criterion has to see through); ``nan`` below 3 values."""
    values = curve_values(curve)
    tail = values[-max(3, math.ceil(fraction * values.size)):]
    epochs = np.arange(tail.size, dtype=float)[~np.isnan(tail)]
    tail = tail[~np.isnan(tail)]
    if tail.size < 3:
        return math.nan
    residuals = tail - np.polyval(np.polyfit(epochs, tail, 1), epochs)
    return float(np.sqrt((residuals ** 2).sum() / (tail.size - 2)))


#: what :func:`converged` checks with its defaults, in words (recorded in a study's results, printed by its report)
CONVERGENCE_CRITERION = ("the mean validation-case Dice of the last 20 % of the epochs is within 1 Dice point of the "
                         "mean of the 20 % before")


def converged(curve: Sequence[float | None], tolerance: float = 0.01, fraction: float = 0.2) -> bool:
    """The curve's :func:`plateau_change` is less than ``tolerance`` either way: its mean over the last ``fraction``
    of the epochs is within ``tolerance`` of its mean over the ``fraction`` before."""
    change = plateau_change(curve, fraction)
    return not math.isnan(change) and abs(change) < tolerance
