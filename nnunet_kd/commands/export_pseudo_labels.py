"""``nnunet_kd export-pseudo-labels``: teacher ensemble + box masks -> a new nnU-Net raw dataset (default 501)."""

from __future__ import annotations

import argparse

NAME = "export-pseudo-labels"
HELP = "pseudo-label a weak (box-annotated) dataset with trained teachers and write a new nnU-Net raw dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--teacher", action="append", default=[], metavar="SPEC",
                        help="DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]], e.g. "
                        "901:nnUNetTrainerBoxGuided:3d_fullres_box:0,1:1.0 (repeat for an ensemble; folds default: all "
                        "with a checkpoint)")
    parser.add_argument("--teachers-json", default=None,
                        help="JSON list of {dataset, trainer, configuration, plans, folds, weight, checkpoint}")
    parser.add_argument("-w", "--weak", required=True, help="weak raw dataset (id, name or folder): imagesTr + boxesTr")
    parser.add_argument("-s", "--strong", default=None, help="strong raw dataset to merge in with its ground truth")
    parser.add_argument("-b", "--boxes", default=None, help="box-mask folder (default: <weak>/boxesTr)")
    parser.add_argument("-o", "--output-id", type=int, default=501, help="id of the new dataset (default 501)")
    parser.add_argument("--output-name", default="PseudoLabels", help="name of the new dataset (default PseudoLabels)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset with this id (an identical rerun resumes without it)")
    parser.add_argument("--link-mode", choices=["hardlink", "copy", "symlink"], default="hardlink",
                        help="how images enter the dataset: hardlink (default; survives moving the source, copies "
                        "across file systems), copy, or symlink (breaks when the source moves)")
    parser.add_argument("--no-cleanup", action="store_true", help="keep the ensemble's label as it is")
    parser.add_argument("--margin-mm", type=float, default=5.0,
                        help="cleanup: foreground farther than this from every box becomes background (default 5)")
    parser.add_argument("--min-fill", type=float, default=0.2, help="flag boxes filled less than this (default 0.2)")
    parser.add_argument("--max-fill", type=float, default=0.95, help="flag boxes filled more than this (default 0.95)")
    parser.add_argument("--ignore-uncertain", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="confidence-aware pseudo-labels: inside the boxes (dilated by --margin-mm), voxels whose "
                        "ensemble tumour probability lies strictly between LOW and HIGH get nnU-Net's ignore label "
                        "(added to dataset.json as the highest label), e.g. 0.3 0.7")
    parser.add_argument("--ignore-disagreement", action="store_true",
                        help="with several teachers: inside the boxes (dilated by --margin-mm), voxels on which the "
                        "teachers' own labels disagree get nnU-Net's ignore label")
    parser.add_argument("--soft-labels", action="store_true",
                        help="also save ensemble probabilities as softLabelsTr/<case>.npz (float16)")
    parser.add_argument("--no-qc", action="store_true", help="no visual QC report")
    parser.add_argument("--qc-sample", type=int, default=5, help="QC panels for flagged cases plus this many others")
    parser.add_argument("--seed", type=int, default=0, help="seed of the QC sample")
    parser.add_argument("--weak-prefix", default="weak")
    parser.add_argument("--strong-prefix", default="strong")
    parser.add_argument("--num-parts", type=int, default=1, help="split the cases into this many jobs")
    parser.add_argument("--part-id", type=int, default=0, help="which part this job does (0-based)")
    parser.add_argument("-device", "--device", default="cuda", help="cuda (default), cpu or mps")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation")
    parser.add_argument("-step_size", "--step-size", type=float, default=0.5, help="sliding-window step (default 0.5)")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.errors import ConfigurationError
    from nnunet_kd.pseudo_labels import (
        ExportOptions,
        Thresholds,
        export_pseudo_labels,
        load_teacher_file,
        parse_teacher,
    )
    from nnunet_kd.pseudo_labels.export_job import nnunet_model_factory

    specs = [parse_teacher(t) for t in args.teacher]
    if args.teachers_json:
        specs += load_teacher_file(args.teachers_json)
    if not specs:
        raise ConfigurationError("no teacher given: use --teacher (repeatable) or --teachers-json")
    options = ExportOptions(link_mode=args.link_mode, cleanup=not args.no_cleanup,
                            thresholds=Thresholds(args.min_fill, args.max_fill, args.margin_mm),
                            soft_labels=args.soft_labels, qc=not args.no_qc, qc_sample=args.qc_sample, seed=args.seed,
                            ignore_uncertain=tuple(args.ignore_uncertain) if args.ignore_uncertain else None,
                            ignore_disagreement=args.ignore_disagreement)
    export_pseudo_labels(specs, args.weak, args.strong, args.boxes, args.output_id, args.output_name, options,
                         args.overwrite, args.num_parts, args.part_id, args.weak_prefix, args.strong_prefix,
                         nnunet_model_factory(args.device, not args.disable_tta, args.step_size))
    return 0
