"""Evaluate several prediction folders against one reference folder and write the report files.

Output folder layout:

- ``cases.csv``: one row per model and case (model, case, source, every metric, volumes and counts); ``nan`` =
  undefined.
- ``summary.json``: settings, the empty-mask rule, skipped cases and ``{model: {source: summary}}``; undefined
  values are ``null``.
- ``report.md``: the Markdown tables (one per source, a row per model), empty-mask counts, paired comparison.
- ``paired_<a>_vs_<b>.csv``: per-case differences b − a (only with a comparison).
- ``plots/metrics_boxplot.png``, ``plots/dice_vs_volume.png``, ``plots/worst/<case>.png`` (overlays, only with
  an images folder).

Every model is evaluated before anything is written, and the report is written into a temporary folder that
replaces the output folder at the end: a bad input (a prediction, or an image of the overlays) leaves no partial
report, and a rerun leaves no file of an earlier report. An output folder that holds anything but an earlier report
is refused before the evaluation.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nnunet_kd.atomic import atomic_path, atomic_write_json, atomic_write_text
from nnunet_kd.errors import InputError
from nnunet_kd.evaluation.folder import EvaluationSettings, FolderResult, evaluate_folder
from nnunet_kd.evaluation.paired import paired_differences, paired_summary
from nnunet_kd.evaluation.summary import summarise
from nnunet_kd.evaluation.table import EMPTY_RULE, markdown_report
from nnunet_kd.metrics import METRIC_NAMES

Row = dict[str, Any]


@dataclass(frozen=True)
class ReportOptions:
    """Optional parts of the report."""

    compare: tuple[str, str] | None = None  # (a, b): paired differences b − a with a Wilcoxon test
    images_folder: Path | None = None  # CT images for worst-case overlays
    n_worst: int = 3
    plots: bool = True
    costs: Mapping[str, Mapping[str, Any]] | None = None  # {model: {"params", "MACs", "inference s/case"}}
    table_metrics: tuple[str, ...] = METRIC_NAMES


def rows_to_csv(rows: Sequence[Row]) -> str:
    """CSV text with the union of the rows' keys as columns (first-seen order); ``nan`` for undefined values."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buffer.getvalue()


def json_ready(value: Any) -> Any:
    """``value`` with ``nan`` replaced by ``None`` (JSON has no NaN) and tuples as lists, recursively."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def evaluate_models(predictions: Mapping[str, Path], reference_folder: Path, settings: EvaluationSettings,
                    source_mapping: Mapping[str, str] | None = None) -> list[FolderResult]:
    """Evaluate every ``{model: prediction folder}`` against ``reference_folder``."""
    if not predictions:
        raise InputError("no prediction folder given")
    mapping = dict(source_mapping) if source_mapping is not None else None
    return [evaluate_folder(model, folder, reference_folder, settings, mapping)
            for model, folder in predictions.items()]


def write_report(
    output_folder: Path,
    predictions: Mapping[str, Path],
    reference_folder: Path,
    settings: EvaluationSettings | None = None,
    source_mapping: Mapping[str, str] | None = None,
    options: ReportOptions | None = None,
) -> dict[str, Any]:
    """Evaluate, then write the report files into ``output_folder`` (layout in the module docstring).

    Returns:
        The summary dictionary written to ``summary.json`` (with ``nan`` still as float).
    """
    settings = settings or EvaluationSettings()
    options = options or ReportOptions()
    _check_options(predictions, options)
    output_folder = Path(output_folder)
    if output_folder.exists() and not output_folder.is_dir():
        raise InputError(f"{output_folder} is a file; the report needs a folder")
    if output_folder.is_dir() and any(output_folder.iterdir()) and not (output_folder / "summary.json").is_file():
        raise InputError(f"{output_folder} holds files that are not an evaluation report (they would be replaced); "
                         "choose a new or empty folder")
    results = evaluate_models(predictions, reference_folder, settings, source_mapping)
    rows = [row for result in results for row in result.rows]
    skipped = [entry for result in results for entry in result.skipped]
    summary = summarise(rows)
    paired = differences = None
    if options.compare is not None:
        differences = paired_differences(rows, *options.compare)
        paired = paired_summary(differences, *options.compare)
    settings_record = asdict(settings)
    summary_record = {"settings": settings_record, "empty_mask_rule": EMPTY_RULE, "skipped": skipped,
                      "models": summary, "paired": paired}

    with atomic_path(output_folder) as folder:
        folder.mkdir()
        atomic_write_text(folder / "cases.csv", rows_to_csv(rows))
        atomic_write_json(folder / "summary.json", json_ready(summary_record))
        atomic_write_text(folder / "report.md", markdown_report(summary, settings_record, options.table_metrics,
                                                               options.costs, paired, skipped))
        if differences is not None:
            a, b = options.compare
            atomic_write_text(folder / f"paired_{a}_vs_{b}.csv", rows_to_csv(differences))
        if options.plots:
            _write_plots(folder / "plots", rows, list(predictions), predictions, reference_folder, settings, options)
    return summary_record


def _check_options(predictions: Mapping[str, Path], options: ReportOptions) -> None:
    if options.compare is not None:
        unknown = [m for m in options.compare if m not in predictions]
        if unknown:
            raise InputError(f"--compare names unknown model {unknown[0]!r} (models: {', '.join(predictions)})")
    if options.costs is not None:
        unknown = [m for m in options.costs if m not in predictions]
        if unknown:
            raise InputError(f"costs name unknown model {unknown[0]!r} (models: {', '.join(predictions)})")
    if options.images_folder is not None and not Path(options.images_folder).is_dir():
        raise InputError(f"images folder {options.images_folder} does not exist")


def _write_plots(folder: Path, rows: Sequence[Row], models: Sequence[str], predictions: Mapping[str, Path],
                 reference_folder: Path, settings: EvaluationSettings, options: ReportOptions) -> None:
    from nnunet_kd.evaluation.plots import case_overlay, dice_vs_volume, find_image, metric_boxplots, worst_cases

    metric_boxplots(rows, models, folder / "metrics_boxplot.png")
    dice_vs_volume(rows, models, folder / "dice_vs_volume.png")
    if options.images_folder is None or options.n_worst <= 0:
        return
    import SimpleITK as sitk

    from nnunet_kd.evaluation.label_io import read_label_image
    from nnunet_kd.integrity.image_files import read_image
    from nnunet_kd.metrics import foreground_mask

    images_folder = Path(options.images_folder)
    for case in worst_cases(rows, models, options.n_worst):
        image = sitk.GetArrayFromImage(read_image(find_image(images_folder, case, settings.file_ending),
                                                  f"case {case} (image)"))
        reference = read_label_image(reference_folder / f"{case}{settings.file_ending}", f"case {case} (reference)")
        if image.shape != reference.array.shape:
            raise InputError(f"case {case}: image size {image.shape} differs from the reference size "
                             f"{reference.array.shape}")
        masks = {}
        for model in models:
            path = Path(predictions[model]) / f"{case}{settings.file_ending}"
            if path.is_file():
                label = read_label_image(path, f"case {case} (prediction {model})").array
                masks[model] = foreground_mask(label, settings.foreground_labels)
        ref_mask = foreground_mask(reference.array, settings.foreground_labels)
        case_overlay(case, image, reference.spacing, ref_mask, masks, folder / "worst" / f"{case}.png")
