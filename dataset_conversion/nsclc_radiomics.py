"""NSCLC-Radiomics (TCIA "Lung1": per patient a CT series and an RTSTRUCT) → nnU-Net raw dataset.

Series are classified from their headers (``Modality`` CT / RTSTRUCT / SEG), never from folder names, which
differ between NBIA download versions. Each RTSTRUCT names its CT through
``ReferencedFrameOfReferenceSequence → RTReferencedStudySequence → RTReferencedSeriesSequence``; that CT series
becomes the case. The tumour ROI(s) are rasterised with rt-utils (pointed at a folder holding only that CT's
files, since it reads every DICOM file under the folder it is given).

ROI choice: names are normalised (lower case, ``_`` and spaces → ``-``, stripped) and matched in full against
``roi_pattern`` (a regular expression; default ``gtv-?1``: ``GTV-1``, ``gtv_1``, ``GTV 1``, ``GTV1``); every
matching ROI is merged. ``merge_all_gtvs`` uses ``gtv.*`` instead (primary plus nodal GTVs). A case without a
matching ROI (e.g. LUNG1-128) is excluded with the ROI names it has. CT series with missing slices (irregular
steps between positions along the normal, e.g. LUNG1-014) are excluded with the gap in the reason, because
SimpleITK would otherwise spread the slices over one average spacing; ``interpolate_missing_slices`` fills them
instead (CT: linear between the neighbours, label: nearer neighbour; counted in the manifest) when every present
slice lies on the regular grid of the modal step.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_kd.dataset_conversion.dicom_series import (
    DicomSeries,
    check_slice_spacing,
    iter_dicom_files,
    regular_grid_indices,
    scan_series,
)
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
from nnunet_kd.splits import choose_test_patients

PRIMARY_GTV_PATTERN = r"gtv-?1"
ALL_GTVS_PATTERN = r"gtv.*"
COLUMNS = (
    "source", "case", "patient", "status", "reason", "split", "rois", "num_slices", "shape_zyx", "spacing_zyx",
    "label_voxels", "tumour_volume_ml", "interpolated_slices", "crop_method", "crop_zyx", "rtstruct", "ct_folder",
)


@dataclass(frozen=True)
class NsclcOptions(ConversionOptions):
    """Conversion settings."""

    roi_pattern: str = PRIMARY_GTV_PATTERN
    merge_all_gtvs: bool = False
    interpolate_missing_slices: bool = False  # default: exclude CTs with missing slices
    dataset_name: str = "NSCLCRadiomics"

    @property
    def pattern(self) -> str:
        return ALL_GTVS_PATTERN if self.merge_all_gtvs else self.roi_pattern


@dataclass
class NsclcReport:
    """Kept cases and manifest rows."""

    output_folder: Path
    kept_cases: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def normalise_roi_name(name: str) -> str:
    """``" GTV_1 "`` → ``"gtv-1"``."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def matching_rois(names: list[str], pattern: str) -> list[str]:
    """ROI names whose normalised form matches ``pattern`` in full."""
    compiled = re.compile(pattern)
    return [name for name in names if compiled.fullmatch(normalise_roi_name(name))]


def referenced_series_uid(rtstruct) -> str | None:
    """SeriesInstanceUID of the image series an RTSTRUCT dataset was drawn on."""
    try:
        frame = rtstruct.ReferencedFrameOfReferenceSequence[0]
        return str(frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID)
    except (AttributeError, IndexError, KeyError):
        return None


def rasterise_rois(ct: DicomSeries, rtstruct_path: Path, names: list[str], warn_only: bool = False) -> np.ndarray:
    """Union of the named ROIs as a ``(z, y, x)`` uint8 mask on ``ct`` (z ascending along the normal).

    ``warn_only`` accepts an RTSTRUCT that references slices missing from the CT (their contours are dropped).
    """
    from rt_utils import RTStructBuilder

    with tempfile.TemporaryDirectory(prefix="nnunet-kd-ct-") as folder:
        for i, header in enumerate(ct.slices):
            os.symlink(header.path.resolve(), Path(folder) / f"{i:05d}.dcm")
        if warn_only:  # rt-utils 1.2.7's own warn_only path fails (NameError: 'warnings'); skip its check instead
            import pydicom
            from rt_utils import image_helper
            from rt_utils.rtstruct import RTStruct

            rt = RTStruct(image_helper.load_sorted_image_series(folder), pydicom.dcmread(rtstruct_path))
        else:
            rt = RTStructBuilder.create_from(dicom_series_path=folder, rt_struct_path=str(rtstruct_path))
        mask = np.zeros((ct.columns, ct.rows, len(ct.slices)), bool)
        for name in names:
            mask |= rt.get_roi_mask_by_name(name)
    return np.ascontiguousarray(np.transpose(mask, (2, 0, 1))).astype(np.uint8)


def convert(
    source_folder: str | os.PathLike, output_folder: str | os.PathLike, options: NsclcOptions = NsclcOptions()
) -> NsclcReport:
    """Convert an NSCLC-Radiomics download (``NSCLC-Radiomics/LUNG1-xxx/...``).

    Raises:
        InputError: the folder does not exist or holds no RTSTRUCT.
    """
    import pydicom

    source = Path(source_folder)
    if not source.is_dir():
        raise InputError(f"NSCLC-Radiomics source folder {source} does not exist")
    all_series = scan_series(iter_dicom_files(source))
    structures = [s for s in all_series if s.modality == "RTSTRUCT" and s.other_files]
    if not structures:
        raise InputError(f"no RTSTRUCT found under {source}")
    ct_by_uid = {s.series_instance_uid: s for s in all_series if s.modality == "CT"}
    out = prepare_output(output_folder, ["imagesTr", "labelsTr"])
    settings = {"roi_pattern": options.pattern, "crop": asdict(options.crop) if options.crop else None,
                "interpolate_missing_slices": options.interpolate_missing_slices}
    manifest = Manifest(out, COLUMNS, settings)
    manifest.summary = {"roi_pattern": options.pattern, "rtstructs": len(structures), "ct_series": len(ct_by_uid)}
    report = NsclcReport(out)
    patients = sorted({s.patient_id for s in structures})
    test_patients = choose_test_patients(patients, options.test_fraction, options.test_patients, options.seed)
    seen_patients: set[str] = set()
    jobs: list[tuple[str, dict[str, Any]]] = []
    rows: dict[str, dict[str, Any]] = {}
    done = 0

    for structure in structures:
        rtstruct_path = structure.other_files[0]
        case = structure.patient_id
        split = "test" if case in test_patients else "train"
        suffix = "Tr" if split == "train" else "Ts"
        image_out = out / f"images{suffix}" / f"{case}_0000.nii.gz"
        label_out = out / f"labels{suffix}" / f"{case}.nii.gz"
        row: dict[str, Any] = {"source": structure.series_instance_uid, "case": case, "patient": case, "split": split,
                               "rtstruct": str(rtstruct_path)}

        def exclude(reason: str) -> None:
            nonlocal done
            row.update(status=EXCLUDED, reason=reason, split="")
            if case not in seen_patients:  # a case kept by an earlier run with other settings leaves the dataset
                remove_outputs([image_out, label_out])
            manifest.record(row)
            done += 1
            progress(done, len(structures), case, f"excluded ({reason})", options.quiet)

        if case in seen_patients:
            exclude("another RTSTRUCT of this patient was already converted")
            continue
        rtstruct = pydicom.dcmread(rtstruct_path)
        ct = ct_by_uid.get(referenced_series_uid(rtstruct) or "")
        if ct is None:
            exclude(f"the CT series the RTSTRUCT references ({referenced_series_uid(rtstruct)}) is not in the download")
            continue
        row["inputs"] = files_fingerprint([rtstruct_path, *(header.path for header in ct.slices)])
        previous = manifest.finished(row["source"], [image_out, label_out], row["inputs"])
        if previous is not None and previous.get("split") == split:
            manifest.record(previous)
            report.kept_cases.append(case)
            seen_patients.add(case)
            done += 1
            progress(done, len(structures), case, "kept (already converted)", options.quiet)
            continue
        row.update(ct_folder=str(ct.slices[0].path.parent) if ct.slices else "", num_slices=len(ct.slices))
        spacing = check_slice_spacing(ct.slice_offsets())
        if not ct.consistent or not ct.is_axial:
            exclude("CT slices are not a consistent axial stack")
            continue
        grid = None
        if spacing.problem:
            grid = regular_grid_indices(ct.slice_offsets(), spacing.step_mm)
            if not options.interpolate_missing_slices or grid is None:
                exclude(spacing.problem)
                continue
        names = [str(item.ROIName) for item in rtstruct.get("StructureSetROISequence", [])]
        chosen = matching_rois(names, options.pattern)
        if not chosen:
            exclude(f"no ROI matches '{options.pattern}' (ROIs: {', '.join(names) or 'none'})")
            continue
        row["rois"] = ";".join(chosen)
        rows[case] = row
        seen_patients.add(case)
        jobs.append((case, {"ct": ct, "rtstruct_path": rtstruct_path, "names": chosen, "image_out": image_out,
                            "label_out": label_out, "crop": options.crop, "grid_indices": grid}))
    jobs_of = dict(jobs)
    for case, result in map_cases(convert_case, jobs, options.num_processes):
        row = rows[case]
        row.update(result)
        if row["status"] == KEPT:
            report.kept_cases.append(case)
        else:
            row["split"] = ""
            remove_outputs([jobs_of[case]["image_out"], jobs_of[case]["label_out"]])
        manifest.record(row)
        done += 1
        status = f"kept ({row['rois']})" if row["status"] == KEPT else f"excluded ({row['reason']})"
        status += manifest.status_note(row["source"])
        progress(done, len(structures), case, status, options.quiet)
    report.kept_cases.sort()

    train_cases = {c: c for c in report.kept_cases if c not in test_patients}
    manifest.summary["splits"] = write_patient_splits(out, train_cases, options.num_folds, options.seed)
    manifest.summary["test_patients"] = sorted(test_patients)
    manifest.save()
    write_dataset_json(out, len(train_cases), options.dataset_name,
                       description="NSCLC-Radiomics (Lung1) CT with GTV labels converted by nnunet_kd",
                       reference="https://doi.org/10.7937/K9/TCIA.2015.PF0M9REI", license="see TCIA (CC BY-NC 3.0)")
    report.rows = sorted(manifest.rows.values(), key=lambda r: str(r["case"]))
    return report


def convert_case(
    ct: DicomSeries, rtstruct_path: Path, names: list[str], image_out: Path, label_out: Path,
    crop: LungCropSettings | None, grid_indices: np.ndarray | None = None,
) -> dict[str, Any]:
    """Rasterise the chosen ROIs, read the CT, crop and write; returns manifest fields.

    With ``grid_indices`` (from :func:`~.dicom_series.regular_grid_indices`) missing slices are filled:
    the CT by linear interpolation between its neighbours, the label with the nearer neighbour's.
    """
    import SimpleITK as sitk

    from nnunet_kd.dataset_conversion.dicom_series import fill_missing_slices, image_from_volume, read_series_volume

    try:
        label_array = rasterise_rois(ct, rtstruct_path, names, warn_only=grid_indices is not None)
    except Exception as error:  # rt-utils raises bare Exceptions for unmatched references
        return {"status": EXCLUDED, "reason": f"RTSTRUCT contours cannot be placed on the CT ({error})"}
    if not label_array.any():
        return {"status": EXCLUDED, "reason": f"ROI(s) {', '.join(names)} are empty on the CT"}
    try:
        volume = read_series_volume(ct)
    except Exception as error:  # a damaged file excludes its case, it does not stop the conversion
        return {"status": EXCLUDED, "reason": f"CT pixel data unreadable ({type(error).__name__}: {error})"}
    interpolated = 0
    if grid_indices is not None:
        volume = fill_missing_slices(volume, grid_indices, interpolate=True)
        label_array = fill_missing_slices(label_array, grid_indices, interpolate=False)
        interpolated = volume.shape[0] - len(grid_indices)
    step = check_slice_spacing(ct.slice_offsets()).step_mm
    image = image_from_volume(ct, volume, step)
    label = sitk.GetImageFromArray(label_array)
    label.CopyInformation(image)
    fields = crop_and_write(image, image_out, [(label, label_out)], crop)
    voxels = fields.pop("mask_voxels")
    volume_ml = voxels * float(np.prod(image.GetSpacing())) / 1000.0
    return {"status": KEPT, "reason": "", "label_voxels": voxels, "tumour_volume_ml": round(volume_ml, 3),
            "interpolated_slices": interpolated, **fields}
