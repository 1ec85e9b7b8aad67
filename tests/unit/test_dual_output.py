"""Dual-output student: network outputs per mode, box targets, loss, and the nnUNetTrainerDualOutput trainer."""

from __future__ import annotations

import copy
import inspect
import json

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from nnunet_kd.boxes.channel import box_channel_of_labels
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.losses.box_mask import (
    DualOutputLoss,
    NetworkBoxOutputLoss,
    default_box_loss,
)
from nnunet_kd.students.configuration import add_student_configuration
from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet
from nnunet_kd.students.dual_output_unet import DualOutputDepthwiseSeparableResidualUNet


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is as fast and does not oversubscribe the shared CPU cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_kwargs(**overrides) -> dict:
    kwargs = dict(
        input_channels=1, n_stages=3, features_per_stage=[4, 8, 8], conv_op=nn.Conv3d, kernel_sizes=3,
        strides=[1, 2, 2], n_blocks_per_stage=1, num_classes=2, n_conv_per_stage_decoder=2, conv_bias=True,
        norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True}, aspp_rates=(1,),
    )
    kwargs.update(overrides)
    return kwargs


# ---------------------------------------------------------------- network


def test_inference_mode_returns_segmentation_only_and_skips_the_box_decoder():
    network = DualOutputDepthwiseSeparableResidualUNet(**tiny_kwargs(), deep_supervision=False).eval()
    calls = []
    network.box_decoder.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        output = network(torch.randn(1, 1, 8, 16, 16))
    assert isinstance(output, torch.Tensor) and output.shape == (1, 2, 8, 16, 16)
    assert network.last_box_logits is None and calls == []


@pytest.mark.parametrize("training,deep_supervision", [(True, True), (True, False), (False, True)])
def test_training_and_validation_modes_also_produce_box_logits(training, deep_supervision):
    network = DualOutputDepthwiseSeparableResidualUNet(**tiny_kwargs(), deep_supervision=deep_supervision)
    network.train(training)
    x = torch.randn(2, 1, 8, 16, 16)
    output = network(x)
    assert isinstance(output, list) == deep_supervision
    assert network.last_box_logits is not None and network.last_box_logits.shape == (2, 2, 8, 16, 16)
    if not training:  # eval mode is deterministic: the explicit two-output method agrees
        segmentation, box = network.forward_with_box_logits(x)
        assert torch.allclose(segmentation[0], output[0]) and torch.allclose(box, network.last_box_logits)


def test_dual_output_state_dict_loads_with_deep_supervision_on_and_off_and_extends_the_student():
    trained = DualOutputDepthwiseSeparableResidualUNet(**tiny_kwargs(), deep_supervision=True)
    for deep_supervision in (True, False):
        DualOutputDepthwiseSeparableResidualUNet(**tiny_kwargs(), deep_supervision=deep_supervision).load_state_dict(
            trained.state_dict(), strict=True)
    single = DepthwiseSeparableResidualUNet(**tiny_kwargs()).state_dict()
    extra = set(trained.state_dict()) - set(single)
    assert set(single) < set(trained.state_dict())
    assert extra and all(key.startswith("box_decoder.") for key in extra)
    assert trained.box_decoder.seg_layers[-1].out_channels == 2


# ---------------------------------------------------------------- box targets


def test_box_targets_fill_the_axial_rectangle_of_each_lesion_on_each_slice():
    label = torch.zeros(1, 1, 4, 10, 12)
    label[0, 0, 1, 2, 3:7] = 1  # an L-shaped lesion on slice 1: rows 2..5, columns 3..6
    label[0, 0, 1, 2:6, 3] = 1
    label[0, 0, 2, 7, 9] = 1  # a single voxel on slice 2
    boxes = box_channel_of_labels(label, axial_axis=0)
    expected = np.zeros((4, 10, 12), dtype=np.float32)
    expected[1, 2:6, 3:7] = 1
    expected[2, 7, 9] = 1
    assert boxes.shape == label.shape and boxes.dtype == label.dtype
    np.testing.assert_array_equal(boxes[0, 0].numpy(), expected)


def test_box_targets_follow_the_axial_axis_of_transposed_patches():
    label = torch.zeros(1, 1, 4, 10, 12)
    label[0, 0, 1, 2, 3:7] = 1
    label[0, 0, 1, 2:6, 3] = 1
    transposed = label.permute(0, 1, 3, 4, 2)  # axial slices now along spatial axis 2
    boxes = box_channel_of_labels(transposed, axial_axis=2)
    assert torch.equal(boxes, box_channel_of_labels(label, axial_axis=0).permute(0, 1, 3, 4, 2))
    assert not torch.equal(boxes, box_channel_of_labels(transposed, axial_axis=0))


def test_box_targets_of_2d_patches_and_ignore_label():
    label = torch.zeros(2, 1, 8, 8, dtype=torch.int16)
    label[0, 0, 1, 1:4] = 1
    label[0, 0, 2:4, 1] = 1  # an L: rows 1..3, columns 1..3
    label[1, 0, 5, 5] = 2  # ignored
    boxes = box_channel_of_labels(label, axial_axis=0, ignore_label=2)
    assert boxes[0, 0, 1:4, 1:4].all() and boxes[0].sum() == 9
    assert boxes[1].sum() == 0


# ---------------------------------------------------------------- loss


class FirstOutputMSE(nn.Module):
    """A stand-in segmentation loss that accepts nnU-Net's deep-supervision lists."""

    def forward(self, output, target):
        first = lambda value: value[0] if isinstance(value, list) else value  # noqa: E731
        return nn.functional.mse_loss(first(output), first(target))


def test_dual_output_loss_adds_the_weighted_box_term():
    torch.manual_seed(0)
    segmentation_loss = FirstOutputMSE()
    seg_output, target = torch.randn(2, 1, 4, 8, 8), torch.zeros(2, 1, 4, 8, 8)
    target[:, :, 1:3, 2:4, 2:6] = 1
    box_logits = torch.randn(2, 2, 4, 8, 8, requires_grad=True)

    plain = DualOutputLoss(segmentation_loss, box_loss_weight=0.0)(seg_output, box_logits, target)
    assert torch.allclose(plain, nn.functional.mse_loss(seg_output, target))

    expected_box = default_box_loss()(box_logits, box_channel_of_labels(target, axial_axis=0))
    assert expected_box > 0
    for target_as_passed in (target, [target, target[:, :, ::2, ::2, ::2]]):  # plain, and deep-supervision list
        weighted = DualOutputLoss(segmentation_loss, box_loss_weight=0.5)(seg_output, box_logits, target_as_passed)
        assert torch.allclose(weighted, nn.functional.mse_loss(seg_output, target) + 0.5 * expected_box)
    weighted.backward()
    assert box_logits.grad is not None and box_logits.grad.abs().sum() > 0

    with pytest.raises(ValueError, match="do not match"):
        DualOutputLoss(segmentation_loss)(seg_output, box_logits[:, :, :2], target)
    with pytest.raises(ValueError, match="box_loss_weight"):
        DualOutputLoss(segmentation_loss, box_loss_weight=-1)


def test_network_box_output_loss_needs_box_logits():
    loss = NetworkBoxOutputLoss(DualOutputLoss(nn.MSELoss()), lambda: None)
    with pytest.raises(RuntimeError, match="no box logits"):
        loss(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2))


# ---------------------------------------------------------------- trainer


def phantom_plans() -> dict:
    arch = {
        "n_stages": 3, "features_per_stage": [32, 64, 64], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2] * 3,
        "n_conv_per_stage_decoder": [2] * 2, "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return {
        "dataset_name": "Dataset999_Phantom", "plans_name": "nnUNetPlans", "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "batch_dice": True, "patch_size": [8, 16, 16],
            "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                             "arch_kwargs": arch,
                             "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        }},
    }


@pytest.fixture
def trainer_factory(tmp_path, monkeypatch):
    from nnunet_kd.trainers.dual_output import nnUNetTrainerDualOutput

    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(phantom_plans()))
    add_student_configuration(plans_file, width_multiplier=0.125, aspp_rates=[1])
    dataset_json = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 2,
                    "file_ending": ".nii.gz"}

    def make(configuration: str = "3d_fullres_student") -> nnUNetTrainerDualOutput:
        plans = {**json.loads(plans_file.read_text()), "continue_training": False}
        return nnUNetTrainerDualOutput(plans, configuration, 0, dataset_json, torch.device("cpu"))

    return make


def test_trainer_keeps_nnunet_signatures():
    from nnunet_kd.trainers.dual_output import nnUNetTrainerDualOutput

    def shape(function) -> list[tuple]:  # names, kinds and defaults (annotations may be strings here)
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert inspect.signature(nnUNetTrainerDualOutput.__init__) == inspect.signature(nnUNetTrainer.__init__)
    assert isinstance(inspect.getattr_static(nnUNetTrainerDualOutput, "build_network_architecture"), staticmethod)
    assert shape(nnUNetTrainerDualOutput.build_network_architecture) == shape(nnUNetTrainer.build_network_architecture)


def test_trainer_builds_the_dual_output_student_and_trains_both_heads(trainer_factory):
    torch.manual_seed(0)
    trainer = trainer_factory()
    trainer.network = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, 1, 2,
                                                         True)
    assert type(trainer.network) is DualOutputDepthwiseSeparableResidualUNet
    trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
    trainer.loss = trainer._build_loss()

    label = torch.zeros(2, 1, 8, 16, 16)
    label[:, :, 2:6, 4:10, 5:8] = 1
    batch = {"data": torch.randn(2, 1, 8, 16, 16), "target": [label, label[:, :, ::2, ::2, ::2]]}
    box_before = copy.deepcopy(trainer.network.box_decoder.state_dict())
    result = trainer.train_step(batch)
    assert np.isfinite(result["loss"])
    changed = [k for k, v in trainer.network.box_decoder.state_dict().items()
               if k.startswith("seg_layers") and not torch.equal(v, box_before[k])]
    assert changed  # the box head received gradients

    trainer.network.eval()
    assert np.isfinite(trainer.validation_step(batch)["loss"])
    trainer.set_deep_supervision_enabled(False)  # as before nnU-Net's final validation / prediction
    with torch.no_grad():
        output = trainer.network(batch["data"])
    assert isinstance(output, torch.Tensor) and output.shape == (2, 2, 8, 16, 16)
    assert trainer.network.last_box_logits is None


def test_trainer_refuses_a_configuration_that_is_not_a_student(trainer_factory):
    trainer = trainer_factory("3d_fullres")
    with pytest.raises(ConfigurationError, match="add-student"):
        trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, 1, 2, True)
