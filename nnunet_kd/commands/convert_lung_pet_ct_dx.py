"""``nnunet_kd convert-lung-pet-ct-dx``: Lung-PET-CT-Dx download + box XMLs → CT images and box masks."""

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

NAME = "convert-lung-pet-ct-dx"
HELP = "convert Lung-PET-CT-Dx (TCIA download + annotation XMLs) to an nnU-Net raw dataset with box masks (boxesTr)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="download folder (holds manifest-*/metadata.csv and the DICOM tree)")
    parser.add_argument("--annotations", type=Path, help="folder holding A0001/*.xml … (default: SOURCE/Annotation)")
    parser.add_argument("--coarse-labels", action="store_true",
                        help="also write the box masks as labelsTr (training data of a box-supervised teacher)")
    parser.add_argument("--drop-unknown-classes", action="store_true",
                        help="ignore boxes whose class is not A, B, E or G (default: keep and count them)")
    parser.add_argument("--clip-boxes", action="store_true",
                        help="clip annotation boxes that reach outside their slice (default: such a file is not used "
                             "and is reported)")
    parser.add_argument("--min-z-mm", type=float, default=160.0, help="shortest accepted scan length (default 160)")
    parser.add_argument("--max-z-mm", type=float, default=600.0, help="longest accepted scan length (default 600)")
    add_common_arguments(parser, 502, "LungPETCTDx")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.dataset_conversion.lung_pet_ct_dx import LungPetCtDxOptions, convert

    options = LungPetCtDxOptions(
        min_z_length_mm=args.min_z_mm, max_z_length_mm=args.max_z_mm, write_coarse_labels=args.coarse_labels,
        drop_unknown_classes=args.drop_unknown_classes, clip_boxes=args.clip_boxes, **split_settings(args),
    )
    with output_of_this_run(output_folder(args)) as folder:
        report = convert(args.source, folder, args.annotations, options)
        for problem in report.annotation_problems:  # every annotation file not used as it is, by name
            print(f"annotation {problem['file']}: {problem['problem']}")
        print_summary(len(report.kept_cases), report.rows, folder)
    counts = report.annotation_counts
    print(f"annotations: {counts.get('files', 0)} file(s), {counts.get('resolved', 0)} placed, "
          f"{counts.get('unknown_uid', 0)} unknown UID, {counts.get('malformed', 0)} malformed, "
          f"{counts.get('box_outside_slice', 0)} with a box outside the slice, {counts.get('boxes_clipped', 0)} "
          "box(es) clipped")
    return 0
