"""Paired comparison of two models on the same cases: per-case differences and a Wilcoxon signed-rank test.

For each metric, the cases where both models have a defined value are paired; the difference is ``b − a``.
The p-value is two-sided, from ``scipy.stats.wilcoxon`` with its default zero handling (``"wilcox"``: zero
differences are dropped). When every difference is zero the p-value is 1 (no evidence of a difference); with
no pair it is ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnunet_kd.errors import InputError
from nnunet_kd.metrics import METRIC_NAMES

Row = dict[str, Any]


def paired_differences(rows: Sequence[Row], model_a: str, model_b: str, metrics: Sequence[str] = METRIC_NAMES
                       ) -> list[Row]:
    """One row per case evaluated for both models: ``case``, ``source`` and ``<metric>_diff`` = b − a (nan when
    either value is undefined)."""
    by_model = {m: {r["case"]: r for r in rows if r["model"] == m} for m in (model_a, model_b)}
    for model, cases in by_model.items():
        if not cases:
            raise InputError(f"paired comparison: no model named {model!r} was evaluated")
    common = [case for case in by_model[model_a] if case in by_model[model_b]]
    if not common:
        raise InputError(f"paired comparison: models {model_a!r} and {model_b!r} share no case")
    result = []
    for case in common:
        a, b = by_model[model_a][case], by_model[model_b][case]
        row: Row = {"case": case, "source": a["source"]}
        row.update({f"{m}_diff": float(b[m]) - float(a[m]) for m in metrics})
        result.append(row)
    return result


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (nan values dropped first)."""
    from scipy.stats import wilcoxon

    values = np.asarray(differences, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    if np.all(values == 0):
        return 1.0
    return float(wilcoxon(values).pvalue)


def paired_summary(differences: Sequence[Row], model_a: str, model_b: str, metrics: Sequence[str] = METRIC_NAMES
                   ) -> dict[str, Any]:
    """``{"a", "b", "metrics": {metric: {n_pairs, mean_diff, median_diff, p_wilcoxon}}}`` (diff = b − a)."""
    summary: dict[str, Any] = {"a": model_a, "b": model_b, "difference": "b - a", "metrics": {}}
    for metric in metrics:
        values = np.asarray([r[f"{metric}_diff"] for r in differences], dtype=float)
        defined = values[~np.isnan(values)]
        summary["metrics"][metric] = {
            "n_pairs": int(defined.size),
            "mean_diff": float(defined.mean()) if defined.size else float("nan"),
            "median_diff": float(np.median(defined)) if defined.size else float("nan"),
            "p_wilcoxon": wilcoxon_p(defined),
        }
    return summary
