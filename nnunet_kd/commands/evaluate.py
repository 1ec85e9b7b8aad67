"""``nnunet_kd evaluate``: prediction folder(s) vs a reference folder -> per-case CSV, summary JSON, Markdown
tables (per source dataset, models side by side), optional paired test, PNG plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "evaluate"
HELP = "score prediction folders against reference labels: CSV, JSON, Markdown tables and plots"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ref", required=True, type=Path, help="folder of reference label files")
    parser.add_argument("--pred", required=True, action="append", metavar="[NAME=]FOLDER",
                        help="prediction folder, optionally with a display name (repeat for side-by-side models); "
                             "without NAME the folder's name is used")
    parser.add_argument("-o", "--output", required=True, type=Path, help="folder for the report files")
    parser.add_argument("--file-ending", default=".nii.gz", help="label file ending (default: .nii.gz)")
    parser.add_argument("--labels", type=int, nargs="+", default=None,
                        help="labels that form the tumour (merged); default: every non-zero label")
    parser.add_argument("--overlap-threshold", type=float, default=0.25,
                        help="object detection threshold on |R ∩ P| / |R| (default: 0.25)")
    parser.add_argument("--sources", type=Path, default=None,
                        help="JSON {case: source} or CSV case,source; default: case-name prefix before the first '_'")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                        help="paired comparison of two models: per-case differences B - A and a Wilcoxon test")
    parser.add_argument("--images", type=Path, default=None,
                        help="CT images folder (<case>_0000<ending>) for overlays of the worst cases")
    parser.add_argument("--worst", type=int, default=3, help="number of worst cases to draw (default: 3)")
    parser.add_argument("--costs", type=Path, default=None,
                        help='JSON {model: {"params": .., "MACs": .., "inference s/case": ..}} adds cost columns')
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip (and list) cases missing on either side instead of failing")
    parser.add_argument("--table-metrics", nargs="+", default=None, metavar="METRIC",
                        help="metrics (columns) of the Markdown tables, e.g. dice hd95_mm object_f1 dsc_tp; "
                             "default: all (the CSV and JSON always have all)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default: 1)")


def parse_predictions(values: list[str]) -> dict[str, Path]:
    """``["a=/x", "/y/student"]`` -> ``{"a": Path("/x"), "student": Path("/y/student")}``; names must be unique."""
    from nnunet_kd.errors import InputError

    predictions: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = Path(value).name, value
        if not name or not folder:
            raise InputError(f"--pred {value!r}: expected NAME=FOLDER or FOLDER")
        if name in predictions:
            raise InputError(f"--pred: model name {name!r} is given twice (use NAME=FOLDER to tell them apart)")
        predictions[name] = Path(folder)
    return predictions


def load_costs(path: Path) -> dict[str, dict[str, float | str]]:
    """Read ``{model: {"params": .., "MACs": .., "inference s/case": ..}}`` (any subset of the three per model)."""
    from nnunet_kd.errors import InputError

    if not path.is_file():
        raise InputError(f"costs file {path} does not exist")
    try:
        costs = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"costs file {path} is not valid JSON: {error}") from None
    if not isinstance(costs, dict) or not all(isinstance(v, dict) for v in costs.values()):
        raise InputError(f'costs file {path}: expected {{model: {{"params": .., "MACs": .., "inference s/case": ..}}}}')
    return costs


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.errors import InputError
    from nnunet_kd.evaluation import EvaluationSettings, ReportOptions, write_report
    from nnunet_kd.evaluation.source_datasets import load_source_mapping
    from nnunet_kd.metrics import METRIC_NAMES
    from nnunet_kd.paths import refuse_writing_into_inputs

    if not 0.0 < args.overlap_threshold <= 1.0:
        raise InputError(f"--overlap-threshold must be in (0, 1], got {args.overlap_threshold}")
    unknown = [m for m in args.table_metrics or () if m not in METRIC_NAMES]
    if unknown:
        raise InputError(f"--table-metrics: unknown metric {unknown[0]!r} (known: {', '.join(METRIC_NAMES)})")
    costs = load_costs(args.costs) if args.costs is not None else None
    settings = EvaluationSettings(
        file_ending=args.file_ending,
        foreground_labels=tuple(args.labels) if args.labels else None,
        overlap_threshold=args.overlap_threshold,
        allow_missing=args.allow_missing,
        num_processes=max(1, args.num_processes),
    )
    options = ReportOptions(
        compare=tuple(args.compare) if args.compare else None,
        images_folder=args.images,
        n_worst=args.worst,
        plots=not args.no_plots,
        costs=costs,
        table_metrics=tuple(args.table_metrics) if args.table_metrics else METRIC_NAMES,
    )
    mapping = load_source_mapping(args.sources) if args.sources is not None else None
    predictions = parse_predictions(args.pred)
    refuse_writing_into_inputs([args.output], [args.ref, args.images, *predictions.values()], "nnunet_kd evaluate")
    record = write_report(args.output, predictions, args.ref, settings, mapping, options)
    print((args.output / "report.md").read_text())
    if record["skipped"]:
        print(f"skipped {len(record['skipped'])} case(s), listed in {args.output / 'report.md'}")
    print(f"wrote {args.output}/cases.csv, summary.json, report.md" + ("" if args.no_plots else " and plots/"))
    return 0
