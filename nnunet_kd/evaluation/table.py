"""Markdown report: one table per source dataset, one row per model, mean ± std per metric (the papers' layout)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nnunet_kd.evaluation.summary import ALL_SOURCES
from nnunet_kd.metrics import LOWER_IS_BETTER, METRIC_NAMES

#: Column titles; fractions are shown in %, HD95 in mm.
METRIC_TITLES: dict[str, str] = {
    "dice": "Dice (%)",
    "iou": "IoU (%)",
    "voe": "VOE (%)",
    "hd95_mm": "HD95 (mm)",
    "accuracy": "Acc (%)",
    "precision": "Pre (%)",
    "recall": "Rec (%)",
    "specificity": "Spec (%)",
    "harmonic": "Harmonic (%)",
    "object_precision": "Obj Pre (%)",
    "object_recall": "Obj Rec (%)",
    "object_f1": "Obj F1 (%)",
    "dsc_tp": "DSC-TP (%)",
}
#: Model-cost columns filled from the optional ``costs`` argument: ``{model: {column: value}}``.
COST_COLUMNS: tuple[str, ...] = ("params", "MACs", "inference s/case")

EMPTY_RULE = (
    "Undefined values (a zero denominator: precision with an empty prediction, recall with an empty reference, "
    "Dice/IoU/VOE when both are empty; HD95 whenever either mask is empty; DSC-TP without a detected object) are "
    "left out of mean ± std and counted: a cell reads `mean ± std (n=defined/cases)` when some are missing."
)


def _scale(metric: str) -> float:
    return 1.0 if metric == "hd95_mm" else 100.0


def format_statistic(stats: Mapping[str, Any], metric: str, n_cases: int) -> str:
    """``"84.12 ± 5.31"``, with ``" (n=9/10)"`` when values are missing; ``"n/a"`` when none is defined."""
    if stats["n"] == 0:
        return f"n/a (n=0/{n_cases})"
    scale = _scale(metric)
    text = f"{stats['mean'] * scale:.2f}"
    if not math.isnan(stats["std"]):
        text += f" ± {stats['std'] * scale:.2f}"
    if stats["n_missing"]:
        text += f" (n={stats['n']}/{n_cases})"
    return text


def format_cost(value: Any) -> str:
    """Large counts with an SI suffix (``12.3 M``), small numbers with three significant digits."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    value = float(value)
    for factor, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def source_table(
    summary: Mapping[str, Mapping[str, Any]],
    source: str,
    metrics: Sequence[str] = METRIC_NAMES,
    costs: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Markdown table of one source: a row per model that has cases from it, best mean per column in bold."""
    models = [m for m in summary if source in summary[m]]
    header = ["model", "cases"] + [METRIC_TITLES.get(m, m) for m in metrics]
    if costs is not None:
        header += list(COST_COLUMNS)
    best = {m: _best_mean([summary[model][source]["metrics"][m]["mean"] for model in models], m) for m in metrics}
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        group = summary[model][source]
        cells = [model, str(group["n_cases"])]
        for metric in metrics:
            stats = group["metrics"][metric]
            cell = format_statistic(stats, metric, group["n_cases"])
            if len(models) > 1 and stats["n"] and stats["mean"] == best[metric]:
                cell = f"**{cell}**"
            cells.append(cell)
        if costs is not None:
            model_costs = costs.get(model, {})
            cells += [format_cost(model_costs.get(column)) for column in COST_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_mean(means: Sequence[float], metric: str) -> float:
    defined = [m for m in means if not math.isnan(m)]
    if not defined:
        return float("nan")
    return min(defined) if metric in LOWER_IS_BETTER else max(defined)


def markdown_report(
    summary: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    metrics: Sequence[str] = METRIC_NAMES,
    costs: Mapping[str, Mapping[str, Any]] | None = None,
    paired: Mapping[str, Any] | None = None,
    skipped: Sequence[Mapping[str, str]] = (),
) -> str:
    """The whole Markdown report: settings, one table per source (all cases first), empty cases, paired test."""
    sources = list(dict.fromkeys(s for per_model in summary.values() for s in per_model))
    lines = [
        "# Evaluation",
        "",
        f"Foreground labels: {settings.get('foreground_labels') or 'every non-zero label'}; object detection: "
        f"overlap |R ∩ P| / |R| >= {settings.get('overlap_threshold')} with 26-connected components. "
        "Mean ± sample std over cases; fractions in %, HD95 in mm; best mean per column in bold.",
        "",
        EMPTY_RULE,
    ]
    for source in sources:
        lines += ["", f"## {source}", "", source_table(summary, source, metrics, costs)]
    lines += ["", "## Empty masks", "", "| model | cases | only reference empty | only prediction empty | both empty |",
              "|---|---|---|---|---|"]
    for model, per_source in summary.items():
        group = per_source[ALL_SOURCES]
        both = group["n_both_empty"]
        lines.append(f"| {model} | {group['n_cases']} | {group['n_ref_empty'] - both} | "
                     f"{group['n_pred_empty'] - both} | {both} |")
    if skipped:
        lines += ["", "## Skipped cases", "", "| model | case | reason |", "|---|---|---|"]
        lines += [f"| {s['model']} | {s['case']} | {s['reason']} |" for s in skipped]
    if paired is not None:
        lines += ["", f"## Paired comparison: {paired['b']} − {paired['a']}", "",
                  "Per-case differences b − a on cases where both are defined; two-sided Wilcoxon signed-rank test.",
                  "", "| metric | pairs | mean difference | median difference | p (Wilcoxon) |",
                  "|---|---|---|---|---|"]
        for metric in metrics:
            stats = paired["metrics"][metric]
            scale = _scale(metric)
            lines.append(f"| {METRIC_TITLES.get(metric, metric)} | {stats['n_pairs']} | "
                         f"{stats['mean_diff'] * scale:.2f} | {stats['median_diff'] * scale:.2f} | "
                         f"{stats['p_wilcoxon']:.3g} |")
    return "\n".join(lines) + "\n"
