"""Export pseudo-labels: strong cases with their ground truth plus weak cases labelled by a teacher ensemble.

:func:`prepare_output` checks the output dataset id and records the request; :func:`export_part` does the cases
of one part (``cases[part_id::num_parts]``), each case written file by file under temporary names and finished by
its provenance record; :func:`nnunet_kd.pseudo_labels.merge.merge_export` then writes ``dataset.json``, the
provenance tables and the QC report. A rerun skips cases that have a record, so an interrupted export resumes
where it stopped and never leaves a half-written file.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_kd.atomic import atomic_path, atomic_write_json
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.file_links import place_file
from nnunet_kd.integrity.fingerprints import files_fingerprint
from nnunet_kd.integrity.image_files import check_image_file, read_image
from nnunet_kd.paths import dataset_folder_name, datasets_with_id, refuse_writing_into_inputs
from nnunet_kd.pseudo_labels import layout
from nnunet_kd.pseudo_labels.cleanup import clean_with_boxes, dilated_boxes
from nnunet_kd.pseudo_labels.ensemble import hard_labels, normalised_weights
from nnunet_kd.pseudo_labels.predictor import ProbabilityModel
from nnunet_kd.pseudo_labels.provenance import CaseRecord, Thresholds, label_statistics
from nnunet_kd.pseudo_labels.source_cases import KIND_PSEUDO, SourceCase
from nnunet_kd.pseudo_labels.uncertainty import UncertainBand, uncertain_voxels, with_ignore_label

REQUEST_FORMAT = 1


@dataclass(frozen=True)
class ExportOptions:
    """How cases are written.

    Attributes:
        link_mode: how images (and strong labels, box masks) enter the dataset: ``hardlink`` (default; survives
            moving or deleting the source, falls back to a copy across file systems), ``copy``, or ``symlink``
            (breaks when the source moves).
        cleanup: box-constrained cleanup of the pseudo-labels (cases without boxes are left as predicted).
        thresholds: flag thresholds; ``margin_mm`` is also the cleanup margin.
        soft_labels: also save the ensemble probabilities as ``softLabelsTr/<case>.npz`` (float16).
        qc: write the visual QC report at the merge.
        qc_sample: QC panels for every flagged case plus this many randomly chosen other pseudo-labelled cases.
        seed: seed of that random choice.
        ignore_uncertain: ``(low, high)``: inside the (dilated) boxes, voxels whose ensemble tumour probability lies
            strictly between the two get nnU-Net's ignore label (:mod:`.uncertainty`); ``None``: hard labels only.
        ignore_disagreement: inside the (dilated) boxes, voxels on which the teachers' own hard labels disagree
            (tumour for some, background for others) get the ignore label; no effect with a single teacher.
    """

    link_mode: str = "hardlink"
    cleanup: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    soft_labels: bool = False
    qc: bool = True
    qc_sample: int = 5
    seed: int = 0
    ignore_uncertain: tuple[float, float] | None = None
    ignore_disagreement: bool = False

    def __post_init__(self) -> None:
        if self.ignore_uncertain is not None:
            UncertainBand(*self.ignore_uncertain)  # refuses thresholds out of order before anything is written


def build_request(dataset_folder_name_: str, cases: Sequence[SourceCase], teachers: Sequence[dict],
                  labels: dict[str, int], channel_names: dict[str, str], file_ending: str,
                  options: ExportOptions) -> dict:
    """The JSON-able description of an export; equal requests may resume each other's work."""
    request = {
        "format": REQUEST_FORMAT,
        "dataset": dataset_folder_name_,
        "teachers": list(teachers),
        "labels": labels,
        "channel_names": channel_names,
        "file_ending": file_ending,
        "options": asdict(options),
        "cases": [{"case": c.name, "source_dataset": c.source_dataset, "source_case": c.source_case, "kind": c.kind}
                  for c in cases],
    }
    return json.loads(json.dumps(request))


def read_request(folder: Path) -> dict | None:
    try:
        return json.loads((folder / layout.REQUEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def prepare_output(raw_root: Path, dataset_id: int, name: str, request: dict, overwrite: bool = False,
                   inputs: Sequence[Path] = ()) -> Path:
    """Create (or find, to resume) the output dataset folder and record the request.

    Parts of one export may start at the same time: they share the folder and write the same request. With
    ``overwrite``, start one part first (or remove the old dataset yourself), so that the others find its request.

    Raises:
        ConfigurationError: a dataset with this id exists and was not made by the same request, and ``overwrite``
            is False; or the output (or a dataset it would replace) is one of ``inputs``, the export's source
            folders, whatever ``overwrite`` says (nothing is touched then).
    """
    target = Path(raw_root) / dataset_folder_name(dataset_id, name)
    clashes = [p for p in datasets_with_id(raw_root, dataset_id) if p != target]
    refuse_writing_into_inputs([target, *clashes], inputs, "export-pseudo-labels")
    same = target.is_dir() and read_request(target) == request
    if not (same and not clashes):
        # a folder without any file but a request is another part of this export being set up, or an export that
        # stopped before its first case (a teacher that did not load): not a clash, nothing in it to lose
        fresh = target.is_dir() and not any(p.is_file() and p.relative_to(target).as_posix() != layout.REQUEST_FILE
                                            for p in target.rglob("*"))
        existing = clashes + ([target] if target.exists() and not fresh and not same else [])
        if existing and not overwrite:
            raise ConfigurationError(
                f"dataset id {dataset_id} already exists ({', '.join(str(p) for p in existing)}) and was not made by "
                "this export; pass --overwrite to replace it (rerunning an identical export resumes it instead)"
            )
        for path in existing:
            print(f"removing {path} (--overwrite)", flush=True)
            shutil.rmtree(path, ignore_errors=True)  # parts started together may both remove it
    for sub in layout.CASE_FOLDERS:
        (target / sub).mkdir(parents=True, exist_ok=True)
    if read_request(target) != request:
        atomic_write_json(target / layout.REQUEST_FILE, request)
    return target


def part_cases(cases: Sequence[SourceCase], num_parts: int = 1, part_id: int = 0) -> list[SourceCase]:
    """The cases of one part: every ``num_parts``-th case starting at ``part_id`` (as ``nnUNetv2_predict`` splits)."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ConfigurationError(f"part id {part_id} must be in 0..{num_parts - 1} (num parts {num_parts})")
    return list(cases[part_id::num_parts])


def case_fingerprint(case: SourceCase, teacher_checkpoints: Sequence[Path]) -> str:
    """What a case's output depends on: its images, label and box mask, and (pseudo-labelled) the teachers'
    checkpoints (:func:`~nnunet_kd.integrity.fingerprints.files_fingerprint`)."""
    teachers = list(teacher_checkpoints) if case.kind == KIND_PSEUDO else []
    return files_fingerprint([*case.images, case.label, case.boxes, *teachers])


def is_done(folder: Path, case: SourceCase, fingerprint: str | None = None) -> bool:
    """A case is finished when its record exists (it is written after every other file of the case) and, given a
    ``fingerprint``, was made from the same inputs."""
    record_file = layout.record_file(folder, case.name)
    if not record_file.is_file():
        return False
    if fingerprint is None:
        return True
    try:
        return json.loads(record_file.read_text()).get("inputs") == fingerprint
    except (OSError, ValueError):
        return False


def _place(source: Path, target: Path, mode: str) -> None:
    with atomic_path(target) as tmp:
        place_file(source, tmp, mode)


def _place_case_files(folder: Path, case: SourceCase, mode: str, file_ending: str) -> None:
    for channel, image in enumerate(case.images):
        _place(image, folder / layout.IMAGES / f"{case.name}_{channel:04d}{file_ending}", mode)
    if case.boxes is not None:
        _place(case.boxes, folder / layout.BOXES / f"{case.name}{file_ending}", mode)


def _image_info(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def write_label(labels: np.ndarray, reference_image: Path, target: Path) -> None:
    """Write a ``(z, y, x)`` label map with the geometry of ``reference_image``, atomically."""
    info = _image_info(reference_image)
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing(info.GetSpacing())
    image.SetOrigin(info.GetOrigin())
    image.SetDirection(info.GetDirection())
    with atomic_path(target) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def pseudo_label_case(
    probabilities: np.ndarray, box_mask: np.ndarray | None, spacing_zyx: tuple[float, ...], options: ExportOptions,
    disagreement: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Array part of one weak case: hard label, optional cleanup and the provenance numbers.

    Args:
        probabilities: ``(C, z, y, x)`` ensemble probabilities.
        box_mask: ``(z, y, x)`` binary box mask, or ``None``.
        spacing_zyx: voxel size in mm.
        options: cleanup switch and thresholds.
        disagreement: ``(z, y, x)`` bool, voxels where the teachers' hard labels differ (with
            ``options.ignore_disagreement``).

    Returns:
        ``(final label (z, y, x) uint8, record fields)``.
    """
    before = hard_labels(probabilities)
    labels, report = before, None
    ignoring = options.ignore_uncertain is not None or options.ignore_disagreement
    # the dilated boxes, computed once for the cleanup and the ignore rules (a distance transform of the volume)
    region = None if box_mask is None or not ignoring else dilated_boxes(np.asarray(box_mask) > 0, spacing_zyx,
                                                                         options.thresholds.margin_mm)
    if options.cleanup and box_mask is not None:
        labels, report = clean_with_boxes(before, box_mask, spacing_zyx, options.thresholds.margin_mm, region)
    stats = label_statistics(probabilities, labels, box_mask, spacing_zyx, options.thresholds, before,
                             None if report is None else report.removed_outside)
    fields = asdict(stats)
    fields["removed_outside_voxels"] = None if report is None else report.removed_outside
    fields["removed_components"] = None if report is None else report.removed_components
    if ignoring:
        # the numbers above describe the hard label; these count what then became the ignore label
        unsure = np.zeros(labels.shape, dtype=bool)
        if options.ignore_uncertain is not None:
            unsure |= uncertain_voxels(probabilities, UncertainBand(*options.ignore_uncertain), region)
        if options.ignore_disagreement and disagreement is not None:
            unsure |= disagreement if region is None else disagreement & region
        labels = with_ignore_label(labels, unsure, ignore_label=probabilities.shape[0])
        fields["ignored_voxels"] = int(unsure.sum())
        size = labels.size if region is None else int(region.sum())
        fields["ignored_fraction"] = float(unsure.sum() / size) if size else 0.0
    return labels, fields


def _ensemble(models: Sequence[ProbabilityModel], weights: Sequence[float], case: SourceCase,
              shape_zyx: tuple[int, ...], track_disagreement: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted probability average, accumulated teacher by teacher (one map in memory besides the sum), and, with
    ``track_disagreement``, the ``(z, y, x)`` voxels where the teachers' own hard labels disagree on tumour vs
    background (``None`` without: one label map per teacher is not computed for nothing)."""
    total: np.ndarray | None = None
    any_tumour = all_tumour = None
    for model, weight in zip(models, normalised_weights(weights), strict=True):
        p = model.predict(case.images, case.boxes if model.box_guided else None)
        if p.shape[1:] != shape_zyx:
            raise InputError(f"{case.name}: teacher {model.name} returned shape {p.shape[1:]}, the image is "
                             f"{shape_zyx}")
        if track_disagreement:
            tumour = hard_labels(p) > 0
            any_tumour = tumour if any_tumour is None else any_tumour | tumour
            all_tumour = tumour if all_tumour is None else all_tumour & tumour
        term = np.float32(weight) * p.astype(np.float32, copy=False)
        if total is None:
            total = term
        else:
            total += term
    return total, (any_tumour & ~all_tumour) if track_disagreement else None


def export_case(folder: Path, case: SourceCase, models: Sequence[ProbabilityModel] | None,
                weights: Sequence[float], teacher_names: Sequence[str], options: ExportOptions,
                file_ending: str, fingerprint: str | None = None) -> CaseRecord:
    """Write every file of one case, then its record (the 'done' marker, with the ``fingerprint`` of its inputs);
    returns the record."""
    record = CaseRecord(case.name, case.source_case, case.source_dataset, case.kind, inputs=fingerprint)
    label_target = folder / layout.LABELS / f"{case.name}{file_ending}"
    for channel, image in enumerate(case.images):  # nnU-Net's reader would take a cut-off image as it is
        check_image_file(image, f"{case.name}: image channel {channel}")
    if case.label is not None:
        check_image_file(case.label, f"{case.name}: label")
    if case.kind == KIND_PSEUDO:
        info = _image_info(case.images[0])
        shape_zyx = tuple(int(s) for s in reversed(info.GetSize()))
        spacing_zyx = tuple(float(s) for s in reversed(info.GetSpacing()))
        box_mask = None if case.boxes is None else sitk.GetArrayFromImage(
            read_image(case.boxes, f"{case.name}: box mask")) > 0
        probabilities, disagreement = _ensemble(models, weights, case, shape_zyx, options.ignore_disagreement)
        labels, fields = pseudo_label_case(probabilities, box_mask, spacing_zyx, options, disagreement)
        for key, value in fields.items():
            setattr(record, key, value)
        record.teachers = list(teacher_names)
        _place_case_files(folder, case, options.link_mode, file_ending)
        if options.soft_labels:
            with atomic_path(layout.soft_label_file(folder, case.name)) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, probabilities=probabilities.astype(np.float16))
        write_label(labels, case.images[0], label_target)
    else:
        _place_case_files(folder, case, options.link_mode, file_ending)
        _place(case.label, label_target, options.link_mode)
    atomic_write_json(layout.record_file(folder, case.name), record.to_dict())
    return record


def export_part(
    folder: Path,
    cases: Sequence[SourceCase],
    load_models: Callable[[], Sequence[ProbabilityModel]],
    weights: Sequence[float],
    teacher_names: Sequence[str],
    options: ExportOptions,
    file_ending: str,
    num_parts: int = 1,
    part_id: int = 0,
    progress: bool = True,
    teacher_checkpoints: Sequence[Path] = (),
) -> list[CaseRecord]:
    """Export the cases of one part that are not done yet, or whose inputs (files, teacher checkpoints) changed since
    they were exported; returns the records written now.

    Teachers are loaded (``load_models``) only if a pseudo-labelled case of this part is still to do.
    """
    mine = part_cases(cases, num_parts, part_id)
    layout.remove_stale_temporaries(folder, [c.name for c in mine])
    fingerprints = {c.name: case_fingerprint(c, teacher_checkpoints) for c in mine}
    todo = [c for c in mine if not is_done(folder, c, fingerprints[c.name])]
    changed = [c.name for c in todo if is_done(folder, c)]
    if progress:
        print(f"part {part_id + 1}/{num_parts}: {len(mine)} case(s), {len(mine) - len(todo)} already done", flush=True)
        if changed:
            print(f"{len(changed)} case(s) redone because their inputs or teachers changed since they were exported: "
                  f"{', '.join(changed[:10])}{' ...' if len(changed) > 10 else ''}", flush=True)
    models = load_models() if any(c.kind == KIND_PSEUDO for c in todo) else None
    written = []
    for number, case in enumerate(todo, start=1):
        start = time.perf_counter()
        record = export_case(folder, case, models, weights, teacher_names, options, file_ending,
                             fingerprints[case.name])
        written.append(record)
        if progress:
            detail = "ground truth" if record.kind != KIND_PSEUDO else (
                f"{record.num_boxes if record.num_boxes is not None else 'no'} box(es), fill "
                f"{', '.join(f'{f:.2f}' for f in record.box_fill) or '-'}, flags {', '.join(record.flags) or '-'}")
            print(f"[{number}/{len(todo)}] {case.name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
    return written

