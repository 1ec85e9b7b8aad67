"""``nnunet_kd export-onnx``: one fold of a trained model as ONNX, checked against PyTorch, with its plans."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export-onnx"
HELP = ("export a trained model (-d -c -tr -f as nnU-Net names it) to ONNX with its plans and dataset.json, checked "
        "against PyTorch on random patches (needs pip install nnunet-kd[deploy])")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name of the trained model")
    parser.add_argument("-c", "--configuration", required=True, help="configuration of the trained model")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainer", help="trainer class (default: nnUNetTrainer)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-f", "--fold", default="0", help="fold to export (default: 0; 'all' for fold_all)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="export folder to create")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name in the fold folder")
    parser.add_argument("--check-patches", type=int, default=3,
                        help="random patches run through both PyTorch and ONNX Runtime (default 3)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export folder")


def run(args: argparse.Namespace) -> int:
    from nnunet_kd.deployment.onnx_export import export_onnx
    from nnunet_kd.paths import nnunet_folder, resolve_dataset_name

    model_folder = nnunet_folder("nnUNet_results") / resolve_dataset_name(args.dataset) / \
        f"{args.trainer}__{args.plans}__{args.configuration}"
    record = export_onnx(model_folder, args.fold, args.output, args.checkpoint, args.check_patches,
                         overwrite=args.overwrite)
    print(f"wrote {args.output} (input {'x'.join(map(str, record.input_shape))}, {record.num_heads} outputs); "
          f"largest |ONNX - PyTorch| logit difference on {record.check_patches} random patches: "
          f"{record.max_abs_logit_difference:.2e}")
    print(f"predict with: nnunet_kd predict-onnx -i <images> -o <output> -m {args.output}")
    return 0
