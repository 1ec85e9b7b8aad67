"""The real nnU-Net commands find and run a plugin trainer: train on the tiny configuration, then predict."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from conftest import DATASET_NAME, TINY_CONFIG

TRAINER = "nnUNetTrainerQuickNoMirroring_test"


def test_train_and_predict_with_plugin_trainer(nnunet_env, preprocessed_dataset, tmp_path):
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "0", "-tr", TRAINER, "-device", "cpu")
    fold = nnunet_env.results / DATASET_NAME / f"{TRAINER}__nnUNetPlans__{TINY_CONFIG}" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == TRAINER
    assert checkpoint["current_epoch"] == 1  # one epoch, as the test trainer's schedule says
    assert checkpoint["inference_allowed_mirroring_axes"] is None  # no-mirroring mixin reached the checkpoint
    assert (fold / "validation" / "summary.json").is_file()

    out = tmp_path / "predictions"
    images = nnunet_env.raw / DATASET_NAME / "imagesTs"
    nnunet_env.run("nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "901", "-c", TINY_CONFIG,
                   "-tr", TRAINER, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0")
    for image_file in sorted(images.glob("*_0000.nii.gz")):
        case = image_file.name.replace("_0000.nii.gz", "")
        prediction = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        reference = sitk.ReadImage(str(image_file))
        assert prediction.GetSize() == reference.GetSize()
        assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
        assert np.allclose(prediction.GetOrigin(), reference.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1}
