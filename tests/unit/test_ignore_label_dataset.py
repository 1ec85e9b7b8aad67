"""``boxes-to-labels --ignore-inside``: background outside the boxes, nnU-Net's ignore label inside, strong cases
kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_reliability import raw_dataset, run_cli, snapshot, write_image

from nnunet_kd.boxes.coarse_labels import IGNORE, ignore_inside_boxes


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture
def raw(tmp_path, monkeypatch):
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    return tmp_path / "nnUNet_raw"


def test_margin_grows_the_boxes_in_plane_and_the_core_is_the_scaled_inscribed_ellipse():
    boxes = np.zeros((2, 12, 12), np.uint8)
    boxes[1, 2:7, 3:10] = 1  # rows 2..6 (5), columns 3..9 (7)
    labels = ignore_inside_boxes(boxes, (3.0, 2.0, 1.0), margin_mm=2.0)  # 1 row (2 mm), 2 columns (1 mm) more
    expected = np.zeros_like(boxes)
    expected[1, 1:8, 1:12] = IGNORE
    assert np.array_equal(labels, expected)
    core = ignore_inside_boxes(boxes, (3.0, 2.0, 1.0), core_fraction=0.5)
    # centre (4, 6), semi-axes 0.5 * 5/2 = 1.25 rows and 0.5 * 7/2 = 1.75 columns. Rows 3..5 with columns 5..7:
    # the corners give (1/1.25)^2 + (1/1.75)^2 = 0.64 + 0.33 <= 1; two rows off, (2/1.25)^2 = 2.56 > 1; two columns
    # off, (2/1.75)^2 = 1.31 > 1
    tumour = np.argwhere(core == 1).tolist()
    assert sorted(tumour) == [[1, r, c] for r in (3, 4, 5) for c in (5, 6, 7)]
    assert set(np.unique(core[boxes == 0])) == {0} and (core[boxes == 1] > 0).all()


def test_ignore_label_dataset_from_box_masks_with_strong_cases_merged(raw, capsys):
    weak = raw_dataset(raw, "Dataset902_Weak", cases=2, with_labels=False)
    strong = raw_dataset(raw, "Dataset900_Strong", cases=2)
    before = snapshot(raw)
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "907", "--name", "Ignore",
                           "--ignore-inside", "--strong", "900")
    assert code == 0 and not errors
    out = raw / "Dataset907_Ignore"
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "tumor": 1, "ignore": 2} and dataset["numTraining"] == 4
    for case in ("c0", "c1"):  # voxel by voxel: box -> ignore, elsewhere background; strong labels untouched
        boxes = read(weak / "boxesTr" / f"{case}.nii.gz")
        assert np.array_equal(read(out / "labelsTr" / f"weak_{case}.nii.gz"), np.where(boxes > 0, IGNORE, 0))
        assert np.array_equal(read(out / "labelsTr" / f"strong_{case}.nii.gz"),
                              read(strong / "labelsTr" / f"{case}.nii.gz"))
        assert (out / "imagesTr" / f"weak_{case}_0000.nii.gz").is_file()
        assert (out / "imagesTr" / f"strong_{case}_0000.nii.gz").is_file()
    assert {k: v for k, v in snapshot(raw).items() if not k.startswith("Dataset907")} == before

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)  # nnU-Net accepts it (ignore label highest)


@pytest.mark.parametrize(("fault", "extra", "message"), [
    ("strong label uses 2", ["--strong", "900"], "strong case c1: its label already uses the value 2"),
    ("box on another grid", [], "c0: boxesTr size"),
    ("", ["--core-fraction", "1.5"], "--core-fraction in"),
    ("", ["--margin-mm", "-1"], "--margin-mm must be >= 0"),
])
def test_bad_input_is_refused_and_nothing_is_written(raw, capsys, fault, extra, message):
    weak = raw_dataset(raw, "Dataset902_Weak", cases=2, with_labels=False)
    strong = raw_dataset(raw, "Dataset900_Strong", cases=2)
    if fault == "strong label uses 2":
        write_image(strong / "labelsTr" / "c1.nii.gz", np.full((8, 16, 16), 2, np.uint8))
    if fault == "box on another grid":
        write_image(weak / "boxesTr" / "c0.nii.gz", np.zeros((8, 16, 12), np.uint8))
    before = snapshot(raw)
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "907", "--ignore-inside", *extra)
    assert code == 2 and len(errors) == 1 and message in errors[0], errors
    assert snapshot(raw) == before and not list(raw.glob("*907*"))


def test_ignore_options_need_ignore_inside(raw, capsys):
    raw_dataset(raw, "Dataset902_Weak", cases=1, with_labels=False)
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "907", "--margin-mm", "3")
    assert code == 2 and "need --ignore-inside" in errors[0]
