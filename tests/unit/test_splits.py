"""Patient-grouped splits: no patient on both sides of a fold, every case validated once, reproducible."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nnunet_kd.errors import InputError
from nnunet_kd.splits import choose_test_patients, patient_grouped_folds, write_splits


def _cases() -> dict[str, str]:
    """23 cases of 11 patients, some with several scans."""
    scans = {"P01": 5, "P02": 3, "P03": 3, "P04": 2, "P05": 2, "P06": 2, "P07": 1, "P08": 1, "P09": 1, "P10": 2,
             "P11": 1}
    return {f"{patient}_{k:02d}": patient for patient, n in scans.items() for k in range(n)}


def test_every_patient_in_exactly_one_validation_fold():
    cases = _cases()
    folds = patient_grouped_folds(cases, num_folds=5, seed=1)
    assert len(folds) == 5
    validated = Counter(case for fold in folds for case in fold["val"])
    assert set(validated) == set(cases) and set(validated.values()) == {1}
    for fold in folds:
        assert sorted(fold["train"] + fold["val"]) == sorted(cases)
        train_patients = {cases[c] for c in fold["train"]}
        val_patients = {cases[c] for c in fold["val"]}
        assert not train_patients & val_patients


def test_folds_are_balanced_and_reproducible():
    cases = _cases()
    folds = patient_grouped_folds(cases, num_folds=5, seed=7)
    sizes = [len(f["val"]) for f in folds]
    assert max(sizes) - min(sizes) <= 5  # at most one largest patient apart
    assert sum(sizes) == len(cases)
    assert folds == patient_grouped_folds(dict(reversed(list(cases.items()))), num_folds=5, seed=7)
    assert any(patient_grouped_folds(cases, 5, seed=s) != folds for s in range(8, 14))


def test_too_few_patients_is_an_input_error():
    with pytest.raises(InputError, match="2 patient"):
        patient_grouped_folds({"a_1": "a", "a_2": "a", "b_1": "b"}, num_folds=5)


def test_test_patients_fixed_plus_fraction():
    patients = [f"P{i:02d}" for i in range(20)]
    chosen = choose_test_patients(patients, fraction=0.2, fixed=("P03", "NOT_A_PATIENT"), seed=3)
    assert len(chosen) == 4 and "P03" in chosen and "NOT_A_PATIENT" not in chosen
    assert chosen == choose_test_patients(reversed(patients), fraction=0.2, fixed=("P03",), seed=3)
    assert choose_test_patients(patients) == set()


def test_written_file_is_nnunet_splits_format(tmp_path):
    folds = patient_grouped_folds(_cases(), 5)
    write_splits(tmp_path / "splits_final.json", folds)
    loaded = json.loads((tmp_path / "splits_final.json").read_text())
    assert isinstance(loaded, list) and len(loaded) == 5
    assert all(set(fold) == {"train", "val"} and all(isinstance(c, str) for c in fold["val"]) for fold in loaded)
