"""``nnunet_kd boxes-to-labels``: a coarse-label dataset (filled boxes) for the box-supervised baseline teacher."""

from __future__ import annotations

import argparse

NAME = "boxes-to-labels"
HELP = ("turn a labelled or box-only raw dataset into a dataset whose labels are filled axial boxes, or "
        "(--ignore-inside) background outside the boxes and nnU-Net's ignore label inside")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--source", required=True, help="source dataset id/name (under $nnUNet_raw) or folder")
    parser.add_argument("-d", "--dataset-id", type=int, required=True, help="id of the new dataset")
    parser.add_argument("--name", default=None, help="name of the new dataset (default: <source name>Boxes)")
    parser.add_argument("--from", dest="label_source", choices=["auto", "labels", "boxes"], default="auto")
    parser.add_argument("--merge-per-slice", action="store_true", help="one box per slice around all lesions")
    parser.add_argument("--link-mode", choices=["hardlink", "copy", "symlink"], default="hardlink")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--ignore-inside", action="store_true",
                        help="labels: 0 outside the boxes, the ignore label (2) inside (nnU-Net skips it in the loss)")
    parser.add_argument("--margin-mm", type=float, default=0.0,
                        help="with --ignore-inside: grow the boxes in-plane by this many mm first (default 0)")
    parser.add_argument("--core-fraction", type=float, default=0.0,
                        help="with --ignore-inside: mark the ellipse inscribed in each box slice, its semi-axes "
                             "scaled by this fraction, as tumour (default 0: off)")
    parser.add_argument("--strong", default=None,
                        help="with --ignore-inside: a labelled dataset (id, name or folder) merged in with its voxel "
                             "labels")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_kd.boxes.coarse_labels import write_coarse_label_dataset
    from nnunet_kd.paths import dataset_folder_name, nnunet_folder, resolve_dataset_name

    raw = nnunet_folder("nnUNet_raw")
    source = Path(args.source) if Path(args.source).is_dir() else raw / resolve_dataset_name(args.source)
    name = args.name or source.name.split("_", 1)[-1] + "Boxes"
    target = raw / dataset_folder_name(args.dataset_id, name)
    strong = None
    if args.strong is not None:
        strong = Path(args.strong) if Path(args.strong).is_dir() else raw / resolve_dataset_name(args.strong)
    write_coarse_label_dataset(source, target, args.label_source, args.merge_per_slice, args.link_mode,
                               args.overwrite, args.ignore_inside, args.margin_mm, args.core_fraction, strong)
    print(f"{'ignore-label' if args.ignore_inside else 'coarse-label'} dataset ready: {target}")
    print(f"next: nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c 3d_fullres --verify_dataset_integrity")
    return 0
