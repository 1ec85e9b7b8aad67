"""Box-guided teacher with the real commands: training, prediction from box masks, empty boxes, bad box inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import BOX_CONFIG, BOX_TEACHER, DATASET_NAME

from nnunet_kd.boxes.axial_boxes import axial_box_mask

#: after 200 iterations on phantoms, predicted tumour voxels with an empty box mask, as a fraction of the tumour
#: voxels predicted with the true boxes. Typically 0 voxels on both test cases, Dice with boxes about 0.8.
EMPTY_BOX_FRACTION = 0.05


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_box_channel_after_the_training_pipeline_is_binary_and_equals_the_augmented_label_boxes(
    nnunet_env, preprocessed_dataset, monkeypatch
):
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    for key, value in nnunet_env.env().items():
        if key.startswith("nnUNet"):
            monkeypatch.setenv(key, value)
    trainer_class = recursive_find_trainer_class_by_name("nnUNetTrainerBoxGuidedNoBoxAug")
    folder = nnunet_env.preprocessed / preprocessed_dataset
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((folder / "dataset.json").read_text())
    trainer = trainer_class(plans, BOX_CONFIG, 0, dataset_json, torch.device("cpu"))
    assert trainer.is_cascaded
    from nnunet_kd.boxes.channel import write_preprocessed_box_files

    write_preprocessed_box_files(trainer.preprocessed_dataset_folder, trainer.folder_with_segs_from_previous_stage,
                                 trainer.box_axial_axis)
    rotation, dummy_2d, initial_patch, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    patch = trainer.configuration_manager.patch_size
    transforms = trainer.get_training_transforms(patch, rotation, None, mirror_axes, dummy_2d,
                                                 trainer.configuration_manager.use_mask_for_norm, True,
                                                 trainer.label_manager.foreground_labels)
    names = [type(t).__name__ for t in transforms.transforms]
    assert "AxialBoxChannelTransform" in names
    assert not any(getattr(t, "transform", None).__class__.__name__ == "ApplyRandomBinaryOperatorTransform"
                   for t in transforms.transforms)
    dataset = nnUNetDatasetBlosc2(trainer.preprocessed_dataset_folder,
                                  folder_with_segs_from_previous_stage=trainer.folder_with_segs_from_previous_stage)
    loader = nnUNetDataLoader(dataset, 2, initial_patch, patch, trainer.label_manager,
                              oversample_foreground_percent=1.0, transforms=transforms)
    for _ in range(3):
        batch = loader.generate_train_batch()
        data, target = batch["data"], batch["target"]
        assert data.shape[1] == 2  # CT + one box channel
        for sample in range(data.shape[0]):
            box_channel = data[sample, 1].numpy()
            assert set(np.unique(box_channel).tolist()) <= {0.0, 1.0}  # binary after intensity/spatial DA
            expected = axial_box_mask(target[sample, 0].numpy(), trainer.box_axial_axis)
            np.testing.assert_array_equal(box_channel, expected)


def test_box_guided_teacher_trains_predicts_and_needs_its_boxes(nnunet_env, box_teacher, tmp_path):
    checkpoint = torch.load(box_teacher / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == BOX_TEACHER
    stem_weight = next(v for k, v in checkpoint["network_weights"].items() if k.endswith("weight") and v.ndim == 5)
    assert stem_weight.shape[1] == 2  # the network takes CT + box channel
    raw = nnunet_env.raw / DATASET_NAME
    with_boxes, without_boxes = tmp_path / "with_boxes", tmp_path / "empty_boxes"
    nnunet_env.run("nnunet_kd", "predict-with-boxes", "-i", str(raw / "imagesTs"), "-b", str(raw / "boxesTs"),
                   "-o", str(with_boxes), "-d", "901", "-c", BOX_CONFIG, "-tr", BOX_TEACHER, "-f", "0",
                   "-device", "cpu")
    empty_folder = tmp_path / "empty_box_masks"
    empty_folder.mkdir()
    for box_file in (raw / "boxesTs").glob("*.nii.gz"):
        box = sitk.ReadImage(str(box_file))
        empty = sitk.Image(box.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(box)
        sitk.WriteImage(empty, str(empty_folder / box_file.name))
    nnunet_env.run("nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(without_boxes), "-d", "901",
                   "-c", BOX_CONFIG, "-tr", BOX_TEACHER, "-f", "0", "-device", "cpu", "-npp", "0", "-nps", "0",
                   "-prev_stage_predictions", str(empty_folder))
    dices = []
    for reference in sorted((raw / "labelsTs").glob("*.nii.gz")):
        guided, unguided = _array(with_boxes / reference.name), _array(without_boxes / reference.name)
        dices.append(_dice(guided, _array(reference)))
        print(f"{reference.name}: Dice with boxes {dices[-1]:.3f}, voxels with boxes {(guided > 0).sum()}, "
              f"with empty boxes {(unguided > 0).sum()}")
        assert (unguided > 0).sum() <= EMPTY_BOX_FRACTION * max((guided > 0).sum(), 1)
    assert np.mean(dices) > 0.4  # a short CPU training already follows the boxes (measured 0.78)


def test_bad_box_masks_are_refused_before_anything_is_written(nnunet_env, box_teacher, tmp_path):
    raw = nnunet_env.raw / DATASET_NAME
    cases = sorted(p.name for p in (raw / "boxesTs").glob("*.nii.gz"))
    bad = tmp_path / "bad_boxes"
    shutil.copytree(raw / "boxesTs", bad)
    (bad / cases[0]).unlink()  # missing box file
    box = sitk.ReadImage(str(bad / cases[1]))
    twos = sitk.GetImageFromArray((sitk.GetArrayFromImage(box) * 2).astype(np.uint8))
    twos.CopyInformation(box)
    sitk.WriteImage(twos, str(bad / cases[1]))  # labels other than 0/1
    out = tmp_path / "out"
    result = nnunet_env.run("nnunet_kd", "predict-with-boxes", "-i", str(raw / "imagesTs"), "-b", str(bad),
                            "-o", str(out), "-d", "901", "-c", BOX_CONFIG, "-tr", BOX_TEACHER, "-device", "cpu",
                            check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert cases[0].replace(".nii.gz", "") in message and "missing" in message
    assert cases[1].replace(".nii.gz", "") in message and "values [0, 2]" in message
    assert not out.exists()
    shifted = tmp_path / "shifted"
    shutil.copytree(raw / "boxesTs", shifted)
    moved = sitk.ReadImage(str(shifted / cases[0]))
    moved.SetOrigin(tuple(o + 10 for o in moved.GetOrigin()))
    sitk.WriteImage(moved, str(shifted / cases[0]))
    result = nnunet_env.run("nnunet_kd", "predict-with-boxes", "-i", str(raw / "imagesTs"), "-b", str(shifted),
                            "-o", str(out), "-d", "901", "-c", BOX_CONFIG, "-tr", BOX_TEACHER, "-device", "cpu",
                            check=False)
    assert result.returncode == 2 and "origin" in result.stderr and not out.exists()


@pytest.mark.parametrize("margin", [0.0, 10.0])
def test_constrain_to_boxes_command(nnunet_env, box_teacher, tmp_path, margin):
    raw = nnunet_env.raw / DATASET_NAME
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for reference in (raw / "labelsTs").glob("*.nii.gz"):  # a "prediction" = everything foreground
        image = sitk.ReadImage(str(reference))
        full = sitk.GetImageFromArray(np.ones(image.GetSize()[::-1], np.uint8))
        full.CopyInformation(image)
        sitk.WriteImage(full, str(predictions / reference.name))
    out = tmp_path / "constrained"
    result = nnunet_env.run("nnunet_kd", "constrain-to-boxes", "-i", str(predictions), "-b", str(raw / "boxesTs"),
                            "-o", str(out), "--margin-mm", str(margin))
    assert "removed" in result.stdout
    for box_file in (raw / "boxesTs").glob("*.nii.gz"):
        boxes, constrained = _array(box_file), _array(out / box_file.name)
        if margin == 0:
            np.testing.assert_array_equal(constrained, boxes)
        else:
            assert constrained.sum() > boxes.sum() and (constrained >= boxes).all()
