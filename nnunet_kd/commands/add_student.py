"""``nnunet_kd add-student``: add a compact-student configuration to a dataset's plans file."""

from __future__ import annotations

import argparse

NAME = "add-student"
HELP = ("add a compact student configuration that inherits the preprocessed data of 3d_fullres: a narrow "
        "PlainConvUNet or ResidualEncoderUNet (fewer stages optional), or the depthwise-separable residual U-Net with "
        "ASPP and an optional box head")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", help="dataset id or name under $nnUNet_preprocessed")
    parser.add_argument("-p", "--plans", default="nnUNetPlans",
                        help="plans identifier (default: nnUNetPlans) or a path to a plans .json file")
    parser.add_argument("--parent", default="3d_fullres", help="configuration to inherit from (default: 3d_fullres)")
    parser.add_argument("--kind", choices=("depthwise", "plain", "residual"), default="depthwise",
                        help="plain: narrow PlainConvUNet (nnU-Net's network, fastest per MAC); residual: narrow "
                             "ResidualEncoderUNet; depthwise: depthwise-separable residual U-Net with ASPP "
                             "(default, the papers' student)")
    parser.add_argument("--name", help="configuration name (default: <parent>_student, <parent>_student_do, "
                                       "<parent>_plain_student, <parent>_residual_student)")
    parser.add_argument("--width", type=float, default=1.0,
                        help="multiplier for the parent's features_per_stage (default: 1.0)")
    parser.add_argument("--stages", type=int, default=None,
                        help="plain/residual: keep only the parent's first N stages (default: all)")
    parser.add_argument("--spacing-factor", type=float, default=1.0,
                        help="lower-resolution student: the parent's spacing times this (> 1), its own patch and "
                             "preprocessed data (run nnUNetv2_preprocess -c <name> before training); default 1")
    parser.add_argument("--aspp", action=argparse.BooleanOptionalAction, default=True,
                        help="ASPP at the bottleneck (default: on)")
    parser.add_argument("--aspp-rates", type=int, nargs="+", default=[1, 2, 3], metavar="RATE",
                        help="ASPP dilation rates, each smaller than the bottleneck feature map (default: 1 2 3)")
    parser.add_argument("--dual-output", action="store_true",
                        help="add the box-mask decoder (dual-output student; train with nnUNetTrainerDualOutput)")
    parser.add_argument("--blocks-per-stage", type=int, default=1,
                        help="residual blocks per encoder stage (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace a different configuration of the same name")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.students.configuration import add_student_configuration, resolve_plans_file

    plans_file = resolve_plans_file(args.dataset, args.plans)
    name, changed = add_student_configuration(
        plans_file, name=args.name, parent=args.parent, width_multiplier=args.width,
        aspp_rates=args.aspp_rates if args.aspp else None, dual_output=args.dual_output,
        n_blocks_per_stage=args.blocks_per_stage, overwrite=args.overwrite, kind=args.kind, n_stages=args.stages,
        spacing_factor=args.spacing_factor,
    )
    state = "added to" if changed else "already in"
    preprocess = "" if args.spacing_factor == 1.0 else \
        f"preprocess with: nnUNetv2_preprocess -d <dataset> -plans_name {plans_file.stem} -c {name}; then "
    print(f"configuration {name!r} {state} {plans_file}; "
          f"{preprocess}train with: nnUNetv2_train <dataset> {name} <fold> -tr <trainer>")
    return 0
