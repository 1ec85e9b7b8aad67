"""The command-line form of a teacher: ``DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]``.

Both the distillation spec (``nnunet_kd kd-spec --teacher``) and the pseudo-label export
(``nnunet_kd export-pseudo-labels --teacher``) name teachers this way, with nnU-Net's identifiers as
``nnUNetv2_predict`` takes them, e.g. ``901:nnUNetTrainerBoxGuided:3d_fullres_box:0,1:2`` or
``500:nnUNetTrainer__nnUNetResEncUNetMPlans:3d_fullres``. The two differ only in what an omitted part means (the
distillation spec: the student's fold; the export: every trained fold), so this module parses the text and leaves
the defaults to its callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnunet_kd.errors import ConfigurationError

SYNTAX = "DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]"


@dataclass(frozen=True)
class TeacherIdentifiers:
    """The parts of a teacher's text; ``None`` where the part was left out."""

    dataset: str
    trainer: str
    configuration: str
    plans: str | None = None
    folds: tuple[str, ...] | None = None  #: as written: ``('0', '1')``, ``('all',)``, ``('same',)``
    weight: float | None = None


def parse_teacher_identifiers(text: str) -> TeacherIdentifiers:
    """Split ``DATASET:TRAINER[__PLANS]:CONFIGURATION[:FOLDS[:WEIGHT]]`` (FOLDS comma-separated; WEIGHT > 0).

    Raises:
        ConfigurationError: wrong number of parts, an empty identifier, a weight that is not a positive number.
    """
    parts = text.split(":")
    if not 3 <= len(parts) <= 5 or not all(parts[:3]):
        raise ConfigurationError(
            f"teacher {text!r}: expected {SYNTAX}, e.g. 901:nnUNetTrainerBoxGuided:3d_fullres_box:0")
    trainer, _, plans = parts[1].partition("__")
    folds = tuple(f.strip() for f in parts[3].split(",") if f.strip()) if len(parts) > 3 else ()
    weight = None
    if len(parts) == 5 and parts[4]:
        try:
            weight = float(parts[4])
        except ValueError:
            raise ConfigurationError(f"teacher {text!r}: weight {parts[4]!r} is not a number") from None
        if not weight > 0:
            raise ConfigurationError(f"teacher {text!r}: weight must be positive, got {parts[4]}")
    return TeacherIdentifiers(parts[0], trainer, parts[2], plans or None, folds or None, weight)
