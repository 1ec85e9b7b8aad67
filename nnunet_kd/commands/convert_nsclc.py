"""``nnunet_kd convert-nsclc``: NSCLC-Radiomics (CT + RTSTRUCT) → nnU-Net raw dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_kd.dataset_conversion.cli_options import (
    add_common_arguments,
    output_folder,
    output_of_this_run,
    print_summary,
    split_settings,
)

NAME = "convert-nsclc"
HELP = "convert NSCLC-Radiomics (CT + RTSTRUCT) to an nnU-Net raw dataset, tumour = GTV-1 by default"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="download folder (holds NSCLC-Radiomics/LUNG1-xxx/…)")
    parser.add_argument("--roi-pattern", default=r"gtv-?1",
                        help="regular expression matched against normalised ROI names (lower case, '_'/' ' → '-')")
    parser.add_argument("--merge-all-gtvs", action="store_true", help="label every ROI named gtv* (primary + nodes)")
    parser.add_argument("--interpolate-missing-slices", action="store_true",
                        help="fill missing CT slices (linear; labels: nearer slice) instead of excluding the case")
    add_common_arguments(parser, 504, "NSCLCRadiomics")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.dataset_conversion.nsclc_radiomics import NsclcOptions, convert

    options = NsclcOptions(roi_pattern=args.roi_pattern, merge_all_gtvs=args.merge_all_gtvs,
                           interpolate_missing_slices=args.interpolate_missing_slices, **split_settings(args))
    with output_of_this_run(output_folder(args)) as folder:
        report = convert(args.source, folder, options)
        print_summary(len(report.kept_cases), report.rows, folder)
    return 0
