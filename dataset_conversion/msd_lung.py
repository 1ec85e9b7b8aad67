"""MSD Task06_Lung (``Task06_Lung/imagesTr``, ``labelsTr``, ``dataset.json``) → nnU-Net v2 raw dataset.

Cases are counted on disk (the real release has 63 labelled cases, although the MSD paper says 64); hidden
AppleDouble files (``._lung_001.nii.gz``) are skipped. Each image/label pair is checked: 3D, same size, same
origin/spacing/direction (differences below ``geometry_tolerance`` are float noise and the image's geometry is
copied to the label; larger ones exclude the case), label values in {0, 1}. Images are written as int16
``<case>_0000.nii.gz``, labels as uint8, optionally cropped to the lungs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings
from nnunet_kd.dataset_conversion.raw_dataset import (
    EXCLUDED,
    KEPT,
    ConversionOptions,
    Manifest,
    crop_and_write,
    map_cases,
    prepare_output,
    progress,
    remove_outputs,
    write_dataset_json,
    write_patient_splits,
)
from nnunet_kd.errors import InputError
from nnunet_kd.integrity.fingerprints import files_fingerprint
from nnunet_kd.integrity.image_files import read_image
from nnunet_kd.splits import choose_test_patients

if TYPE_CHECKING:
    import SimpleITK as sitk

COLUMNS = (
    "source", "case", "patient", "status", "reason", "split", "shape_zyx", "spacing_zyx", "label_voxels",
    "tumour_volume_ml", "crop_method", "crop_zyx",
)


@dataclass(frozen=True)
class MsdLungOptions(ConversionOptions):
    """Conversion settings."""

    geometry_tolerance: float = 1e-3  # mm / direction cosine
    dataset_name: str = "MSDLung"


@dataclass
class MsdReport:
    """Kept cases, manifest rows and what ``dataset.json`` claimed."""

    output_folder: Path
    kept_cases: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    cases_on_disk: int = 0
    num_training_in_json: int | None = None


def list_cases(images_folder: Path) -> list[str]:
    """Case names of ``*.nii.gz`` files, skipping names that start with ``.`` or ``_``."""
    return sorted(
        p.name[: -len(".nii.gz")] for p in images_folder.glob("*.nii.gz") if not p.name.startswith((".", "_"))
    )


def geometry_problem(image: sitk.Image, label: sitk.Image, tolerance: float) -> str | None:
    """Why ``label`` does not fit ``image`` (``None`` if it does, up to ``tolerance``)."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        return f"image is not a 3D single-channel volume ({image.GetDimension()}D)"
    if label.GetDimension() != 3:
        return f"label is {label.GetDimension()}D"
    if image.GetSize() != label.GetSize():
        return f"label size {label.GetSize()} differs from image size {image.GetSize()}"
    for what, a, b in (
        ("spacing", image.GetSpacing(), label.GetSpacing()),
        ("origin", image.GetOrigin(), label.GetOrigin()),
        ("direction", image.GetDirection(), label.GetDirection()),
    ):
        if not np.allclose(a, b, atol=tolerance, rtol=0):
            return f"label {what} {tuple(round(v, 4) for v in b)} differs from image {tuple(round(v, 4) for v in a)}"
    return None


def convert(
    source_folder: str | os.PathLike, output_folder: str | os.PathLike, options: MsdLungOptions = MsdLungOptions()
) -> MsdReport:
    """Convert an extracted ``Task06_Lung`` folder.

    Raises:
        InputError: ``imagesTr`` or ``labelsTr`` is missing, or no case is found.
    """
    source = Path(source_folder)
    images, labels = source / "imagesTr", source / "labelsTr"
    for folder in (images, labels):
        if not folder.is_dir():
            raise InputError(f"MSD Task06_Lung: folder {folder} is missing (expected imagesTr/ and labelsTr/)")
    cases = list_cases(images)
    if not cases:
        raise InputError(f"MSD Task06_Lung: no *.nii.gz case in {images}")
    out = prepare_output(output_folder, ["imagesTr", "labelsTr"])
    settings = {"crop": asdict(options.crop) if options.crop else None, "tolerance": options.geometry_tolerance}
    manifest = Manifest(out, COLUMNS, settings)
    report = MsdReport(out, cases_on_disk=len(cases))
    if (source / "dataset.json").is_file():
        report.num_training_in_json = json.loads((source / "dataset.json").read_text()).get("numTraining")
    manifest.summary = {"cases_on_disk": len(cases), "numTraining_in_source_dataset_json": report.num_training_in_json}
    test_patients = choose_test_patients(cases, options.test_fraction, options.test_patients, options.seed)

    jobs: list[tuple[str, dict[str, Any]]] = []
    rows: dict[str, dict[str, Any]] = {}
    done = 0
    for case in cases:
        split = "test" if case in test_patients else "train"
        suffix = "Tr" if split == "train" else "Ts"
        image_out = out / f"images{suffix}" / f"{case}_0000.nii.gz"
        label_out = out / f"labels{suffix}" / f"{case}.nii.gz"
        inputs = files_fingerprint([images / f"{case}.nii.gz", labels / f"{case}.nii.gz"])
        row: dict[str, Any] = {"source": f"{case}.nii.gz", "case": case, "patient": case, "split": split,
                               "inputs": inputs}
        previous = manifest.finished(row["source"], [image_out, label_out], inputs)
        if previous is not None and previous.get("split") == split:
            manifest.record(previous)
            report.kept_cases.append(case)
            done += 1
            progress(done, len(cases), case, "kept (already converted)", options.quiet)
            continue
        rows[case] = row
        jobs.append((case, {"image_path": images / f"{case}.nii.gz", "label_path": labels / f"{case}.nii.gz",
                            "image_out": image_out, "label_out": label_out, "crop": options.crop,
                            "tolerance": options.geometry_tolerance}))
    jobs_of = dict(jobs)
    for case, result in map_cases(convert_case, jobs, options.num_processes):
        row = rows[case]
        row.update(result)
        if row["status"] == KEPT:
            report.kept_cases.append(case)
        else:  # a case kept by an earlier run with other settings must not stay in the dataset
            row["split"] = ""
            remove_outputs([jobs_of[case]["image_out"], jobs_of[case]["label_out"]])
        manifest.record(row)
        done += 1
        status = row["status"] + (f" ({row['reason']})" if row["reason"] else "") + manifest.status_note(row["source"])
        progress(done, len(cases), case, status, options.quiet)
    report.kept_cases.sort()

    train_cases = {c: c for c in report.kept_cases if c not in test_patients}
    manifest.summary["splits"] = write_patient_splits(out, train_cases, options.num_folds, options.seed)
    manifest.summary["test_patients"] = sorted(test_patients)
    manifest.save()
    write_dataset_json(out, len(train_cases), options.dataset_name,
                       description="MSD Task06_Lung converted by nnunet_kd", license="CC-BY-SA 4.0",
                       reference="http://medicaldecathlon.com/")
    report.rows = sorted(manifest.rows.values(), key=lambda r: str(r["source"]))
    return report


def convert_case(
    image_path: Path, label_path: Path, image_out: Path, label_out: Path, crop: LungCropSettings | None,
    tolerance: float,
) -> dict[str, Any]:
    """Check and write one image/label pair; returns manifest fields (``status``, ``reason``, geometry, voxels)."""
    import SimpleITK as sitk

    if not label_path.is_file():
        return {"status": EXCLUDED, "reason": "no label file in labelsTr"}
    try:  # whole files with finite voxels only: SimpleITK would read a cut-off file as zeros, NaN as 0 HU
        image, label = read_image(image_path, "image"), read_image(label_path, "label")
    except InputError as error:  # a damaged file excludes its case, it does not stop the conversion
        return {"status": EXCLUDED, "reason": f"unreadable NIfTI: {error}"}
    problem = geometry_problem(image, label, tolerance)
    if problem is not None:
        return {"status": EXCLUDED, "reason": problem}
    values = [int(v) if float(v).is_integer() else float(v) for v in np.unique(sitk.GetArrayViewFromImage(label))]
    if not set(values) <= {0, 1}:
        return {"status": EXCLUDED, "reason": f"label values {values} are not within {{0, 1}}"}
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        image = sitk.Round(image)
    image = sitk.Cast(image, sitk.sitkInt16)
    label = sitk.Cast(label, sitk.sitkUInt8)
    label.CopyInformation(image)
    fields = crop_and_write(image, image_out, [(label, label_out)], crop)
    voxels = fields.pop("mask_voxels")
    spacing = np.prod(fields["spacing_zyx"])
    return {"status": KEPT, "reason": "", "label_voxels": voxels,
            "tumour_volume_ml": round(voxels * float(spacing) / 1000.0, 3), **fields}

