"""Teachers of any nnU-Net architecture load through nnU-Net's own trainer classes and distil.

A results folder is written the way ``nnUNetv2_train`` leaves it (plans.json, dataset.json, fold_0 checkpoint) for
two teachers that are not PlainConvUNets: the residual-encoder U-Net of nnU-Net's ResEnc presets (built from the
plans by ``nnUNetTrainer``) and Primus (built by nnU-Net's ``nnUNet_Primus_S_Trainer`` itself, ignoring the plans'
architecture). ``load_teacher`` must rebuild them from those identifiers alone.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from nnunet_kd.distillation.frozen_teachers import StudentContext, load_teacher
from nnunet_kd.distillation.objective import DistillationObjective, KDConfig
from nnunet_kd.distillation.spec import TeacherSpec
from nnunet_kd.errors import InputError

PATCH = [16, 32, 32]  # divisible by Primus's 8x8x8 patches
DATASET = "Dataset990_Arch"
DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 2,
                "file_ending": ".nii.gz"}
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def plans(network_class: str = "dynamic_network_architectures.architectures.unet.PlainConvUNet") -> dict:
    arch = {"n_stages": 3, "features_per_stage": [8, 16, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2] * 3,
            "n_conv_per_stage_decoder": [1] * 2, "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    if network_class == RESENC:
        arch["n_blocks_per_stage"] = arch.pop("n_conv_per_stage")
    return {
        "dataset_name": DATASET, "plans_name": "nnUNetPlans", "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2], "original_median_spacing_after_transp": [2.0, 1.0, 1.0],
        "foreground_intensity_properties_per_channel": {"0": {"mean": 0.0, "std": 100.0, "percentile_00_5": -1000.0,
                                                               "percentile_99_5": 500.0}},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "batch_dice": True, "patch_size": PATCH,
            "spacing": [2.0, 1.0, 1.0], "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "architecture": {"network_class_name": network_class, "arch_kwargs": arch,
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        }},
    }


def write_teacher(results, trainer: str, plans_identifier: str, teacher_plans: dict) -> TeacherSpec:
    """A trained-looking model folder with freshly initialised weights, as ``nnUNetv2_train`` would leave it."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = results / DATASET / f"{trainer}__{plans_identifier}__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps({**teacher_plans, "plans_name": plans_identifier}))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    manager = PlansManager(teacher_plans)
    network = recursive_find_trainer_class_by_name(trainer).build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 1, 2, True)
    torch.save({"network_weights": network.state_dict()}, folder / "fold_0" / "checkpoint_final.pth")
    return TeacherSpec(DATASET, trainer, "3d_fullres", plans=plans_identifier)


@pytest.fixture
def student(tmp_path, monkeypatch) -> StudentContext:
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    student_plans = plans()
    return StudentContext(plans=student_plans, configuration="3d_fullres", dataset_json=DATASET_JSON, fold=0,
                          patch_size=tuple(PATCH), transpose_forward=(0, 1, 2), spacing=(2.0, 1.0, 1.0),
                          num_image_channels=1)


def student_network(student: StudentContext) -> torch.nn.Module:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(student.plans)
    return nnUNetTrainer.build_network_architecture(manager, manager.get_configuration("3d_fullres"), 1, 2, True)


def batch() -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    data = torch.randn(2, 1, *PATCH)
    target = torch.zeros(2, 1, *PATCH)
    target[:, :, 4:12, 8:20, 10:22] = 1
    return data, [target, target[:, :, ::2, ::2, ::2]]


@pytest.mark.parametrize("trainer, plans_identifier, network_class, teacher_stages, expected_type", [
    ("nnUNetTrainer", "nnUNetResEncUNetMPlans", RESENC, None, "ResidualEncoderUNet"),
    ("nnUNet_Primus_S_Trainer", "nnUNetPlans", None, ("down_projection", "eva.blocks.11"), "Primus"),
])
def test_teacher_of_another_architecture_loads_from_its_identifiers_and_distils(
        tmp_path, student, trainer, plans_identifier, network_class, teacher_stages, expected_type):
    teacher_plans = plans(network_class) if network_class else copy.deepcopy(student.plans)
    spec = write_teacher(tmp_path, trainer, plans_identifier, teacher_plans)
    spec = TeacherSpec(**{**vars(spec), "feature_stages": teacher_stages})
    teacher = load_teacher(spec, "t", student, torch.device("cpu"), with_deep_supervision=True)
    network = teacher.networks[0]
    assert type(network).__name__ == expected_type
    assert not network.training and not any(p.requires_grad for p in network.parameters())

    net = student_network(student)
    config = KDConfig(feature_stages=("encoder.stages.0", "encoder.stages.2"))
    objective = DistillationObjective([teacher], config, [2 / 3, 1 / 3])  # 3 stages: 2 deep-supervision outputs
    data, targets = batch()
    objective.prepare(net, data[:1], targets[0][:1])
    losses = objective(list(net(data)), targets, torch.tensor(0.0), objective.teach(data, targets))
    assert losses["kl"].item() > 0 and losses["mid"].item() > 0
    losses["loss"].backward()
    assert all(p.grad is None for p in network.parameters())


class Payload:
    """What a malicious checkpoint would carry: unpickling it creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_distillation_refuses_a_teacher_checkpoint_with_a_pickle_payload(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    student_plans = plans()
    spec = write_teacher(tmp_path, "nnUNetTrainer", "nnUNetPlans", copy.deepcopy(student_plans))
    checkpoint = next(tmp_path.rglob("checkpoint_final.pth"))
    marker = tmp_path / "payload_ran"  # unpickling the payload would create it
    torch.save({**torch.load(checkpoint, weights_only=True), "extra": Payload(marker)}, checkpoint)
    student = StudentContext(plans=student_plans, configuration="3d_fullres", dataset_json=DATASET_JSON, fold=0,
                             patch_size=tuple(PATCH), transpose_forward=(0, 1, 2), spacing=(2.0, 1.0, 1.0),
                             num_image_channels=1)
    with pytest.raises(InputError, match="teacher t, fold 0: checkpoint .* could run code"):
        load_teacher(spec, "t", student, torch.device("cpu"), True)
    assert not marker.exists()
