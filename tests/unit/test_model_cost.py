"""Parameter and MAC counting (:mod:`nnunet_kd.students.cost`) and the ``nnunet_kd model-cost`` command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nnunet_kd.cli import main
from nnunet_kd.students.configuration import add_student_configuration
from nnunet_kd.students.cost import configuration_cost, count_macs, count_parameters, format_cost_table, measure


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is as fast and does not oversubscribe the shared CPU cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_macs_of_single_layers_follow_the_textbook_formulas():
    conv = nn.Conv3d(2, 4, 3, padding=1)
    assert count_macs(conv, (1, 2, 5, 6, 7)) == (4 * 5 * 6 * 7) * 2 * 27
    strided = nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2))
    assert count_macs(strided, (1, 3, 10, 12)) == (8 * 5 * 6) * 3 * 15
    depthwise = nn.Conv3d(6, 6, 3, padding=1, groups=6)
    assert count_macs(depthwise, (1, 6, 4, 4, 4)) == (6 * 64) * 1 * 27
    transposed = nn.ConvTranspose3d(8, 4, 2, stride=2)
    assert count_macs(transposed, (1, 8, 3, 3, 3)) == (8 * 27) * 4 * 8
    linear = nn.Linear(10, 7)
    assert count_macs(linear, (3, 10)) == 70  # per sample, batch of 3


def test_macs_are_per_sample_and_sum_over_layers():
    network = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    per_sample = count_macs(network, (1, 1, 8, 8))
    assert per_sample == 4 * 64 * 9 + 2 * 64 * 4
    assert count_macs(network, (3, 1, 8, 8)) == per_sample
    assert count_parameters(network) == (4 * 9 + 4) + (2 * 4 + 2)


def test_meta_device_measurement_matches_cpu():
    from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet

    def build() -> nn.Module:
        return DepthwiseSeparableResidualUNet(
            1, 3, [4, 8, 8], nn.Conv3d, 3, [1, 2, 2], 1, 2, 2, True, nn.InstanceNorm3d, {"affine": True},
            nonlin=nn.LeakyReLU, aspp_rates=(1,))

    on_meta = measure(build, (1, 1, 8, 16, 16))
    network = build().eval()
    assert on_meta == (count_parameters(network), count_macs(network, (1, 1, 8, 16, 16)))
    assert next(network.parameters()).device == torch.device("cpu")


def plans_with_student(tmp_path):
    plans = {
        "dataset_name": "Dataset999_Phantom", "plans_name": "nnUNetPlans",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": [16, 32, 32],
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": 3, "features_per_stage": [8, 16, 32], "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                    "n_conv_per_stage": [2] * 3, "n_conv_per_stage_decoder": [2] * 2, "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            },
        }},
    }
    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(plans))
    add_student_configuration(plans_file, aspp_rates=[1, 2])
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1, "nodule": 2}, "numTraining": 2,
         "file_ending": ".nii.gz"}))
    return plans_file


def test_configuration_cost_counts_the_network_nnunet_builds(tmp_path):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    plans = json.loads(plans_with_student(tmp_path).read_text())
    default = configuration_cost(plans, "3d_fullres", input_channels=1, num_classes=3)
    reference = PlainConvUNet(1, 3, [8, 16, 32], nn.Conv3d, 3, [1, 2, 2], 2, 3, 2, True, nn.InstanceNorm3d,
                              {"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU)
    assert default.parameters == count_parameters(reference)
    assert default.macs == count_macs(reference.eval(), (1, 1, 16, 32, 32))
    assert default.network_class == "PlainConvUNet" and default.patch_size == (16, 32, 32)

    student = configuration_cost(plans, "3d_fullres_student", 1, 3)
    assert student.network_class == "DepthwiseSeparableResidualUNet"
    assert student.parameters < default.parameters and student.macs < default.macs

    larger = configuration_cost(plans, "3d_fullres_student", 1, 3, patch_size=(32, 64, 64))
    assert larger.parameters == student.parameters and larger.macs > 7 * student.macs
    table = format_cost_table([default, student], reference="3d_fullres")
    assert "3d_fullres_student" in table and "100.0" in table


def test_model_cost_command_prints_a_table(tmp_path, capsys):
    plans_file = plans_with_student(tmp_path)
    assert main(["model-cost", "-p", str(plans_file)]) == 0
    out = capsys.readouterr().out
    assert "3 output(s)" in out  # from dataset.json: background + 2 labels
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith("-")}
    assert set(rows) >= {"3d_fullres", "3d_fullres_student"}
    assert main(["model-cost", "-p", str(plans_file), "-c", "3d_fullres_student", "--patch", "16", "32"]) == 2
    assert "2 axes" in capsys.readouterr().err
    assert main(["model-cost", "-p", str(plans_file), "-c", "nope"]) == 2


@pytest.mark.parametrize("bad", [["-c", "2d"]])
def test_model_cost_command_unknown_configuration(tmp_path, capsys, bad):
    plans_file = plans_with_student(tmp_path)
    assert main(["model-cost", "-p", str(plans_file), *bad]) == 2
    assert "no configuration '2d'" in capsys.readouterr().err
