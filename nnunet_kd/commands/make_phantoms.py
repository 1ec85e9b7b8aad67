"""``nnunet_kd phantoms``: write a synthetic chest-CT phantom dataset in nnU-Net's raw format."""

from __future__ import annotations

import argparse

NAME = "phantoms"
HELP = "generate synthetic chest-CT phantoms with lung tumours as an nnU-Net raw dataset (strong or box-only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id, e.g. 500")
    parser.add_argument("--name", default=None, help="dataset name (default: LungPhantomStrong / LungPhantomWeak)")
    parser.add_argument("--role", choices=["strong", "weak"], default="strong",
                        help="strong: voxel labels in labelsTr; weak: box masks only (ground truth kept in referenceTr)")
    parser.add_argument("--num-train", type=int, default=10, help="cases in imagesTr (default 10)")
    parser.add_argument("--num-test", type=int, default=0, help="held-out cases in imagesTs/labelsTs (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case-prefix", default=None, help="case names <prefix>_000 ... (default: the role)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                        help="volume size in voxels (default 64 96 96)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="voxel size in mm (default 3.5 3.5 4)")
    parser.add_argument("--min-diameter", type=float, default=None, help="smallest tumour diameter in mm")
    parser.add_argument("--max-diameter", type=float, default=None, help="largest tumour diameter in mm")
    parser.add_argument("--tumours", type=int, nargs=2, metavar=("MIN", "MAX"), default=None,
                        help="number of tumours per case (default 1 2)")
    parser.add_argument("-o", "--output-root", default=None, help="where the dataset folder goes (default $nnUNet_raw)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset made differently")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from nnunet_kd.paths import nnunet_folder
    from nnunet_kd.synthetic.chest_phantom import PhantomConfig
    from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

    config = PhantomConfig()
    overrides = {
        "shape_zyx": tuple(args.shape) if args.shape else None,
        "spacing_xyz": tuple(args.spacing) if args.spacing else None,
        "min_diameter_mm": args.min_diameter,
        "max_diameter_mm": args.max_diameter,
        "tumours_per_case": tuple(args.tumours) if args.tumours else None,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    root = Path(args.output_root) if args.output_root else nnunet_folder("nnUNet_raw")
    name = args.name or ("LungPhantomStrong" if args.role == "strong" else "LungPhantomWeak")
    folder = write_phantom_dataset(root, args.dataset_id, name, args.num_train, args.num_test, args.seed, args.role,
                                   config, args.case_prefix, args.overwrite, progress=True)
    print(f"phantom dataset ready: {folder}")
    return 0
