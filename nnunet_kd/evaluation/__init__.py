"""Folder evaluation: per-case metrics of prediction folders against a reference folder, summaries per model and
source dataset, Markdown tables in the papers' layout, paired comparisons and plots.

Used by ``nnunet_kd evaluate``; the metrics themselves live in :mod:`nnunet_kd.metrics`.
"""

from __future__ import annotations

from nnunet_kd.evaluation.folder import EvaluationSettings, FolderResult, evaluate_case, evaluate_folder
from nnunet_kd.evaluation.report import ReportOptions, write_report
from nnunet_kd.evaluation.summary import ALL_SOURCES, summarise

__all__ = [
    "ALL_SOURCES",
    "EvaluationSettings",
    "FolderResult",
    "ReportOptions",
    "evaluate_case",
    "evaluate_folder",
    "summarise",
    "write_report",
]
