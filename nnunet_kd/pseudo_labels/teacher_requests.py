"""Teacher models of a pseudo-label export: how they are named, found and checked against each other.

A teacher is a trained nnU-Net model folder, named by nnU-Net's identifiers (as ``nnUNetv2_predict`` takes them):
``DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]`` (:mod:`nnunet_kd.distillation.teacher_identifiers`), e.g.
``901:nnUNetTrainerBoxGuided:3d_fullres_box:0,1:2`` (plans default ``nnUNetPlans``, folds default: every fold with a
checkpoint, weight default 1), or an entry of a JSON list with the keys ``dataset, trainer, plans, configuration,
folds, weight, checkpoint``.

A teacher whose configuration names a ``previous_stage`` is box-guided (nnU-Net's cascade input path takes the box
masks); any other teacher is plain (point-guided in the paper's terms) and sees only the images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_kd.distillation.teacher_identifiers import parse_teacher_identifiers
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.paths import nnunet_folder, resolve_dataset_name
from nnunet_kd.plans import resolved_configuration

SUPPORTED_READER = "SimpleITKIO"


@dataclass(frozen=True)
class TeacherRequest:
    """What the user asked for: nnU-Net identifiers, folds (``None`` = all available) and a weight.

    Not the distillation spec's :class:`~nnunet_kd.distillation.spec.TeacherSpec`: there, omitted folds mean the
    student's fold (a teacher must not have seen the student's validation cases), and the entry carries distillation
    settings.
    """

    dataset: str
    trainer: str
    configuration: str
    plans: str = "nnUNetPlans"
    folds: tuple[str, ...] | None = None
    weight: float = 1.0
    checkpoint: str = "checkpoint_final.pth"


@dataclass(frozen=True)
class Teacher:
    """A teacher resolved to its model folder, with what the export needs to know about it."""

    spec: TeacherRequest
    folder: Path
    folds: tuple[str, ...]
    labels: dict[str, int]
    num_channels: int
    file_ending: str
    box_guided: bool

    @property
    def name(self) -> str:
        """``<dataset>:<trainer>__<plans>__<configuration>:<folds>`` for tables and messages."""
        return f"{self.folder.parent.name}:{self.folder.name}:{','.join(self.folds)}"


def parse_teacher(text: str) -> TeacherRequest:
    """Parse ``DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]`` (omitted folds: every trained fold).

    Raises:
        ConfigurationError: malformed text.
    """
    parsed = parse_teacher_identifiers(text)
    weight = 1.0 if parsed.weight is None else parsed.weight
    return TeacherRequest(parsed.dataset, parsed.trainer, parsed.configuration, parsed.plans or "nnUNetPlans",
                       parsed.folds, weight)


def load_teacher_file(path: str | os.PathLike) -> list[TeacherRequest]:
    """Read teachers from a JSON file: a list of objects (or ``{"teachers": [...]}``).

    Raises:
        ConfigurationError: unreadable file, unknown or missing keys.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"teacher file {path}: {error}") from None
    entries = data.get("teachers") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"teacher file {path}: expected a non-empty list of teachers")
    allowed = {"dataset", "trainer", "plans", "configuration", "folds", "weight", "checkpoint"}
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"dataset", "trainer", "configuration"} <= set(entry):
            raise ConfigurationError(f"teacher file {path}, entry {i}: needs dataset, trainer and configuration")
        unknown = set(entry) - allowed
        if unknown:
            raise ConfigurationError(f"teacher file {path}, entry {i}: unknown key(s) {sorted(unknown)}")
        folds = entry.get("folds")
        folds = None if folds is None else tuple(str(f) for f in (folds if isinstance(folds, list) else [folds]))
        specs.append(TeacherRequest(str(entry["dataset"]), entry["trainer"], entry["configuration"],
                                 entry.get("plans", "nnUNetPlans"), folds, float(entry.get("weight", 1.0)),
                                 entry.get("checkpoint", "checkpoint_final.pth")))
    return specs


def resolve_teacher(spec: TeacherRequest) -> Teacher:
    """Find the model folder of ``spec`` under ``$nnUNet_results`` and read its labels, channels and box input.

    Raises:
        ConfigurationError: missing folder, fold checkpoint, configuration, or an unsupported setting.
    """
    folder = nnunet_folder("nnUNet_results") / resolve_dataset_name(spec.dataset) / (
        f"{spec.trainer}__{spec.plans}__{spec.configuration}")
    if not folder.is_dir():
        raise ConfigurationError(f"teacher model folder {folder} does not exist (train it first, or check the "
                                 "dataset, trainer, plans and configuration)")
    if spec.folds is None:
        folds = tuple(sorted((p.name[len("fold_"):] for p in folder.glob("fold_*")
                              if (p / spec.checkpoint).is_file()), key=lambda f: (not f.isdigit(), f.zfill(4))))
        if not folds:
            raise ConfigurationError(f"teacher {folder}: no fold has a {spec.checkpoint}")
    else:
        folds = spec.folds
        missing = [f for f in folds if not (folder / f"fold_{f}" / spec.checkpoint).is_file()]
        if missing:
            raise ConfigurationError(f"teacher {folder}: no {spec.checkpoint} for fold(s) {', '.join(missing)}")
    try:
        dataset_json = json.loads((folder / "dataset.json").read_text())
        plans = json.loads((folder / "plans.json").read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"teacher {folder}: cannot read dataset.json/plans.json ({error})") from None
    if spec.configuration not in plans.get("configurations", {}):
        raise ConfigurationError(f"teacher {folder}: plans have no configuration {spec.configuration!r}")
    labels = dataset_json["labels"]
    if any(not isinstance(v, int) for v in labels.values()):
        raise ConfigurationError(f"teacher {folder}: region-based labels {labels} are not supported")
    reader = plans.get("image_reader_writer", SUPPORTED_READER)
    if reader != SUPPORTED_READER:
        raise ConfigurationError(f"teacher {folder}: image reader {reader} is not supported (only {SUPPORTED_READER})")
    box_guided = resolved_configuration(plans, spec.configuration).get("previous_stage") is not None
    return Teacher(spec, folder, tuple(folds), dict(labels), len(dataset_json["channel_names"]),
                   dataset_json["file_ending"], box_guided)


def check_teachers(
    teachers: Sequence[Teacher], num_channels: int, file_ending: str, have_boxes: bool
) -> dict[str, int]:
    """Check that the teachers can be ensembled on a dataset; returns their common label set.

    Raises:
        ConfigurationError: label sets differ, a teacher takes another number of channels or file type.
        InputError: a box-guided teacher but no box masks.
    """
    if not teachers:
        raise ConfigurationError("no teacher given (use --teacher or --teachers-json)")
    reference = teachers[0]
    for t in teachers[1:]:
        if t.labels != reference.labels:
            raise ConfigurationError(
                f"teachers have different label sets: {reference.name} has {reference.labels}, {t.name} has "
                f"{t.labels}; their probabilities cannot be averaged"
            )
    for t in teachers:
        if t.num_channels != num_channels:
            raise ConfigurationError(f"teacher {t.name} takes {t.num_channels} image channel(s), the weak dataset "
                                     f"has {num_channels}")
        if t.file_ending != file_ending:
            raise ConfigurationError(f"teacher {t.name} reads {t.file_ending} files, the weak dataset has "
                                     f"{file_ending}")
        if t.box_guided and not have_boxes:
            raise InputError(f"teacher {t.name} is box-guided (its configuration has a previous_stage) and expects "
                             "box masks, but none were given (no boxesTr folder in the weak dataset, no --boxes)")
    if sorted(reference.labels.values()) != list(range(len(reference.labels))):
        raise ConfigurationError(f"labels {reference.labels} are not consecutive from 0")
    return dict(reference.labels)
