"""An ignore-label phantom dataset (boxes-to-labels --ignore-inside) with the real commands: nnU-Net accepts and
preprocesses it, nnU-Net's plain trainer and the distillation trainers train on it, nnUNetv2_predict predicts."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
import torch
from conftest import BOX_CONFIG, BOX_TEACHER, DATASET_ID, PHANTOM, TINY_CONFIG

from nnunet_kd.plans import add_configuration, load_plans, small_plain_configuration
from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

WEAK_ID, IGNORE_ID = 909, 908
IGNORE_NAME = "Dataset908_ItIgnore"


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_ignore_label_dataset_trains_with_nnunet_and_distillation(nnunet_env, box_teacher, tmp_path):
    weak = write_phantom_dataset(nnunet_env.raw, WEAK_ID, "ItWeak", num_training=3, seed=11, role="weak",
                                 config=PHANTOM)
    nnunet_env.run("nnunet_kd", "boxes-to-labels", "-i", str(WEAK_ID), "-d", str(IGNORE_ID), "--name", "ItIgnore",
                   "--ignore-inside", "--strong", str(DATASET_ID))
    raw = nnunet_env.raw / IGNORE_NAME
    strong_raw = nnunet_env.raw / "Dataset901_ItPhantom"
    for box_file in sorted((weak / "boxesTr").glob("*.nii.gz")):  # on disk, voxel by voxel
        boxes = _array(box_file)
        assert np.array_equal(_array(raw / "labelsTr" / f"weak_{box_file.name}"), np.where(boxes > 0, 2, 0))
    for label_file in sorted((strong_raw / "labelsTr").glob("*.nii.gz")):
        assert np.array_equal(_array(raw / "labelsTr" / f"strong_{label_file.name}"), _array(label_file))

    # the teacher's plans (same spacing and normalisation), then nnU-Net's own preprocessing with its checks
    nnunet_env.run("nnUNetv2_extract_fingerprint", "-d", str(IGNORE_ID), "-np", "1", "--verify_dataset_integrity")
    nnunet_env.run("nnUNetv2_move_plans_between_datasets", "-s", str(DATASET_ID), "-t", str(IGNORE_ID), "-sp",
                   "nnUNetPlans", "-tp", "nnUNetPlans")
    preprocessed = nnunet_env.preprocessed / IGNORE_NAME
    (preprocessed / "dataset.json").write_text((raw / "dataset.json").read_text())
    nnunet_env.run("nnUNetv2_preprocess", "-d", str(IGNORE_ID), "-c", "3d_fullres", "-np", "1")
    plans_file = preprocessed / "nnUNetPlans.json"
    add_configuration(plans_file, TINY_CONFIG, small_plain_configuration(load_plans(plans_file),
                                                                         features=(8, 16, 32, 64)), overwrite=True)

    plain = "nnUNetTrainerQuickNoMirroring_test"  # nnU-Net's trainer and loss, two iterations
    nnunet_env.run("nnUNetv2_train", str(IGNORE_ID), TINY_CONFIG, "all", "-tr", plain, "-device", "cpu")
    spec = tmp_path / "kd_teachers.json"
    nnunet_env.run("nnunet_kd", "kd-spec", "-d", str(IGNORE_ID), "--teacher",
                   f"{DATASET_ID}:{BOX_TEACHER}:{BOX_CONFIG}:0", "-o", str(spec))
    student = "nnUNetTrainerMKD_test"
    nnunet_env.run("nnUNetv2_train", str(IGNORE_ID), TINY_CONFIG, "all", "-tr", student, "-device", "cpu",
                   NNUNET_KD_SPEC=str(spec))
    log = torch.load(nnunet_env.results / IGNORE_NAME / f"{student}__nnUNetPlans__{TINY_CONFIG}"
                                   / "fold_all" / "checkpoint_final.pth", map_location="cpu",
                                   weights_only=False)["logging"]
    assert all(np.isfinite(v) for v in log["kd_kl"]) and all(np.isfinite(v) for v in log["train_losses"])
    # the test trainer compared the box channel of every batch with the boxes of its tumour voxels (ignore excluded)
    fold = nnunet_env.results / IGNORE_NAME / f"{student}__nnUNetPlans__{TINY_CONFIG}" / "fold_all"
    assert any("box channel checked on" in p.read_text() for p in fold.glob("training_log_*.txt"))
    # the multi-teacher paper's Dice + Lovász loss leaves the ignored voxels out as nnU-Net's Dice + CE does
    lovasz = "nnUNetTrainerMKD_DiceLovasz_test"
    nnunet_env.run("nnUNetv2_train", str(IGNORE_ID), TINY_CONFIG, "all", "-tr", lovasz, "-device", "cpu",
                   NNUNET_KD_SPEC=str(spec))
    log = torch.load(nnunet_env.results / IGNORE_NAME / f"{lovasz}__nnUNetPlans__{TINY_CONFIG}" / "fold_all"
                     / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    assert all(0 < v <= 0.5 for v in log["kd_seg"])  # 0.2·Dice + 0.3·Lovász, each term in [0, 1]

    out = tmp_path / "predictions"
    nnunet_env.run("nnUNetv2_predict", "-i", str(strong_raw / "imagesTs"), "-o", str(out), "-d", str(IGNORE_ID),
                   "-c", TINY_CONFIG, "-tr", student, "-f", "all", "-device", "cpu", "-npp", "0", "-nps", "0")
    predictions = sorted(out.glob("*.nii.gz"))
    assert predictions and all(set(np.unique(_array(p)).tolist()) <= {0, 1} for p in predictions)
    assert json.loads((raw / "dataset.json").read_text())["labels"]["ignore"] == 2
