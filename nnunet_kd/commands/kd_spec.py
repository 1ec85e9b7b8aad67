"""``nnunet_kd kd-spec``: write the teacher specification a distillation trainer reads at start-up."""

from __future__ import annotations

import argparse

NAME = "kd-spec"
HELP = "write kd_teachers.json (teachers + KD hyper-parameters) next to the student dataset's plans"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="student dataset id or name")
    parser.add_argument("--teacher", action="append", required=True,
                        metavar="DATASET:TRAINER[__PLANS]:CONFIG[:FOLDS[:WEIGHT]]",
                        help="a teacher by nnU-Net identifiers; FOLDS 'same' (default: the student's fold) or '0,1'; "
                             "repeat for several teachers")
    parser.add_argument("--teacher-plans", default=None, help="plans identifier of all teachers (default nnUNetPlans)")
    parser.add_argument("-T", "--temperature", type=float, default=None)
    parser.add_argument("--alpha", type=float, default=None, help="weight of the feature term (paper: 0.1)")
    parser.add_argument("--beta", type=float, default=None, help="weight of the KL term (paper: 0.1)")
    parser.add_argument("--weighting", choices=["adaptive", "uniform", "fixed", "paper_literal"], default=None)
    parser.add_argument("--feature-stages", nargs="+", default=None, help="module names, e.g. encoder.stages.0")
    parser.add_argument("--teacher-stages", action="append", default=[], metavar="INDEX=NAME[,NAME...]",
                        help="the modules of teacher INDEX (0 = first --teacher) that match --feature-stages, one per "
                             "student stage, for a teacher of another architecture (e.g. 1=down_projection,eva.blocks.5"
                             " for a Primus teacher); repeat per teacher")
    parser.add_argument("--feature-loss", choices=["mse", "cosine", "at_rc"], default=None)
    parser.add_argument("-o", "--output", default=None, help="file to write (default: next to the dataset's plans)")
    parser.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_kd.distillation.spec import (
        SPEC_FILE_NAME,
        parse_teacher_argument,
        parse_teacher_stages_argument,
        write_spec,
    )
    from nnunet_kd.paths import preprocessed_dataset_folder, resolve_dataset_name

    teachers = [parse_teacher_argument(t) for t in args.teacher]
    if args.teacher_plans:
        for teacher in teachers:
            teacher["plans"] = args.teacher_plans
    for text in args.teacher_stages:
        index, stages = parse_teacher_stages_argument(text, len(teachers))
        teachers[index]["feature_stages"] = stages
    spec = {"teachers": teachers}
    for key in ("temperature", "alpha", "beta", "weighting", "feature_stages", "feature_loss"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    path = Path(args.output) if args.output else preprocessed_dataset_folder(resolve_dataset_name(args.dataset)) / SPEC_FILE_NAME
    changed = write_spec(path, spec, args.overwrite)
    print(f"{'wrote' if changed else 'unchanged'}: {path}")
    return 0
