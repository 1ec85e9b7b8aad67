"""``nnunet_kd convert-msd-lung``: MSD Task06_Lung → nnU-Net v2 raw dataset."""

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

NAME = "convert-msd-lung"
HELP = "convert MSD Task06_Lung (imagesTr, labelsTr) to an nnU-Net v2 raw dataset with checks and a manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="the extracted Task06_Lung folder")
    add_common_arguments(parser, 503, "MSDLung")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.dataset_conversion.msd_lung import MsdLungOptions, convert

    options = MsdLungOptions(**split_settings(args))
    with output_of_this_run(output_folder(args)) as folder:
        report = convert(args.source, folder, options)
        print_summary(len(report.kept_cases), report.rows, folder)
    return 0
