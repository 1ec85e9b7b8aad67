"""Pseudo-label export with the real commands: box-guided teacher -> new raw dataset -> plan/preprocess -> train."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import SimpleITK as sitk
from conftest import BOX_CONFIG, BOX_TEACHER, DATASET_NAME, PHANTOM

from nnunet_kd.pseudo_labels.cleanup import clean_with_boxes
from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

WEAK_ID, OUTPUT_ID = 911, 912
OUTPUT = f"Dataset{OUTPUT_ID}_ItPseudo"


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_export_pseudo_labels_then_plan_preprocess_and_train(nnunet_env, box_teacher, tmp_path):
    weak = write_phantom_dataset(nnunet_env.raw, WEAK_ID, "ItWeak", num_training=3, seed=11, role="weak",
                                 config=PHANTOM)
    export = ["nnunet_kd", "export-pseudo-labels", "-t", f"901:{BOX_TEACHER}:{BOX_CONFIG}:0", "-w", str(WEAK_ID),
              "-s", "901", "-o", str(OUTPUT_ID), "--output-name", "ItPseudo", "-device", "cpu", "--disable-tta",
              "--soft-labels", "--qc-sample", "1"]
    result = nnunet_env.run(*export)
    assert "[7/9] weak_weak_000:" in result.stdout  # progress per case (strong cases come first)
    out = nnunet_env.raw / OUTPUT
    dataset_json = json.loads((out / "dataset.json").read_text())
    assert dataset_json["numTraining"] == 9 and dataset_json["labels"] == {"background": 0, "tumor": 1}
    weak_cases = sorted(p.name[: -len("_0000.nii.gz")] for p in (weak / "imagesTr").glob("*_0000.nii.gz"))
    strong_src = nnunet_env.raw / DATASET_NAME
    for case in sorted(p.name[: -len(".nii.gz")] for p in (strong_src / "labelsTr").glob("*.nii.gz")):
        np.testing.assert_array_equal(_array(out / "labelsTr" / f"strong_{case}.nii.gz"),
                                      _array(strong_src / "labelsTr" / f"{case}.nii.gz"))
    # hard links by default: the dataset's image is the source file itself
    assert os.stat(out / "imagesTr" / f"weak_{weak_cases[0]}_0000.nii.gz").st_ino == \
        os.stat(weak / "imagesTr" / f"{weak_cases[0]}_0000.nii.gz").st_ino

    # the same teacher through plain nnUNetv2_predict: our probabilities are nnU-Net's, our label its cleaned argmax
    plain = tmp_path / "plain"
    nnunet_env.run("nnUNetv2_predict", "-i", str(weak / "imagesTr"), "-o", str(plain), "-d", "901", "-c", BOX_CONFIG,
                   "-tr", BOX_TEACHER, "-f", "0", "-device", "cpu", "--disable_tta", "--save_probabilities",
                   "-npp", "0", "-nps", "0", "-prev_stage_predictions", str(weak / "boxesTr"))
    dices = []
    for case in weak_cases:
        ours = _array(out / "labelsTr" / f"weak_{case}.nii.gz")
        soft = np.load(out / "softLabelsTr" / f"weak_{case}.npz")["probabilities"]
        reference_probabilities = np.load(plain / f"{case}.npz")["probabilities"]
        np.testing.assert_allclose(soft.astype(np.float32), reference_probabilities, atol=2e-3)
        box_image = sitk.ReadImage(str(weak / "boxesTr" / f"{case}.nii.gz"))
        expected, _ = clean_with_boxes(_array(plain / f"{case}.nii.gz"), sitk.GetArrayFromImage(box_image),
                                       tuple(reversed(box_image.GetSpacing())), 5.0)
        np.testing.assert_array_equal(ours, expected)
        label_image = sitk.ReadImage(str(out / "labelsTr" / f"weak_{case}.nii.gz"))
        assert label_image.GetSpacing() == box_image.GetSpacing() and label_image.GetOrigin() == box_image.GetOrigin()
        dices.append(_dice(ours, _array(weak / "referenceTr" / f"{case}.nii.gz")))
    print(f"pseudo-label Dice vs referenceTr: {np.round(dices, 3).tolist()}")
    assert np.mean(dices) > 0.3

    with open(out / "provenance" / "provenance.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["kind"] for r in rows].count("pseudo") == 3 and len(rows) == 9
    for row in rows:
        if row["kind"] == "pseudo":
            assert row["teachers"] == f"{DATASET_NAME}:{BOX_TEACHER}__nnUNetPlans__{BOX_CONFIG}:0"
            assert int(row["num_boxes"]) >= 1 and len(row["box_fill"].split(";")) == int(row["num_boxes"])
    page = (out / "qc" / "index.html").read_text()
    pngs = sorted(p.name for p in (out / "qc").glob("*.png"))
    assert pngs and all(name in page for name in pngs)

    rerun = nnunet_env.run(*export)  # resume: everything is done, no teacher is loaded, nothing changes
    assert "9 already done" in rerun.stdout
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]

    nnunet_env.run("nnUNetv2_plan_and_preprocess", "-d", str(OUTPUT_ID), "-c", "3d_fullres", "-np", "1", "-npfp", "1",
                   "--verify_dataset_integrity")
    nnunet_env.run("nnUNetv2_train", str(OUTPUT_ID), "3d_fullres", "0", "-tr", "nnUNetTrainerQuickNoMirroring_test",
                   "-device", "cpu")
    model = nnunet_env.results / OUTPUT / "nnUNetTrainerQuickNoMirroring_test__nnUNetPlans__3d_fullres"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
