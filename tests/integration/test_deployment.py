"""A narrow plain student distilled with the real commands, predicted by nnUNetv2_predict, exported to ONNX and
predicted again through ONNX Runtime: the two segmentations agree."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
from conftest import BOX_CONFIG, BOX_TEACHER, DATASET_NAME, TINY_CONFIG

STUDENT_TRAINER = "nnUNetTrainerMKD_test"
STUDENT_CONFIG = "3d_tiny_plain_half"


def test_plain_student_trains_with_mkd_and_its_onnx_export_predicts_like_nnunet(nnunet_env, box_teacher, tmp_path):
    nnunet_env.run("nnunet_kd", "add-student", "-d", "901", "--parent", TINY_CONFIG, "--kind", "plain", "--width",
                   "0.5", "--name", STUDENT_CONFIG)
    spec = tmp_path / "kd_teachers.json"
    nnunet_env.run("nnunet_kd", "kd-spec", "-d", "901", "--teacher", f"901:{BOX_TEACHER}:{BOX_CONFIG}", "-o", str(spec))
    nnunet_env.run("nnUNetv2_train", "901", STUDENT_CONFIG, "0", "-tr", STUDENT_TRAINER, "-device", "cpu",
                   NNUNET_KD_SPEC=str(spec))
    images = nnunet_env.raw / DATASET_NAME / "imagesTs"
    by_nnunet, by_onnx, export = tmp_path / "nnunet", tmp_path / "onnx", tmp_path / "export"
    nnunet_env.run("nnUNetv2_predict", "-i", str(images), "-o", str(by_nnunet), "-d", "901", "-c", STUDENT_CONFIG,
                   "-tr", STUDENT_TRAINER, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0")

    result = nnunet_env.run("nnunet_kd", "export-onnx", "-d", "901", "-c", STUDENT_CONFIG, "-tr", STUDENT_TRAINER,
                            "-f", "0", "-o", str(export))
    assert "largest |ONNX - PyTorch| logit difference" in result.stdout
    record = json.loads((export / "export.json").read_text())
    assert record["max_abs_logit_difference"] < 1e-3 and record["configuration"] == STUDENT_CONFIG
    assert sorted(p.name for p in export.iterdir()) == ["dataset.json", "export.json", "model.onnx", "plans.json"]
    nnunet_env.run("nnunet_kd", "predict-onnx", "-i", str(images), "-o", str(by_onnx), "-m", str(export))

    cases = sorted(p.name for p in by_nnunet.glob("*.nii.gz"))
    assert cases and sorted(p.name for p in by_onnx.glob("*.nii.gz")) == cases
    for case in cases:
        expected = sitk.ReadImage(str(by_nnunet / case))
        got = sitk.ReadImage(str(by_onnx / case))
        assert got.GetSpacing() == expected.GetSpacing() and got.GetOrigin() == expected.GetOrigin()
        agreement = np.mean(sitk.GetArrayFromImage(got) == sitk.GetArrayFromImage(expected))
        assert agreement >= 0.999, (case, agreement)

    # a fold without a checkpoint: one clear line, nothing written
    missing = nnunet_env.run("nnunet_kd", "export-onnx", "-d", "901", "-c", STUDENT_CONFIG, "-tr", STUDENT_TRAINER,
                             "-f", "3", "-o", str(tmp_path / "none"), check=False)
    assert missing.returncode == 2 and "fold 3" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "none").exists()


def test_half_resolution_student_is_preprocessed_trained_and_predicted_on_the_image_grid(nnunet_env,
                                                                                          preprocessed_dataset,
                                                                                          tmp_path):
    name = "3d_tiny_plain_x2"
    result = nnunet_env.run("nnunet_kd", "add-student", "-d", "901", "--parent", TINY_CONFIG, "--kind", "plain",
                            "--width", "0.5", "--spacing-factor", "2", "--name", name)
    assert f"nnUNetv2_preprocess -d <dataset> -plans_name nnUNetPlans -c {name}" in result.stdout
    plans = json.loads((nnunet_env.preprocessed / DATASET_NAME / "nnUNetPlans.json").read_text())
    fine = plans["configurations"]["3d_fullres"]["spacing"]
    assert plans["configurations"][name]["spacing"] == [2 * s for s in fine]
    nnunet_env.run("nnUNetv2_preprocess", "-d", "901", "-plans_name", "nnUNetPlans", "-c", name, "-np", "1")
    assert len(list((nnunet_env.preprocessed / DATASET_NAME / f"nnUNetPlans_{name}").glob("*.pkl"))) == 6
    nnunet_env.run("nnUNetv2_train", "901", name, "0", "-tr", "nnUNetTrainerQuickNoMirroring_test", "-device", "cpu")
    images, out = nnunet_env.raw / DATASET_NAME / "imagesTs", tmp_path / "lowres"
    nnunet_env.run("nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "901", "-c", name, "-tr",
                   "nnUNetTrainerQuickNoMirroring_test", "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0")
    for image in sorted(images.glob("*_0000.nii.gz")):
        prediction = sitk.ReadImage(str(out / image.name.replace("_0000.nii.gz", ".nii.gz")))
        reference = sitk.ReadImage(str(image))
        assert prediction.GetSize() == reference.GetSize() and prediction.GetSpacing() == reference.GetSpacing()
