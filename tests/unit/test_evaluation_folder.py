"""Folder evaluation: pairing, source datasets, and clear errors for bad input (geometry, missing, non-integer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_kd.errors import InputError
from nnunet_kd.evaluation import EvaluationSettings, evaluate_folder
from nnunet_kd.evaluation.source_datasets import assign_sources, load_source_mapping, source_from_name

SPACING_XYZ = (0.8, 0.8, 2.5)


def write_label(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = SPACING_XYZ,
                origin: tuple[float, float, float] = (0.0, 0.0, 0.0), direction: tuple[float, ...] | None = None,
                ) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def cube(shape: tuple[int, int, int] = (6, 10, 10), lo: int = 2, hi: int = 6) -> np.ndarray:
    array = np.zeros(shape, dtype=np.uint8)
    array[lo:hi, lo:hi, lo:hi] = 1
    return array


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for case in ("lung_001", "lung_002", "nsclc_001"):
        write_label(ref / f"{case}.nii.gz", cube())
        write_label(pred / f"{case}.nii.gz", cube(lo=3))
    return ref, pred


def test_rows_per_case_with_sources_and_spacing(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    result = evaluate_folder("student", pred, ref)
    assert [r["case"] for r in result.rows] == ["lung_001", "lung_002", "nsclc_001"]
    assert [r["source"] for r in result.rows] == ["lung", "lung", "nsclc"]
    row = result.rows[0]
    assert row["model"] == "student"
    # reference cube: z, y, x 2..5 = 4³ = 64 voxels; prediction z, y, x 3..5 = 3³ = 27 voxels, all inside it
    assert row["dice"] == pytest.approx(2 * 27 / (64 + 27))
    assert row["ref_volume_cm3"] == pytest.approx(64 * 0.8 * 0.8 * 2.5 / 1000)


def test_missing_prediction_is_an_error_naming_the_case(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    (pred / "lung_002.nii.gz").unlink()
    with pytest.raises(InputError, match="no prediction for lung_002"):
        evaluate_folder("student", pred, ref)


def test_missing_cases_are_listed_when_allowed(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    (pred / "lung_002.nii.gz").unlink()
    write_label(pred / "extra_009.nii.gz", cube())
    result = evaluate_folder("student", pred, ref, EvaluationSettings(allow_missing=True))
    assert [r["case"] for r in result.rows] == ["lung_001", "nsclc_001"]
    assert result.skipped == [
        {"model": "student", "case": "lung_002", "reason": "no prediction"},
        {"model": "student", "case": "extra_009", "reason": "no reference"},
    ]


def test_extra_prediction_without_reference_is_an_error(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    write_label(pred / "extra_009.nii.gz", cube())
    with pytest.raises(InputError, match="no reference for extra_009"):
        evaluate_folder("student", pred, ref)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"array": cube(shape=(6, 10, 11))}, "size"),
        ({"spacing": (0.8, 0.8, 3.0)}, "spacing"),
        ({"origin": (0.0, 5.0, 0.0)}, "origin"),
        ({"direction": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, "direction"),
    ],
)
def test_geometry_mismatch_is_an_error_naming_the_case(folders: tuple[Path, Path], change: dict, message: str) -> None:
    ref, pred = folders
    write_label(pred / "nsclc_001.nii.gz", **{"array": cube(), **change})
    with pytest.raises(InputError, match=f"case nsclc_001: .*{message}"):
        evaluate_folder("student", pred, ref)


def test_non_integer_labels_are_an_error(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    write_label(pred / "lung_001.nii.gz", cube().astype(np.float32) * 0.5)
    with pytest.raises(InputError, match=r"case lung_001 \(prediction\): labels must be integers"):
        evaluate_folder("student", pred, ref)


def test_integral_float_labels_are_accepted(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    write_label(pred / "lung_001.nii.gz", cube(lo=3).astype(np.float32))
    assert evaluate_folder("student", pred, ref).rows[0]["dice"] == pytest.approx(2 * 27 / (64 + 27))


def test_negative_labels_are_an_error(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    write_label(ref / "lung_002.nii.gz", cube().astype(np.int16) - 1)
    with pytest.raises(InputError, match=r"case lung_002 \(reference\): labels must be >= 0"):
        evaluate_folder("student", pred, ref)


def test_missing_or_empty_folder_is_an_error(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ref, _ = folders
    with pytest.raises(InputError, match="prediction \\(student\\) folder .*nope does not exist"):
        evaluate_folder("student", tmp_path / "nope", ref)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no '\\*.nii.gz' files"):
        evaluate_folder("student", tmp_path / "empty", ref)


def test_source_mapping_files(tmp_path: Path) -> None:
    assert source_from_name("lung_001_extra") == "lung" and source_from_name("case7") == "case7"
    (tmp_path / "map.json").write_text(json.dumps({"a_1": "MSD", "b_2": "NSCLC"}))
    (tmp_path / "map.csv").write_text("case,source\na_1,MSD\nb_2,NSCLC\n")
    for name in ("map.json", "map.csv"):
        mapping = load_source_mapping(tmp_path / name)
        assert assign_sources(["a_1", "b_2"], mapping) == {"a_1": "MSD", "b_2": "NSCLC"}
    with pytest.raises(InputError, match="no entry for case c_3"):
        assign_sources(["a_1", "c_3"], load_source_mapping(tmp_path / "map.json"))


def test_worker_processes_give_the_same_rows(folders: tuple[Path, Path]) -> None:
    ref, pred = folders
    serial = evaluate_folder("student", pred, ref).rows
    parallel = evaluate_folder("student", pred, ref, EvaluationSettings(num_processes=2)).rows
    assert parallel == serial
