"""The whole export as one call: check every input first, then export one part, then (single part) merge."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.paths import dataset_folder_name, nnunet_folder
from nnunet_kd.pseudo_labels.export import (
    ExportOptions,
    build_request,
    export_part,
    is_done,
    part_cases,
    prepare_output,
)
from nnunet_kd.pseudo_labels.merge import merge_export
from nnunet_kd.pseudo_labels.predictor import ProbabilityModel
from nnunet_kd.pseudo_labels.source_cases import (
    check_unique,
    locate_raw_dataset,
    read_raw_dataset,
    strong_cases,
    weak_cases,
)
from nnunet_kd.pseudo_labels.teacher_requests import Teacher, TeacherRequest, check_teachers, resolve_teacher

ModelFactory = Callable[[Teacher], ProbabilityModel]


def nnunet_model_factory(device: str = "cuda", use_mirroring: bool = True, tile_step_size: float = 0.5) -> ModelFactory:
    """Load teachers with nnU-Net's predictor (:class:`~nnunet_kd.pseudo_labels.predictor.NnunetTeacher`)."""

    def load(teacher: Teacher) -> ProbabilityModel:
        from nnunet_kd.pseudo_labels.predictor import NnunetTeacher

        return NnunetTeacher(teacher, device, use_mirroring, tile_step_size)

    return load


def export_pseudo_labels(
    teachers: Sequence[TeacherRequest],
    weak: str | os.PathLike,
    strong: str | os.PathLike | None = None,
    boxes: str | os.PathLike | None = None,
    output_id: int = 501,
    output_name: str = "PseudoLabels",
    options: ExportOptions | None = None,
    overwrite: bool = False,
    num_parts: int = 1,
    part_id: int = 0,
    weak_prefix: str = "weak",
    strong_prefix: str = "strong",
    model_factory: ModelFactory | None = None,
    output_root: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Export pseudo-labels into the raw dataset ``Dataset<output_id>_<output_name>``.

    Args:
        teachers: teacher identifiers with folds and weights.
        weak: weak raw dataset (path, id or name): ``imagesTr`` + box masks.
        strong: optional strong raw dataset (``imagesTr`` + ``labelsTr``) merged in with its ground truth.
        boxes: box-mask folder (default ``<weak>/boxesTr`` when it exists; none otherwise).
        output_id, output_name: the new dataset.
        options: link mode, cleanup, thresholds, soft labels, QC sampling (default :class:`ExportOptions`).
        overwrite: replace an existing dataset with this id that another request made.
        num_parts, part_id: export only ``cases[part_id::num_parts]``; with one part the merge follows directly.
        weak_prefix, strong_prefix: output case names are ``<prefix>_<case>``.
        model_factory: how teachers are loaded (default: nnU-Net's predictor on CUDA with mirroring).
        output_root: where the dataset folder goes (default ``$nnUNet_raw``).
        progress: print one line per case.

    Returns:
        The dataset folder.

    Raises:
        ConfigurationError, InputError: bad teachers, datasets, boxes or output id; raised before anything is written.
    """
    options = options or ExportOptions()
    resolved = [resolve_teacher(spec) for spec in teachers]
    weak_dataset = read_raw_dataset(locate_raw_dataset(weak))
    box_folder = Path(boxes) if boxes is not None else weak_dataset.folder / "boxesTr"
    if boxes is not None and not box_folder.is_dir():
        raise ConfigurationError(f"box folder {box_folder} does not exist")
    have_boxes = box_folder.is_dir()
    labels = check_teachers(resolved, len(weak_dataset.channel_names), weak_dataset.file_ending, have_boxes)
    cases = weak_cases(weak_dataset, box_folder if have_boxes else None, weak_prefix)
    if strong is not None:
        strong_dataset = read_raw_dataset(locate_raw_dataset(strong))
        if strong_dataset.labels != labels:
            raise ConfigurationError(f"strong dataset {strong_dataset.name} has labels {strong_dataset.labels}, the "
                                     f"teachers {labels}")
        if len(strong_dataset.channel_names) != len(weak_dataset.channel_names) or (
                strong_dataset.file_ending != weak_dataset.file_ending):
            raise ConfigurationError(f"strong dataset {strong_dataset.name} and weak dataset {weak_dataset.name} "
                                     "differ in channels or file ending")
        cases = strong_cases(strong_dataset, strong_prefix) + cases
    check_unique(cases)
    teacher_entries = [{"name": t.name, "weight": t.spec.weight, "checkpoint": t.spec.checkpoint,
                        "box_guided": t.box_guided} for t in resolved]
    root = Path(output_root) if output_root is not None else nnunet_folder("nnUNet_raw")
    request = build_request(dataset_folder_name(output_id, output_name), cases, teacher_entries, labels,
                            weak_dataset.channel_names, weak_dataset.file_ending, options)
    part_cases(cases, num_parts, part_id)  # check the part arguments before creating anything
    inputs = [weak_dataset.folder, box_folder if have_boxes else None,
              None if strong is None else strong_dataset.folder]
    existed = (root / dataset_folder_name(output_id, output_name)).exists()
    folder = prepare_output(root, output_id, output_name, request, overwrite, [p for p in inputs if p is not None])
    factory = model_factory or nnunet_model_factory()
    checkpoints = [t.folder / f"fold_{fold}" / t.spec.checkpoint for t in resolved for fold in t.folds]
    try:
        export_part(folder, cases, lambda: [factory(t) for t in resolved], [t.spec.weight for t in resolved],
                    [t.name for t in resolved], options, weak_dataset.file_ending, num_parts, part_id, progress,
                    checkpoints)
    except BaseException:
        # stopped before its first case (a teacher that does not load, Ctrl-C): nothing of this export to keep
        if num_parts == 1 and not existed and not any(is_done(folder, case) for case in cases):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if num_parts == 1:
        merge_export(folder, progress=progress)
    elif progress:
        print(f"part {part_id + 1}/{num_parts} done; when every part is done: nnunet_kd merge-pseudo-labels "
              f"-o {output_id}", flush=True)
    return folder
