"""Summaries of per-case rows: mean ± std per metric, per model and per source dataset, with missing counts.

Undefined per-case values (``nan``, see :mod:`nnunet_kd.metrics.voxel`) are left out of the mean and reported as
``n_missing`` next to ``n``, so a missing value never silently turns into 0 and is never dropped from the counts.
The standard deviation is the sample standard deviation (``ddof=1``); ``nan`` when fewer than two values.
``n_ref_empty`` and ``n_pred_empty`` count every case with that mask empty, both-empty cases included
(``n_both_empty``). Object counts are also pooled over all cases of a group (``pooled_objects``: ΣTP, ΣFP, ΣFN
and the precision, recall and F1 = 2 ΣTP / (2 ΣTP + ΣFP + ΣFN) of the pooled counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnunet_kd.metrics import METRIC_NAMES
from nnunet_kd.metrics.voxel import ratio

ALL_SOURCES = "all cases"
Row = dict[str, Any]


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """``mean``, ``std`` (ddof=1), ``median``, ``n`` (defined values) and ``n_missing`` (nan values)."""
    array = np.asarray(values, dtype=float)
    defined = array[~np.isnan(array)]
    n = int(defined.size)
    return {
        "mean": float(defined.mean()) if n else float("nan"),
        "std": float(defined.std(ddof=1)) if n > 1 else float("nan"),
        "median": float(np.median(defined)) if n else float("nan"),
        "n": n,
        "n_missing": int(array.size - n),
    }


def summarise_group(rows: Sequence[Row], metrics: Sequence[str] = METRIC_NAMES) -> dict[str, Any]:
    """Summary of one group of case rows (one model, one source or all)."""
    tp = sum(int(r["tp_objects"]) for r in rows)
    fp = sum(int(r["fp_objects"]) for r in rows)
    fn = sum(int(r["fn_objects"]) for r in rows)
    return {
        "n_cases": len(rows),
        "n_ref_empty": sum(bool(r["ref_empty"]) for r in rows),
        "n_pred_empty": sum(bool(r["pred_empty"]) for r in rows),
        "n_both_empty": sum(bool(r["ref_empty"]) and bool(r["pred_empty"]) for r in rows),
        "metrics": {m: describe([float(r[m]) for r in rows]) for m in metrics},
        "pooled_objects": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
        },
    }


def summarise(rows: Sequence[Row], metrics: Sequence[str] = METRIC_NAMES) -> dict[str, dict[str, Any]]:
    """``{model: {source: group summary}}``, the source ``"all cases"`` first, then sources sorted by name."""
    result: dict[str, dict[str, Any]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        model_rows = [r for r in rows if r["model"] == model]
        per_source = {ALL_SOURCES: summarise_group(model_rows, metrics)}
        for source in sorted(dict.fromkeys(r["source"] for r in model_rows)):
            per_source[source] = summarise_group([r for r in model_rows if r["source"] == source], metrics)
        result[model] = per_source
    return result
