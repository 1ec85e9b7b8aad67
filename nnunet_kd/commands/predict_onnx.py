"""``nnunet_kd predict-onnx``: nnU-Net's prediction of a folder of images with an exported ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "predict-onnx"
HELP = ("predict a folder of images with an export of nnunet_kd export-onnx: nnU-Net's preprocessing, sliding "
        "window and export, the network run by ONNX Runtime on the CPU (needs pip install nnunet-kd[deploy])")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", type=Path, required=True, help="folder of <case>_0000<ending> images")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the segmentations")
    parser.add_argument("-m", "--model", type=Path, required=True, help="export folder written by export-onnx")
    parser.add_argument("-step_size", "--step-size", type=float, default=0.5,
                        help="sliding-window step as a fraction of the patch (default 0.5, as nnUNetv2_predict)")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation")
    parser.add_argument("-prev_stage_predictions", "--boxes", type=Path, default=None,
                        help="box masks of a box-guided model (as nnUNetv2_predict -prev_stage_predictions)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.deployment.onnx_prediction import onnx_predictor
    from nnunet_kd.errors import InputError
    from nnunet_kd.paths import refuse_writing_into_inputs

    if not args.input.is_dir():
        raise InputError(f"input folder {args.input} does not exist")
    refuse_writing_into_inputs([args.output], [args.input, args.model, args.boxes], "nnunet_kd predict-onnx")
    predictor = onnx_predictor(args.model, args.step_size, not args.disable_tta, args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    predictor.predict_from_files_sequential(str(args.input), str(args.output), save_probabilities=False,
                                            overwrite=True, folder_with_segs_from_prev_stage=(
                                                str(args.boxes) if args.boxes is not None else None))
    print(f"wrote the segmentations to {args.output}")
    return 0
