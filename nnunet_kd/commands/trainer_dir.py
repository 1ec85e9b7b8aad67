"""``nnunet_kd trainer-dir``: print the folder for ``nnUNet_extTrainer``."""

from __future__ import annotations

import argparse
import os

NAME = "trainer-dir"
HELP = "print the folder to put in nnUNet_extTrainer: export nnUNet_extTrainer=$(nnunet_kd trainer-dir)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="instead of printing, check the current nnUNet_extTrainer value"
    )


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.trainer_lookup import check_ext_trainer_value, trainer_dir

    if args.check:
        check_ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
        print(f"nnUNet_extTrainer is set correctly (contains {trainer_dir()})")
    else:
        print(trainer_dir())
    return 0
