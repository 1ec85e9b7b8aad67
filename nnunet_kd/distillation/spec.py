"""Which teachers a distillation run uses, and with which hyper-parameters: a small JSON file.

``nnUNetv2_train`` cannot pass extra arguments to a trainer, so a distillation trainer reads its teachers from
``$NNUNET_KD_SPEC`` (a path) if set, else from ``kd_teachers.json`` next to the student dataset's plans in
``$nnUNet_preprocessed/<dataset>/``. ``nnunet_kd kd-spec`` writes it. Example::

    {
      "teachers": [
        {"dataset": 500, "trainer": "nnUNetTrainerBoxGuided", "configuration": "3d_fullres_box", "folds": "same"},
        {"dataset": 503, "trainer": "nnUNetTrainer", "configuration": "3d_fullres", "folds": [0], "weight": 2.0},
        {"dataset": 504, "trainer": "nnUNet_Primus_M_Trainer", "configuration": "3d_fullres",
         "feature_stages": ["down_projection", "eva.blocks.5"]}
      ],
      "temperature": 2.0, "alpha": 0.1, "beta": 0.1, "weighting": "adaptive",
      "feature_stages": ["encoder.stages.0", "encoder.stages.1"], "feature_loss": "mse"
    }

Per teacher: nnU-Net identifiers (``plans`` defaults to ``nnUNetPlans``; ``folds`` is a list or ``"same"``, the
student's fold, the default: a teacher trained on the same split never saw the student's validation cases),
``checkpoint`` (default ``checkpoint_final.pth``), optional fixed ``weight`` (used by ``"weighting": "fixed"`` and as
the fallback of the adaptive scheme), optional ``feature_stages``: the teacher's own module names, one per student
stage in the global ``feature_stages`` (default: the student's names; needed when the architectures differ, e.g. a
Primus teacher, whose transformer tokens are put back on their patch grid). Global keys are optional and override the
trainer's class defaults, except where a trainer variant fixes them (its class name promises them): then the spec
must not set them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nnunet_kd.distillation.teacher_identifiers import parse_teacher_identifiers
from nnunet_kd.errors import ConfigurationError

SPEC_ENV = "NNUNET_KD_SPEC"
SPEC_FILE_NAME = "kd_teachers.json"
#: teacher weighting schemes (:func:`nnunet_kd.distillation.teacher_weights.compute_teacher_weights`)
WEIGHTING_SCHEMES = ("adaptive", "uniform", "fixed", "paper_literal")
FEATURE_LOSSES = ("mse", "cosine", "at_rc")
HYPER_PARAMETERS = ("temperature", "alpha", "beta", "weighting", "feature_stages", "feature_loss")


@dataclass(frozen=True)
class TeacherSpec:
    """One frozen teacher, named by nnU-Net identifiers."""

    dataset: str
    trainer: str
    configuration: str
    plans: str = "nnUNetPlans"
    folds: tuple[int, ...] | str = "same"
    checkpoint: str = "checkpoint_final.pth"
    weight: float | None = None
    name: str | None = None
    feature_stages: tuple[str, ...] | None = None

    def label(self, index: int) -> str:
        return self.name or f"teacher{index}"

    def resolved_folds(self, student_fold: int | str) -> tuple[int | str, ...]:
        if self.folds == "same":
            return (student_fold,)
        return tuple(self.folds)


@dataclass(frozen=True)
class KDSpec:
    """Teachers plus the hyper-parameters given in the file (``None`` = not given: the trainer's default)."""

    teachers: tuple[TeacherSpec, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        teachers = []
        for t in self.teachers:
            entry = {k: v for k, v in asdict(t).items() if v is not None}
            entry["folds"] = list(t.folds) if not isinstance(t.folds, str) else t.folds
            if t.feature_stages is not None:
                entry["feature_stages"] = list(t.feature_stages)
            teachers.append(entry)
        return {"teachers": teachers, **self.overrides}


def _teacher_from_json(entry: Any, index: int, source: str) -> TeacherSpec:
    where = f"{source}: teachers[{index}]"
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be an object with dataset, trainer and configuration")
    missing = [k for k in ("dataset", "trainer", "configuration") if k not in entry]
    if missing:
        raise ConfigurationError(f"{where} lacks {', '.join(missing)}")
    unknown = set(entry) - {f for f in TeacherSpec.__dataclass_fields__}
    if unknown:
        raise ConfigurationError(f"{where} has unknown keys {sorted(unknown)}")
    folds = entry.get("folds", "same")
    if folds != "same":
        if not isinstance(folds, list) or not folds:
            raise ConfigurationError(f"{where}: folds must be a non-empty list or \"same\"")
        folds = tuple(f if f == "all" else int(f) for f in folds)
    weight = entry.get("weight")
    if weight is not None and (not isinstance(weight, (int, float)) or weight <= 0):
        raise ConfigurationError(f"{where}: weight must be a positive number")
    stages = entry.get("feature_stages")
    if stages is not None and (not isinstance(stages, list) or not stages
                               or not all(isinstance(n, str) and n for n in stages)):
        raise ConfigurationError(f"{where}: feature_stages must be a non-empty list of module names")
    return TeacherSpec(dataset=str(entry["dataset"]), trainer=entry["trainer"], configuration=entry["configuration"],
                       plans=entry.get("plans", "nnUNetPlans"), folds=folds,
                       checkpoint=entry.get("checkpoint", "checkpoint_final.pth"),
                       weight=None if weight is None else float(weight), name=entry.get("name"),
                       feature_stages=None if stages is None else tuple(stages))


def _check_overrides(overrides: dict[str, Any], source: str) -> None:
    checks = {
        "temperature": lambda v: isinstance(v, (int, float)) and v > 0,
        "alpha": lambda v: isinstance(v, (int, float)) and v >= 0,
        "beta": lambda v: isinstance(v, (int, float)) and v >= 0,
        "weighting": lambda v: v in WEIGHTING_SCHEMES,
        "feature_stages": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "feature_loss": lambda v: v in FEATURE_LOSSES,
    }
    hints = {"weighting": f"one of {WEIGHTING_SCHEMES}", "feature_loss": f"one of {FEATURE_LOSSES}",
             "feature_stages": "a list of module names such as \"encoder.stages.0\"", "temperature": "> 0"}
    for key, value in overrides.items():
        if not checks[key](value):
            raise ConfigurationError(f"{source}: invalid {key} {value!r} (expected {hints.get(key, 'a number >= 0')})")


def parse_spec(obj: Any, source: str = "<spec>") -> KDSpec:
    """Validate a decoded spec; raises :class:`ConfigurationError` naming the file and the problem."""
    if not isinstance(obj, dict) or "teachers" not in obj:
        raise ConfigurationError(f"{source}: expected an object with a \"teachers\" list")
    unknown = set(obj) - {"teachers", *HYPER_PARAMETERS}
    if unknown:
        raise ConfigurationError(f"{source}: unknown keys {sorted(unknown)} (allowed: teachers, {', '.join(HYPER_PARAMETERS)})")
    if not isinstance(obj["teachers"], list) or not obj["teachers"]:
        raise ConfigurationError(f"{source}: \"teachers\" must list at least one teacher")
    teachers = tuple(_teacher_from_json(t, i, source) for i, t in enumerate(obj["teachers"]))
    overrides = {k: obj[k] for k in HYPER_PARAMETERS if k in obj}
    _check_overrides(overrides, source)
    if overrides.get("weighting") == "fixed" and any(t.weight is None for t in teachers):
        raise ConfigurationError(f"{source}: \"weighting\": \"fixed\" needs a weight for every teacher")
    return KDSpec(teachers, overrides, source)


def spec_path(preprocessed_dataset_folder: str | os.PathLike) -> Path:
    """``$NNUNET_KD_SPEC`` if set, else ``<preprocessed dataset>/kd_teachers.json``."""
    named = os.environ.get(SPEC_ENV, "").strip()
    return Path(named) if named else Path(preprocessed_dataset_folder) / SPEC_FILE_NAME


def load_spec(path: str | os.PathLike) -> KDSpec:
    """Read and validate a spec file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(
            f"distillation spec {path} not found; write one with 'nnunet_kd kd-spec' (or set {SPEC_ENV} to a file)"
        )
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"distillation spec {path} is not valid JSON: {error}") from None
    return parse_spec(obj, str(path))


def parse_teacher_argument(text: str) -> dict[str, Any]:
    """``DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]`` (FOLDS: ``same`` or ``0,1``) -> a spec entry.

    Raises:
        ConfigurationError: malformed text (see
            :func:`~nnunet_kd.distillation.teacher_identifiers.parse_teacher_identifiers`) or
            a fold that is neither a number nor ``all``.
    """
    parsed = parse_teacher_identifiers(text)
    entry: dict[str, Any] = {"dataset": parsed.dataset, "trainer": parsed.trainer,
                             "configuration": parsed.configuration}
    if parsed.plans:
        entry["plans"] = parsed.plans
    if parsed.folds == ("same",):
        entry["folds"] = "same"
    elif parsed.folds:
        if not all(f == "all" or f.isdigit() for f in parsed.folds):
            raise ConfigurationError(f"teacher {text!r}: folds must be numbers, 'all' or 'same'")
        entry["folds"] = [f if f == "all" else int(f) for f in parsed.folds]
    if parsed.weight is not None:
        entry["weight"] = parsed.weight
    return entry


def parse_teacher_stages_argument(text: str, num_teachers: int) -> tuple[int, list[str]]:
    """``INDEX=NAME[,NAME...]`` -> ``(teacher index, module names)``."""
    index, _, names = text.partition("=")
    stages = [name.strip() for name in names.split(",")]
    if not index.strip().isdigit() or not all(stages):
        raise ConfigurationError(f"--teacher-stages {text!r}: expected INDEX=NAME[,NAME...], e.g. 1=down_projection")
    if int(index) >= num_teachers:
        raise ConfigurationError(f"--teacher-stages {text!r}: there are only {num_teachers} teachers (index from 0)")
    return int(index), stages


def write_spec(path: str | os.PathLike, obj: dict[str, Any], overwrite: bool = False) -> bool:
    """Validate and write a spec (idempotent: an identical file is left alone; a different one needs overwrite).

    Returns:
        True if the file was written.
    """
    from nnunet_kd.atomic import atomic_write_json

    path = Path(path)
    parse_spec(obj, str(path))
    if path.is_file():
        try:
            if json.loads(path.read_text()) == obj:
                return False
        except json.JSONDecodeError:
            pass
        if not overwrite:
            raise ConfigurationError(f"{path} exists with other content; pass --overwrite to replace it")
    atomic_write_json(path, obj)
    return True
