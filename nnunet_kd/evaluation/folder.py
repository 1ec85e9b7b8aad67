"""Evaluate one prediction folder against a reference folder: one row of metrics per case."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_kd.evaluation.cases import list_cases, pair_cases
from nnunet_kd.evaluation.label_io import check_same_geometry, read_label_image
from nnunet_kd.evaluation.source_datasets import assign_sources
from nnunet_kd.metrics import DEFAULT_OVERLAP_THRESHOLD, case_metrics

Row = dict[str, Any]


@dataclass(frozen=True)
class EvaluationSettings:
    """What is evaluated and how (recorded in the summary)."""

    file_ending: str = ".nii.gz"
    foreground_labels: tuple[int, ...] | None = None  # None: every non-zero label is tumour
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD
    allow_missing: bool = False
    num_processes: int = 1


@dataclass
class FolderResult:
    """Per-case rows of one model (``model``, ``case``, ``source``, metrics…) and the skipped cases."""

    model: str
    rows: list[Row] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def evaluate_case(
    case: str,
    reference_path: Path,
    prediction_path: Path,
    foreground_labels: Sequence[int] | None,
    overlap_threshold: float,
) -> dict[str, Any]:
    """Read, check and score one case pair (module-level so that worker processes can run it)."""
    reference = read_label_image(reference_path, f"case {case} (reference)")
    prediction = read_label_image(prediction_path, f"case {case} (prediction)")
    check_same_geometry(case, reference, prediction)
    return case_metrics(reference.array, prediction.array, reference.spacing, foreground_labels, overlap_threshold)


def evaluate_folder(
    model: str,
    prediction_folder: str | Path,
    reference_folder: str | Path,
    settings: EvaluationSettings | None = None,
    source_mapping: dict[str, str] | None = None,
) -> FolderResult:
    """Score every case of ``prediction_folder`` against ``reference_folder`` (paired by file name).

    Raises:
        InputError: missing folders, cases missing on either side (unless ``settings.allow_missing``), unreadable
            or non-integer labels, geometry mismatch, or a case absent from ``source_mapping``.
    """
    settings = settings or EvaluationSettings()
    references = list_cases(reference_folder, settings.file_ending, "reference")
    predictions = list_cases(prediction_folder, settings.file_ending, f"prediction ({model})")
    pairing = pair_cases(references, predictions, model, settings.allow_missing)
    sources = assign_sources(pairing.cases, source_mapping)
    jobs = [
        (case, references[case], predictions[case], settings.foreground_labels, settings.overlap_threshold)
        for case in pairing.cases
    ]
    if settings.num_processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=settings.num_processes) as pool:
            scores = list(pool.map(evaluate_case, *zip(*jobs, strict=True)))
    else:
        scores = [evaluate_case(*job) for job in jobs]
    rows = [{"model": model, "case": case, "source": sources[case], **score} for case, score in
            zip(pairing.cases, scores, strict=True)]
    return FolderResult(model, rows, pairing.skipped)
