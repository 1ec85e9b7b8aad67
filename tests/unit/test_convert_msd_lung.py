"""MSD Task06_Lung conversion on a synthetic Task06_Lung folder (hidden files, bad pairs, nnU-Net names)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from _synthetic_sources import nnunet_case_checks

from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings
from nnunet_kd.dataset_conversion.msd_lung import MsdLungOptions, convert
from nnunet_kd.errors import InputError
from nnunet_kd.synthetic.chest_phantom import PhantomConfig, make_phantom

SPACING = (9.0, 9.0, 10.0)
ORIGIN = (-140.0, -150.0, -320.0)
GOOD = ["lung_001", "lung_003", "lung_004", "lung_006", "lung_009", "lung_010"]


def _write(array: np.ndarray, path, spacing=SPACING, pixel_type=None) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(ORIGIN)
    image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))  # a non-identity direction must survive
    sitk.WriteImage(sitk.Cast(image, pixel_type) if pixel_type is not None else image, str(path))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("msd") / "Task06_Lung"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    truth = {}
    config = PhantomConfig(shape_zyx=(16, 32, 32), spacing_xyz=SPACING, vessels_per_lung=1, tumours_per_case=(1, 1),
                           max_diameter_mm=40.0)
    for i, case in enumerate(GOOD + ["lung_014", "lung_015", "lung_016", "lung_018"]):
        phantom = make_phantom(config, rng=i)
        truth[case] = phantom
        _write(phantom.image, root / "imagesTr" / f"{case}.nii.gz")
        label = phantom.label.astype(np.float32)  # MSD labels are not always uint8 on disk
        if case == "lung_014":
            _write(label, root / "labelsTr" / f"{case}.nii.gz", spacing=(9.0, 9.0, 5.0))
        elif case == "lung_015":
            _write(label * 2, root / "labelsTr" / f"{case}.nii.gz")
        elif case == "lung_018":
            (root / "labelsTr" / f"{case}.nii.gz").write_bytes(b"not a nifti file")
        elif case != "lung_016":
            _write(label, root / "labelsTr" / f"{case}.nii.gz")
    (root / "imagesTr" / "._lung_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "labelsTr" / "._lung_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "dataset.json").write_text(json.dumps({"name": "Lung", "numTraining": 11, "labels": {"0": "background",
                                                                                                  "1": "cancer"}}))
    return root, truth


@pytest.fixture(scope="module")
def converted(task, tmp_path_factory):
    root, _ = task
    out = tmp_path_factory.mktemp("out") / "Dataset503_MSDLung"
    return out, convert(root, out, MsdLungOptions(quiet=True))


def test_cases_counted_on_disk_and_hidden_files_skipped(converted):
    out, report = converted
    assert report.cases_on_disk == 10 and report.num_training_in_json == 11
    assert report.kept_cases == GOOD
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in GOOD]


def test_images_and_labels_voxel_identical_with_geometry(task, converted):
    _, truth = task
    out, _ = converted
    for case in GOOD:
        image = sitk.ReadImage(str(out / "imagesTr" / f"{case}_0000.nii.gz"))
        label = sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz"))
        assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
        assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
        assert image.GetDirection() == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, 1))
        assert label.GetDirection() == image.GetDirection() and label.GetOrigin() == image.GetOrigin()
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), truth[case].image)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), truth[case].label)


def test_bad_pairs_excluded_with_reasons(converted):
    out, report = converted
    reasons = {row["case"]: row["reason"] for row in report.rows if row["status"] == "excluded"}
    assert "spacing" in reasons["lung_014"]
    assert "[0, 2]" in reasons["lung_015"]
    assert reasons["lung_016"] == "no label file in labelsTr"
    assert reasons["lung_018"].startswith("unreadable NIfTI")
    assert len(json.loads((out / "manifest.json").read_text())["rows"]) == 10


def test_splits_and_nnunet_integrity(converted):
    out, _ = converted
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(c for f in splits for c in f["val"]) == GOOD
    assert nnunet_case_checks(out) == GOOD


def test_lung_crop_keeps_label(task, tmp_path):
    root, truth = task
    report = convert(root, tmp_path / "cropped", MsdLungOptions(crop=LungCropSettings(method="classical"), quiet=True,
                                                                  num_folds=3))
    for row in (r for r in report.rows if r["status"] == "kept"):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cropped" / "labelsTr" / f"{row['case']}.nii.gz")))
        assert label.sum() == truth[row["case"]].label.sum()
        assert row["crop_method"] == "classical"


def test_missing_labels_folder_is_a_clear_error(tmp_path):
    (tmp_path / "Task06_Lung" / "imagesTr").mkdir(parents=True)
    with pytest.raises(InputError, match="labelsTr"):
        convert(tmp_path / "Task06_Lung", tmp_path / "out")


def test_command_line_and_cheap_import(task, tmp_path):
    import subprocess
    import sys

    from nnunet_kd.cli import main

    root, _ = task
    assert main(["convert-msd-lung", str(root), "-o", str(tmp_path / "cli"), "--folds", "3", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "cli" / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in GOOD]
    probe = ("import sys, nnunet_kd.commands.convert_msd_lung, nnunet_kd.commands.convert_nsclc, "
             "nnunet_kd.commands.convert_lung_pet_ct_dx; "
             "print(sorted(m for m in ('numpy', 'SimpleITK', 'pydicom', 'torch', 'nnunetv2') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_parallel_conversion_gives_the_same_dataset(converted, task, tmp_path):
    root, _ = task
    serial_out, serial = converted
    report = convert(root, tmp_path / "parallel", MsdLungOptions(quiet=True, num_processes=2))
    assert report.kept_cases == serial.kept_cases
    assert [(r["case"], r["status"], r["reason"]) for r in report.rows] == [
        (r["case"], r["status"], r["reason"]) for r in serial.rows
    ]
    for case in GOOD:
        for folder, name in (("imagesTr", f"{case}_0000.nii.gz"), ("labelsTr", f"{case}.nii.gz")):
            ours = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "parallel" / folder / name)))
            np.testing.assert_array_equal(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(serial_out / folder / name))))


def test_rerun_converts_again_exactly_the_case_whose_source_label_changed(task, tmp_path, capsys):
    import shutil

    root, truth = task
    source = tmp_path / "Task06_Lung"
    shutil.copytree(root, source)
    out = tmp_path / "Dataset503_MSDLung"
    convert(source, out, MsdLungOptions(quiet=True))
    relabelled = truth["lung_003"].label.copy()
    relabelled[relabelled > 0] = 0  # the corrected label has no tumour voxel left
    _write(relabelled.astype(np.float32), source / "labelsTr" / "lung_003.nii.gz")
    untouched = (out / "labelsTr" / "lung_001.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    convert(source, out, MsdLungOptions())
    err = capsys.readouterr().err
    assert "lung_003: kept (sources changed since the last run, converted again)" in err
    assert "lung_001: kept (already converted)" in err
    assert (out / "labelsTr" / "lung_001.nii.gz").stat().st_mtime_ns == untouched
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "lung_003.nii.gz")))
    assert not label.any()
