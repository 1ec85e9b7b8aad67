"""``nnunet_kd predict-with-boxes``: box-guided inference with input checks and the optional box constraint."""

from __future__ import annotations

import argparse

NAME = "predict-with-boxes"
HELP = "check box masks, run nnUNetv2_predict -prev_stage_predictions with a box-guided model, optionally constrain"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--images", required=True, help="folder of <case>_0000.nii.gz images")
    parser.add_argument("-b", "--boxes", required=True, help="folder of <case>.nii.gz axial box masks (0/1)")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("-d", "--dataset", required=True, help="dataset the model was trained on")
    parser.add_argument("-c", "--configuration", default="3d_fullres_box")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerBoxGuided")
    parser.add_argument("-p", "--plans", default="nnUNetPlans")
    parser.add_argument("-f", "--folds", nargs="+", default=["0"])
    parser.add_argument("--constrain-margin-mm", type=float, default=None,
                        help="remove predicted voxels farther than this from every box, count empty boxes")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring at test time")
    parser.add_argument("-device", "--device", default=None, help="cuda, cpu or mps (nnU-Net's default: cuda)")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.boxes.prediction import predict_with_boxes, summarize_constraint

    extra = (["--disable_tta"] if args.disable_tta else []) + (["-device", args.device] if args.device else [])
    reports = predict_with_boxes(args.images, args.boxes, args.output, args.dataset, args.configuration, args.trainer,
                                 args.folds, args.plans, args.constrain_margin_mm, extra)
    if reports is not None:
        print(summarize_constraint(reports))
    return 0
