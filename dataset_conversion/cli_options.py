"""Command-line options shared by the ``convert-*`` subcommands (cheap to import: argparse only)."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def add_common_arguments(parser: argparse.ArgumentParser, default_id: int, default_name: str) -> None:
    """Output location, lung crop, splits and verbosity options."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, help="output dataset folder (default: $nnUNet_raw/DatasetXXX_NAME)")
    where.add_argument("-d", "--dataset-id", type=int, default=default_id,
                       help=f"nnU-Net dataset id (default {default_id})")
    parser.add_argument("--name", default=default_name, help=f"dataset name (default {default_name})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace another dataset with this id, or an output folder that no converter made")
    crop = parser.add_argument_group("lung crop (bounding box of the lungs plus a margin; never a hard mask)")
    crop.add_argument("--crop", action="store_true", help="crop images, labels and boxes to the lungs")
    crop.add_argument("--crop-method", choices=("auto", "lungmask", "classical"), default="auto",
                      help="auto: lungmask R231 if its weights are on disk, else the classical threshold mask")
    crop.add_argument("--crop-margin-mm", type=float, default=15.0, help="margin around the lungs in mm (default 15)")
    crop.add_argument("--lungmask-weights", help="R231 weights file (unet_r231-d5d2fc3d.pth); nothing is downloaded")
    splits = parser.add_argument_group("splits (splits_final.json, grouped by patient)")
    splits.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (default 5)")
    splits.add_argument("--seed", type=int, default=12345, help="seed for the fold and test-set choice")
    splits.add_argument("--test-fraction", type=float, default=0.0, help="fraction of patients held out (imagesTs)")
    splits.add_argument("--test-patients", nargs="*", default=(),
                        help="patients always held out (ids as in the manifest: A0001, LUNG1-001, lung_001)")
    parser.add_argument("-np", "--processes", type=int, default=1,
                        help="convert this many cases in parallel (default 1; each process holds one volume)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-case progress lines")


def output_folder(args: argparse.Namespace) -> Path:
    """``--output`` or ``$nnUNet_raw/Dataset<id>_<name>``, checked before anything is written.

    A converter resumes in a folder it made (its ``manifest.json`` is there). It refuses, unless ``--overwrite``
    (which then removes them first), another dataset folder with the same id (nnU-Net would no longer resolve the id)
    and a non-empty output folder that no converter made; it never writes into its own source.

    Raises:
        ConfigurationError: one of the above, naming the folder.
    """
    from nnunet_kd.errors import ConfigurationError
    from nnunet_kd.paths import datasets_with_id, raw_dataset_folder, refuse_writing_into_inputs

    folder = args.output if args.output is not None else raw_dataset_folder(f"Dataset{args.dataset_id:03d}_{args.name}")
    refuse_writing_into_inputs([folder], [args.source, getattr(args, "annotations", None)], f"nnunet_kd {args.command}")
    clashes = [] if args.output is not None else [p for p in datasets_with_id(folder.parent, args.dataset_id)
                                                  if p != folder]
    foreign = folder.is_dir() and any(folder.iterdir()) and not (folder / "manifest.json").is_file()
    replaced = clashes + ([folder] if foreign else [])
    if replaced and not args.overwrite:
        raise ConfigurationError(f"{', '.join(map(str, replaced))} already exists and was not made by this converter "
                                 "(or has this dataset id); pass --overwrite to replace it")
    for path in replaced:
        print(f"removing {path} (--overwrite)", flush=True)
        shutil.rmtree(path)
    return folder


def crop_settings(args: argparse.Namespace):
    """:class:`~nnunet_kd.dataset_conversion.lung_crop.LungCropSettings` or ``None`` without ``--crop``."""
    if not args.crop:
        return None
    from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings

    return LungCropSettings(margin_mm=args.crop_margin_mm, method=args.crop_method,
                            lungmask_weights=args.lungmask_weights)


def split_settings(args: argparse.Namespace) -> dict:
    """Keyword arguments shared by every converter's options."""
    return {"test_fraction": args.test_fraction, "test_patients": tuple(args.test_patients), "num_folds": args.folds,
            "seed": args.seed, "dataset_name": args.name, "num_processes": args.processes, "quiet": args.quiet,
            "crop": crop_settings(args)}


def print_summary(kept: int, rows: list[dict], folder: Path) -> None:
    """One closing line: kept / excluded / missing counts and where the manifest is.

    Raises:
        InputError: no case was kept, naming the first reasons (the command then exits non-zero).
    """
    from nnunet_kd.errors import InputError

    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status") or "?"] = counts.get(row.get("status") or "?", 0) + 1
    details = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if kept == 0:
        reasons = [f"{row.get('case') or row.get('patient') or row.get('source')}: {row['reason']}"
                   for row in rows if row.get("reason")]
        shown = "; ".join(reasons[:3]) + (f"; {len(reasons) - 3} more" if len(reasons) > 3 else "")
        raise InputError(f"no case was kept ({details or 'no source case found'}{': ' + shown if shown else ''})")
    print(f"{kept} case(s) written to {folder} ({details}); see {folder / 'manifest.csv'}")


@contextmanager
def output_of_this_run(folder: Path) -> Iterator[Path]:
    """Remove ``folder`` again when the conversion fails and the folder did not exist before it started (a dataset
    with no case, or a half-made one, must not take the dataset id); a folder of an earlier run is kept to resume."""
    existed = folder.exists()
    try:
        yield folder
    except BaseException:
        if not existed and folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise
