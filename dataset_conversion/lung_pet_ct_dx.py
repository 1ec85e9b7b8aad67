"""Lung-PET-CT-Dx (TCIA download + annotation XMLs) → nnU-Net raw dataset of CT images and axial box masks.

Input: the NBIA download folder (``manifest-*/metadata.csv`` and ``Lung-PET-CT-Dx/Lung_Dx-A0001/<study>/<series>/
*.dcm``; folder names are not relied on, every series is classified from its headers) and the annotation folder
(``Annotation/A0001/<SOPInstanceUID>.xml``).

Per study one CT series becomes a case. Series are excluded, with the reason in the manifest, when they are not
CT (PET), are secondary captures / RGB (fused PET/CT), localizers or non-axial, have inconsistent slices, are
stacked multi-scans or have missing slices (duplicate positions, gaps), or cover a real-world z-length outside
[16, 60] cm (z-length = last - first slice position + slice step). Among the remaining series of a study the one
with most annotated slices is chosen (then most slices, then lowest series number).

A patient's boxes are spread over several series of one study, so every XML is resolved to its slice by
SOPInstanceUID, its box corners are mapped to patient coordinates and projected onto the chosen series of the
same FrameOfReferenceUID (nearest slice, nearest pixel). XML files that are malformed, name unknown UIDs, do not
match the slice size, or have no chosen series to land on are counted and listed in ``manifest.json``.

Output (``output_folder``): ``imagesTr/<case>_0000.nii.gz`` (int16 HU), ``boxesTr/<case>.nii.gz`` (uint8 0/1 box
masks, same geometry: the box-guided teacher's ``-prev_stage_predictions`` input), optionally
``labelsTr/<case>.nii.gz`` (the box masks as coarse labels, for training a box-supervised teacher), held-out test
patients under ``imagesTs``/``boxesTs``/``labelsTs``, ``dataset.json``, ``splits_final.json`` and the manifest.
Without coarse labels the dataset is for inference only (``nnUNetv2_predict -i imagesTr -prev_stage_predictions
boxesTr``); nnU-Net's integrity check, which wants ``labelsTr``, applies to the coarse-label variant.

Data: Li et al. (2020), Lung-PET-CT-Dx, The Cancer Imaging Archive, https://doi.org/10.7937/TCIA.2020.NNC2-0461
(CC BY 4.0).
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_kd.boxes.axial_boxes import AxialBox, rasterize_boxes
from nnunet_kd.dataset_conversion.dicom_series import (
    CT_IMAGE_STORAGE,
    DicomSeries,
    check_slice_spacing,
    iter_dicom_files,
    pixel_to_physical,
    scan_series,
    series_direction,
)
from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings
from nnunet_kd.dataset_conversion.lung_pet_ct_dx_annotations import SliceAnnotation, read_annotations
from nnunet_kd.dataset_conversion.raw_dataset import (
    EXCLUDED,
    KEPT,
    MISSING,
    ConversionOptions,
    Manifest,
    crop_and_write,
    map_cases,
    prepare_output,
    progress,
    write_dataset_json,
    write_patient_splits,
)
from nnunet_kd.errors import InputError
from nnunet_kd.integrity.fingerprints import files_fingerprint
from nnunet_kd.splits import choose_test_patients

SUBJECT_PREFIX = "Lung_Dx-"
_SETTINGS_THAT_CHANGE_OUTPUTS = ("min_z_length_mm", "max_z_length_mm", "write_coarse_labels", "drop_unknown_classes",
                                 "clip_boxes", "crop", "case_prefix")
COLUMNS = (
    "source", "case", "patient", "status", "reason", "split", "modality", "series_description", "study_uid",
    "num_slices", "shape_zyx", "spacing_zyx", "z_length_mm", "box_files_in_series", "box_files_projected",
    "num_boxes", "box_voxels", "label_voxels", "crop_method", "crop_zyx", "folder",
)


@dataclass(frozen=True)
class LungPetCtDxOptions(ConversionOptions):
    """Conversion settings (defaults follow the mixed-supervision paper and the dataset's TCIA documentation)."""

    min_z_length_mm: float = 160.0
    max_z_length_mm: float = 600.0
    write_coarse_labels: bool = False
    drop_unknown_classes: bool = False
    #: clip annotation boxes that reach outside their slice; otherwise such an XML file is not used (and reported)
    clip_boxes: bool = False
    case_prefix: str = "LungDx"
    dataset_name: str = "LungPETCTDx"


@dataclass
class Grid:
    """Voxel grid of a series from its headers: origin, spacing (x, y, z), direction columns, size (z, y, x)."""

    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray
    shape_zyx: tuple[int, int, int]

    def continuous_index(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) patient points → (N, 3) continuous (x, y, z) indices."""
        return ((np.asarray(points, float) - self.origin) @ self.direction) / self.spacing


@dataclass
class ConversionReport:
    """What :func:`convert` did: kept cases, manifest rows and the annotation accounting."""

    output_folder: Path
    kept_cases: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    annotation_counts: dict[str, int] = field(default_factory=dict)
    missing_series: list[str] = field(default_factory=list)
    annotation_problems: list[dict[str, str]] = field(default_factory=list)


def subject_short(patient_id: str) -> str:
    """``Lung_Dx-A0002`` → ``A0002`` (the annotation folder name)."""
    return patient_id[len(SUBJECT_PREFIX):] if patient_id.startswith(SUBJECT_PREFIX) else patient_id


def series_grid(series: DicomSeries) -> Grid:
    """The voxel grid :func:`~nnunet_kd.dataset_conversion.dicom_series.read_series_image` will give the series (from
    headers only)."""
    ordered = series.sorted_slices()
    spacing = check_slice_spacing(series.slice_offsets())
    return Grid(
        origin=np.asarray(ordered[0].position, float),
        spacing=np.array([series.pixel_spacing[1], series.pixel_spacing[0], spacing.step_mm or 1.0]),
        direction=series_direction(series),
        shape_zyx=(len(ordered), series.rows, series.columns),
    )


def exclusion_reason(series: DicomSeries, options: LungPetCtDxOptions) -> str | None:
    """Why a series cannot be a case (header checks only), or ``None``."""
    if series.modality != "CT":
        return f"modality {series.modality or 'unknown'} is not CT"
    if series.sop_class_uid != CT_IMAGE_STORAGE or series.samples_per_pixel != 1 or not (
        series.photometric_interpretation.startswith("MONOCHROME")
    ):
        return (
            f"not a CT image series (SOP class {series.sop_class_uid}, {series.samples_per_pixel} sample(s)/pixel, "
            f"{series.photometric_interpretation}): fused PET/CT, secondary capture or RGB"
        )
    if "LOCALIZER" in series.image_type:
        return "localizer (scout) series"
    if not series.slices:
        return "no image slices with position information"
    if not series.is_axial:
        return "not axial (reformatted orientation)"
    if not series.consistent:
        return "slices differ in size, pixel spacing or orientation"
    spacing = check_slice_spacing(series.slice_offsets())
    if spacing.problem:
        return spacing.problem
    if not options.min_z_length_mm <= spacing.z_length_mm <= options.max_z_length_mm:
        return (
            f"partial or oversized scan: z-length {spacing.z_length_mm:.1f} mm outside "
            f"[{options.min_z_length_mm:g}, {options.max_z_length_mm:g}] mm"
        )
    return None


def find_metadata_rows(source: Path) -> list[dict[str, str]]:
    """Rows of every ``metadata.csv`` under ``source`` (the NBIA download manifest)."""
    rows: list[dict[str, str]] = []
    for path in sorted(source.rglob("metadata.csv")):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def project_box_annotation(
    annotation: SliceAnnotation, source: DicomSeries, slice_index: int, grid: Grid, drop_unknown: bool,
    clip: bool = False,
) -> tuple[list[AxialBox], int] | str:
    """Boxes of one XML file on the target grid and how many were clipped to the slice, or the reason they cannot be
    placed (a box reaching outside the slice, unless ``clip``: such a box is not what the annotator drew)."""
    header = source.slices[slice_index]
    boxes, clipped = [], 0
    for box in annotation.boxes:
        if drop_unknown and not box.known_class:
            continue
        row_min, row_max, col_min, col_max = box.row_min, box.row_max, box.col_min, box.col_max
        if row_min < 0 or col_min < 0 or row_max >= source.rows or col_max >= source.columns:
            if not clip:
                return (f"box xmin {col_min} xmax {col_max} ymin {row_min} ymax {row_max} lies outside the "
                        f"{source.columns}x{source.rows} slice (--clip-boxes clips it)")
            row_min, col_min = max(row_min, 0), max(col_min, 0)
            row_max, col_max = min(row_max, source.rows - 1), min(col_max, source.columns - 1)
            if row_min > row_max or col_min > col_max:
                return f"box xmin {box.col_min} xmax {box.col_max} ymin {box.row_min} ymax {box.row_max} lies " \
                       f"entirely outside the {source.columns}x{source.rows} slice"
            clipped += 1
        rows = np.array([row_min, row_min, row_max, row_max])
        cols = np.array([col_min, col_max, col_min, col_max])
        index = grid.continuous_index(pixel_to_physical(source, header, rows, cols))
        k = int(round(float(index[:, 2].mean())))
        if not 0 <= k < grid.shape_zyx[0]:
            return "slice outside the chosen series"
        r0, r1 = int(round(index[:, 1].min())), int(round(index[:, 1].max()))
        c0, c1 = int(round(index[:, 0].min())), int(round(index[:, 0].max()))
        boxes.append(AxialBox(k, r0, r1, c0, c1))
    return boxes, clipped


def choose_series(candidates: list[DicomSeries], box_counts: Counter) -> DicomSeries:
    """Most annotated slices, then most slices, then lowest series number."""
    return sorted(
        candidates,
        key=lambda s: (-box_counts[s.series_instance_uid], -len(s.slices), s.series_number or 0, s.series_instance_uid),
    )[0]


def choose_per_study(
    all_series: list[DicomSeries], reasons: dict[str, str | None], box_counts: Counter
) -> list[DicomSeries]:
    """One series per study among those without an exclusion reason; the others get a reason in ``reasons``."""
    by_study: dict[str, list[DicomSeries]] = defaultdict(list)
    for series in all_series:
        if reasons[series.series_instance_uid] is None:
            by_study[series.study_instance_uid].append(series)
    chosen: list[DicomSeries] = []
    for study_series in by_study.values():
        best = choose_series(study_series, box_counts)
        chosen.append(best)
        for other in study_series:
            if other is not best:
                chosen_name = best.series_description or best.series_instance_uid
                reasons[other.series_instance_uid] = f"another series of the same study was chosen ({chosen_name})"
    return chosen


@dataclass
class ResolvedAnnotations:
    """Boxes per chosen series (by SeriesInstanceUID), XML files projected per series, counts and problems."""

    boxes_of: dict[str, list[AxialBox]] = field(default_factory=lambda: defaultdict(list))
    projected_files: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    problems: list[dict[str, str]] = field(default_factory=list)


def resolve_annotations(
    annotations: list[SliceAnnotation], slice_of: dict[str, tuple[DicomSeries, int]], chosen: list[DicomSeries],
    grids: dict[str, Grid], drop_unknown: bool, clip_boxes: bool = False,
) -> ResolvedAnnotations:
    """Place every XML's boxes on the chosen series of its slice's frame of reference, counting what fails."""
    target_of_frame: dict[str, DicomSeries] = {}
    for series in chosen:
        target_of_frame.setdefault(series.frame_of_reference_uid, series)
    resolved = ResolvedAnnotations()
    counts = resolved.counts
    for annotation in annotations:
        counts["unknown_class_boxes"] += sum(not b.known_class for b in annotation.boxes)
        counts["class_differs_from_folder_letter"] += sum(
            b.known_class and b.label.upper() != annotation.subject[:1].upper() for b in annotation.boxes
        )
        problem = None
        if annotation.sop_instance_uid not in slice_of:
            problem, key = "SOPInstanceUID not in the download", "unknown_uid"
        else:
            source_series, index = slice_of[annotation.sop_instance_uid]
            target = target_of_frame.get(source_series.frame_of_reference_uid)
            size_ok = (annotation.width, annotation.height) in ((0, 0), (source_series.columns, source_series.rows))
            if not size_ok:
                problem = f"<size> {annotation.width}x{annotation.height} does not match the slice"
                key = "size_mismatch"
            elif target is None:
                problem, key = "no kept CT series in this frame of reference", "no_target_series"
            else:
                placed = project_box_annotation(
                    annotation, source_series, index, grids[target.series_instance_uid], drop_unknown, clip_boxes
                )
                if isinstance(placed, str):
                    problem = placed
                    key = "box_outside_slice" if placed.startswith("box ") else "outside_target"
                else:
                    placed, clipped = placed
                    if clipped:
                        counts["boxes_clipped"] += clipped
                        resolved.problems.append({"file": str(annotation.path),
                                                  "problem": f"{clipped} box(es) clipped to the slice (--clip-boxes)"})
                    resolved.boxes_of[target.series_instance_uid].extend(placed)
                    resolved.projected_files[target.series_instance_uid] += 1
                    counts["resolved"] += 1
                    counts["projected_from_sibling_series"] += source_series is not target
        if problem is not None:
            counts[key] += 1
            resolved.problems.append({"file": str(annotation.path), "problem": problem})
    return resolved


def convert(
    source_folder: str | os.PathLike,
    output_folder: str | os.PathLike,
    annotation_folder: str | os.PathLike | None = None,
    options: LungPetCtDxOptions = LungPetCtDxOptions(),
) -> ConversionReport:
    """Convert a Lung-PET-CT-Dx download into an nnU-Net raw dataset (see the module docstring).

    Raises:
        InputError: the source folder does not exist or holds no DICOM file.
    """
    source = Path(source_folder)
    if not source.is_dir():
        raise InputError(f"Lung-PET-CT-Dx source folder {source} does not exist")
    if annotation_folder is None and (source / "Annotation").is_dir():
        annotation_folder = source / "Annotation"
    annotation_root = Path(annotation_folder) if annotation_folder is not None else None
    if annotation_root is not None and not annotation_root.is_dir():
        raise InputError(f"annotation folder {annotation_root} does not exist")
    files = [p for p in iter_dicom_files(source) if annotation_root is None or annotation_root not in p.parents]
    all_series = scan_series(files)
    if not all_series:
        raise InputError(f"no DICOM series found under {source}")
    out = prepare_output(output_folder, _subfolders(options))
    settings = {key: value for key, value in asdict(options).items() if key in _SETTINGS_THAT_CHANGE_OUTPUTS}
    manifest = Manifest(out, COLUMNS, settings)
    report = ConversionReport(out)

    # index slices, read annotations
    slice_of: dict[str, tuple[DicomSeries, int]] = {}
    for series in all_series:
        for i, header in enumerate(series.slices):
            slice_of[header.sop_instance_uid] = (series, i)
    annotations, malformed = read_annotations(annotation_root) if annotation_root is not None else ([], [])
    box_counts: Counter = Counter()
    for annotation in annotations:
        if annotation.sop_instance_uid in slice_of:
            box_counts[slice_of[annotation.sop_instance_uid][0].series_instance_uid] += 1

    # classify series and choose one per study
    reasons = {s.series_instance_uid: exclusion_reason(s, options) for s in all_series}
    chosen = choose_per_study(all_series, reasons, box_counts)
    chosen.sort(key=lambda s: (s.patient_id, s.study_date, s.study_instance_uid))
    case_of: dict[str, str] = {}
    per_patient: Counter = Counter()
    for series in chosen:
        short = subject_short(series.patient_id)
        per_patient[short] += 1
        case_of[series.series_instance_uid] = f"{options.case_prefix}_{short}_{per_patient[short]:02d}"
    test_patients = choose_test_patients(
        [subject_short(s.patient_id) for s in chosen], options.test_fraction, options.test_patients, options.seed
    )

    # resolve every annotation onto the chosen series of its frame of reference
    grids = {s.series_instance_uid: series_grid(s) for s in chosen}
    resolved = resolve_annotations(annotations, slice_of, chosen, grids, options.drop_unknown_classes,
                                   options.clip_boxes)
    counts = resolved.counts
    counts.update(files=len(annotations) + len(malformed), malformed=len(malformed))
    problems = [{"file": str(p), "problem": why} for p, why in malformed] + resolved.problems
    boxes_of, projected_files = resolved.boxes_of, resolved.projected_files

    # series listed in metadata.csv but absent on disk
    on_disk = {s.series_instance_uid for s in all_series}
    for row in find_metadata_rows(source):
        uid = (row.get("Series UID") or "").strip()
        if uid and uid not in on_disk:
            report.missing_series.append(uid)
            manifest.record({
                "source": uid, "patient": subject_short((row.get("Subject ID") or "").strip()), "status": MISSING,
                "reason": "listed in metadata.csv but absent on disk", "modality": row.get("Modality", ""),
                "series_description": row.get("Series Description", ""), "study_uid": row.get("Study UID", ""),
                "folder": row.get("File Location", ""),
            })

    manifest.summary = {
        "annotations": dict(counts),
        "annotation_problems": problems,
        "series_missing_on_disk": report.missing_series,
        "box_coordinates": "xmin/xmax = columns, ymin/ymax = rows, 0-based inclusive pixel indices",
        "z_length_definition": "last - first slice position along the normal + modal slice step",
    }
    jobs: list[tuple[str, dict[str, Any]]] = []
    pending: dict[str, dict[str, Any]] = {}
    done = 0
    for series in all_series:
        row = _base_row(series, box_counts)
        reason = reasons[series.series_instance_uid]
        if reason is not None:
            row.update(status=EXCLUDED, reason=reason)
            manifest.record(row)
            done += 1
            progress(done, len(all_series), row["patient"], f"excluded ({reason})", options.quiet)
            continue
        case = case_of[series.series_instance_uid]
        split = "test" if subject_short(series.patient_id) in test_patients else "train"
        outputs = _output_paths(out, case, split, options)
        boxes = boxes_of[series.series_instance_uid]
        # the slices and the boxes projected onto them: a changed annotation file changes its boxes
        inputs = files_fingerprint([header.path for header in series.slices], settings=boxes)
        previous = manifest.finished(series.series_instance_uid, outputs.values(), inputs)
        if previous is not None and previous.get("case") == case and previous.get("split") == split:
            manifest.record(previous)
            report.kept_cases.append(case)
            done += 1
            progress(done, len(all_series), case, "kept (already converted)", options.quiet)
            continue
        row.update(case=case, split=split, box_files_projected=projected_files[series.series_instance_uid],
                   num_boxes=len(boxes), inputs=inputs)
        pending[series.series_instance_uid] = row
        jobs.append((series.series_instance_uid, {"series": series, "boxes": boxes, "outputs": outputs,
                                                  "crop": options.crop}))
    for uid, result in map_cases(convert_series, jobs, options.num_processes):
        row = pending[uid]
        row.update(result)
        done += 1
        if row["status"] != KEPT:
            row.update(case="", split="")
            manifest.record(row)
            progress(done, len(all_series), row["patient"], f"excluded ({row['reason']})", options.quiet)
            continue
        row["label_voxels"] = row["box_voxels"] if options.write_coarse_labels else 0
        manifest.record(row)
        report.kept_cases.append(row["case"])
        progress(done, len(all_series), row["case"],
                 f"kept ({row['num_boxes']} boxes)" + manifest.status_note(uid), options.quiet)

    report.kept_cases.sort()
    patient_of = {case_of[s.series_instance_uid]: subject_short(s.patient_id) for s in chosen}
    train_cases = {c: patient_of[c] for c in report.kept_cases if patient_of[c] not in test_patients}
    manifest.summary["splits"] = write_patient_splits(out, train_cases, options.num_folds, options.seed)
    manifest.summary["test_patients"] = sorted(test_patients)
    manifest.save()
    write_dataset_json(
        out, len(train_cases), options.dataset_name,
        description="Lung-PET-CT-Dx CT with axial box masks (boxesTr) converted by nnunet_kd",
        reference="https://doi.org/10.7937/TCIA.2020.NNC2-0461", license="CC BY 4.0",
    )
    report.rows = sorted(manifest.rows.values(), key=lambda r: (str(r["patient"]), str(r["case"]), str(r["source"])))
    report.annotation_counts = dict(counts)
    report.annotation_problems = problems
    return report


def convert_series(
    series: DicomSeries, boxes: list[AxialBox], outputs: dict[str, Path], crop: LungCropSettings | None
) -> dict[str, Any]:
    """Read one chosen series, rasterise its boxes, crop, write image / box mask / label; returns manifest fields."""
    import SimpleITK as sitk

    from nnunet_kd.dataset_conversion.dicom_series import read_series_image

    try:
        image = read_series_image(series)
    except Exception as error:  # a damaged file excludes its series, it does not stop the conversion
        return {"status": EXCLUDED, "reason": f"pixel data unreadable ({type(error).__name__}: {error})"}
    box_image = sitk.GetImageFromArray(rasterize_boxes(boxes, tuple(reversed(image.GetSize()))))
    box_image.CopyInformation(image)
    masks = [(box_image, outputs["boxes"])] + ([(box_image, outputs["label"])] if "label" in outputs else [])
    fields = crop_and_write(image, outputs["image"], masks, crop)
    return {"status": KEPT, "reason": "", "box_voxels": fields.pop("mask_voxels"), **fields}


def _subfolders(options: LungPetCtDxOptions) -> list[str]:
    """Training folders (test folders are created when a held-out case is written)."""
    return ["imagesTr", "boxesTr"] + (["labelsTr"] if options.write_coarse_labels else [])


def _output_paths(out: Path, case: str, split: str, options: LungPetCtDxOptions) -> dict[str, Path]:
    suffix = "Tr" if split == "train" else "Ts"
    paths = {
        "image": out / f"images{suffix}" / f"{case}_0000.nii.gz", "boxes": out / f"boxes{suffix}" / f"{case}.nii.gz"
    }
    if options.write_coarse_labels:
        paths["label"] = out / f"labels{suffix}" / f"{case}.nii.gz"
    return paths


def _base_row(series: DicomSeries, box_counts: Counter) -> dict[str, Any]:
    spacing = check_slice_spacing(series.slice_offsets()) if len(series.slices) > 1 else None
    folders = {str(s.path.parent) for s in series.slices} or {str(p.parent) for p in series.other_files}
    return {
        "source": series.series_instance_uid, "case": "", "patient": subject_short(series.patient_id),
        "modality": series.modality, "series_description": series.series_description,
        "study_uid": series.study_instance_uid, "num_slices": len(series.slices),
        "z_length_mm": round(spacing.z_length_mm, 2) if spacing else 0.0,
        "box_files_in_series": box_counts[series.series_instance_uid], "folder": sorted(folders)[0] if folders else "",
    }
