"""``nnunet_kd merge-pseudo-labels``: assemble a multi-part pseudo-label export (dataset.json, provenance, QC)."""

from __future__ import annotations

import argparse

NAME = "merge-pseudo-labels"
HELP = "after every part of export-pseudo-labels is done: write dataset.json, the provenance tables and the QC report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="501", help="the exported dataset: id, name or folder (default 501)")
    parser.add_argument("--no-qc", action="store_true", help="skip the QC panels")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_kd.paths import nnunet_folder
    from nnunet_kd.pseudo_labels import merge_export

    folder = Path(args.output)
    if not folder.is_dir():
        root = nnunet_folder("nnUNet_raw")
        pattern = f"Dataset{int(args.output):03d}_*" if args.output.isdigit() else args.output
        matches = sorted(root.glob(pattern))
        folder = matches[0] if matches else root / args.output
    merge_export(folder, qc=False if args.no_qc else None)
    return 0
