"""``nnunet_kd constrain-to-boxes``: remove predicted tumour voxels far from the boxes of each case."""

from __future__ import annotations

import argparse

NAME = "constrain-to-boxes"
HELP = "set predicted voxels farther than a margin (mm) from every box to background; count boxes left empty"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--predictions", required=True, help="folder of <case>.nii.gz predictions")
    parser.add_argument("-b", "--boxes", required=True, help="folder of <case>.nii.gz box masks on the same grids")
    parser.add_argument("-o", "--output", required=True, help="output folder (not one of the input folders)")
    parser.add_argument("--margin-mm", type=float, default=5.0, help="tolerance around the boxes (default 5 mm)")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.boxes.prediction import constrain_folder, summarize_constraint

    print(summarize_constraint(constrain_folder(args.predictions, args.boxes, args.output, args.margin_mm)))
    return 0
