"""Patient-grouped cross-validation splits in nnU-Net's ``splits_final.json`` format.

All scans of one patient land in the same fold, so no patient is in a fold's training and validation set at
once (the mixed-supervision paper stratifies patients with several scans this way). Folds are balanced by
number of cases: patients with most cases are placed first, each into the fold with fewest cases so far; the
order among equally sized patients is a seeded shuffle, so a split is reproducible from (cases, seed).

nnU-Net copies ``splits_final.json`` from the raw dataset folder to the preprocessed folder when planning
(nnunetv2 >= 2.6, ``default_experiment_planner.py``), so converters write it next to ``dataset.json``.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.errors import ConfigurationError, InputError

SPLITS_FILE = "splits_final.json"


def patients_of(case_to_patient: Mapping[str, str]) -> dict[str, list[str]]:
    """``{patient: sorted cases}``."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for case, patient in case_to_patient.items():
        grouped[patient].append(case)
    return {patient: sorted(cases) for patient, cases in sorted(grouped.items())}


def patient_grouped_folds(
    case_to_patient: Mapping[str, str], num_folds: int = 5, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """``[{"train": [...], "val": [...]}, ...]`` with every patient's cases in exactly one validation fold.

    Raises:
        InputError: fewer patients than folds.
    """
    if num_folds < 2:
        raise ConfigurationError(f"--folds must be at least 2, got {num_folds}")
    groups = patients_of(case_to_patient)
    if len(groups) < num_folds:
        raise InputError(f"cannot make {num_folds} patient-grouped folds from {len(groups)} patient(s)")
    patients = list(groups)
    random.Random(seed).shuffle(patients)
    patients.sort(key=lambda p: -len(groups[p]))  # stable: the shuffle orders patients of equal size
    fold_cases: list[list[str]] = [[] for _ in range(num_folds)]
    for patient in patients:
        smallest = min(range(num_folds), key=lambda f: len(fold_cases[f]))
        fold_cases[smallest].extend(groups[patient])
    all_cases = sorted(case_to_patient)
    folds = []
    for val in fold_cases:
        held = set(val)
        folds.append({"train": [c for c in all_cases if c not in held], "val": sorted(val)})
    return folds


def choose_test_patients(
    patients: Iterable[str], fraction: float = 0.0, fixed: Iterable[str] = (), seed: int = 12345
) -> set[str]:
    """Patients held out as a test set: those in ``fixed`` plus a seeded random ``fraction`` of the rest.

    The choice depends only on the sorted patient list and the seed, so reruns hold out the same patients.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigurationError(f"--test-fraction must be in [0, 1), got {fraction}")
    all_patients = sorted(set(patients))
    chosen = {p for p in fixed if p in all_patients}
    rest = [p for p in all_patients if p not in chosen]
    count = int(round(fraction * len(all_patients)))
    random.Random(seed).shuffle(rest)
    chosen.update(rest[: max(0, count - len(chosen))])
    return chosen


def write_splits(path: str | os.PathLike, folds: list[dict[str, list[str]]]) -> None:
    """Write folds as ``splits_final.json`` (atomically)."""
    atomic_write_json(path, folds)
