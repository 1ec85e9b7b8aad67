"""``nnunet_kd add-box-config``: add the box-guided (cascade input) configuration to a dataset's plans."""

from __future__ import annotations

import argparse

NAME = "add-box-config"
HELP = "add the box-guided teacher's plans configuration (<base>_box: inherits <base>, box mask as previous stage)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (after nnUNetv2_plan_and_preprocess)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-c", "--configuration", default="3d_fullres", help="configuration to inherit (default 3d_fullres)")
    parser.add_argument("--name", default=None, help="name of the new configuration (default <configuration>_box)")
    parser.add_argument("--patch-size", type=int, nargs="+", default=None,
                        help="patch size of the teacher (default: the base configuration's)")
    parser.add_argument("--overwrite", action="store_true", help="replace a different configuration of that name")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.boxes.cascade_configuration import add_box_guided_configuration
    from nnunet_kd.paths import plans_file

    path = plans_file(args.dataset, args.plans)
    name, changed = add_box_guided_configuration(path, args.configuration, args.name, args.overwrite,
                                                args.patch_size)
    print(f"{'added' if changed else 'already present'}: configuration {name!r} in {path}")
    print(f"train it with: nnUNetv2_train {args.dataset} {name} <fold> -tr nnUNetTrainerBoxGuided -p {args.plans}")
    return 0
