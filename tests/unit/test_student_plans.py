"""``nnunet_kd add-student`` / :mod:`nnunet_kd.students.configuration` on a small plans file in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_kd.cli import main
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.plans import resolved_configuration
from nnunet_kd.students.configuration import (
    DUAL_OUTPUT_STUDENT_CLASS,
    STUDENT_CLASS,
    add_student_configuration,
    bottleneck_size,
    resolve_plans_file,
)


def small_plans() -> dict:
    """A phantom-sized plans file: 4 stages, patch 32x64x64 -> bottleneck 4x8x8."""
    return {
        "dataset_name": "Dataset999_Phantom",
        "plans_name": "nnUNetPlans",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "batch_size": 2,
                "batch_dice": True,
                "patch_size": [32, 64, 64],
                "spacing": [2.0, 1.0, 1.0],
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                    "arch_kwargs": {
                        "n_stages": 4, "features_per_stage": [32, 64, 128, 256],
                        "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 4,
                        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2] * 4,
                        "n_conv_per_stage_decoder": [2] * 3, "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
                    },
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
            },
        },
    }


@pytest.fixture
def plans_file(tmp_path: Path) -> Path:
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(small_plans(), indent=4) + "\n")
    return path


def test_student_configuration_inherits_3d_fullres(plans_file):
    name, changed = add_student_configuration(plans_file, width_multiplier=0.5, aspp_rates=[1, 2, 3])
    assert (name, changed) == ("3d_fullres_student", True)
    plans = json.loads(plans_file.read_text())
    student = plans["configurations"]["3d_fullres_student"]
    assert set(student) == {"inherits_from", "architecture"}
    assert student["inherits_from"] == "3d_fullres"
    kwargs = student["architecture"]["arch_kwargs"]
    assert student["architecture"]["network_class_name"] == STUDENT_CLASS
    assert kwargs["features_per_stage"] == [16, 32, 64, 128]
    assert kwargs["aspp_rates"] == [1, 2, 3]
    assert kwargs["strides"] == small_plans()["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["strides"]
    # the resolved student shares the parent's data and patch
    resolved = resolved_configuration(plans, "3d_fullres_student")
    assert resolved["data_identifier"] == "nnUNetPlans_3d_fullres" and resolved["patch_size"] == [32, 64, 64]


def test_student_configuration_builds_through_nnunet(plans_file):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet
    from nnunet_kd.students.dual_output_unet import DualOutputDepthwiseSeparableResidualUNet

    add_student_configuration(plans_file, width_multiplier=0.125)
    add_student_configuration(plans_file, width_multiplier=0.125, dual_output=True, aspp_rates=None)
    manager = PlansManager(str(plans_file))
    for name, cls in (("3d_fullres_student", DepthwiseSeparableResidualUNet),
                      ("3d_fullres_student_do", DualOutputDepthwiseSeparableResidualUNet)):
        cm = manager.get_configuration(name)
        network = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                         cm.network_arch_init_kwargs_req_import, 1, 2, deep_supervision=True)
        assert type(network) is cls
        assert list(cm.patch_size) == [32, 64, 64] and cm.pool_op_kernel_sizes == small_plans()["configurations"][
            "3d_fullres"]["architecture"]["arch_kwargs"]["strides"]
        network.eval()
        network.decoder.deep_supervision = False
        with torch.no_grad():
            assert network(torch.zeros(1, 1, 16, 32, 32)).shape == (1, 2, 16, 32, 32)


def test_rerun_is_idempotent_and_byte_identical(plans_file):
    add_student_configuration(plans_file, width_multiplier=0.5)
    before = plans_file.read_bytes()
    name, changed = add_student_configuration(plans_file, width_multiplier=0.5)
    assert changed is False
    assert plans_file.read_bytes() == before


def test_different_configuration_of_same_name_is_refused_and_file_untouched(plans_file):
    add_student_configuration(plans_file, width_multiplier=0.5)
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="different content"):
        add_student_configuration(plans_file, width_multiplier=0.25)
    assert plans_file.read_bytes() == before
    # --overwrite replaces it
    _, changed = add_student_configuration(plans_file, width_multiplier=0.25, overwrite=True)
    assert changed and json.loads(plans_file.read_text())["configurations"]["3d_fullres_student"][
        "architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 64]


@pytest.mark.parametrize("width", [0.0, -1.0, 0.01, float("nan")])
def test_invalid_width_is_refused_and_file_untouched(plans_file, width):
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="width multiplier"):
        add_student_configuration(plans_file, width_multiplier=width)
    assert plans_file.read_bytes() == before


def test_aspp_rates_too_large_for_the_bottleneck_are_refused(plans_file):
    strides = small_plans()["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["strides"]
    assert bottleneck_size([32, 64, 64], strides) == [4, 8, 8]
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="ASPP dilation rate 4 is too large"):
        add_student_configuration(plans_file, aspp_rates=[1, 2, 4])
    with pytest.raises(ConfigurationError, match="positive integers"):
        add_student_configuration(plans_file, aspp_rates=[0, 1])
    assert plans_file.read_bytes() == before
    add_student_configuration(plans_file, aspp_rates=[1, 3])  # 3 < 4 fits


def test_unknown_parent_and_non_unet_parent_are_refused(plans_file):
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="no configuration '2d'"):
        add_student_configuration(plans_file, parent="2d")
    plans = small_plans()
    del plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["strides"]
    plans_file.write_text(json.dumps(plans))
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="lack strides"):
        add_student_configuration(plans_file)
    assert plans_file.read_bytes() == before


def test_command_resolves_dataset_id_and_reports_errors(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "preprocessed" / "Dataset999_Phantom"
    folder.mkdir(parents=True)
    (folder / "nnUNetPlans.json").write_text(json.dumps(small_plans(), indent=4) + "\n")
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    assert resolve_plans_file("999", "nnUNetPlans") == folder / "nnUNetPlans.json"

    assert main(["add-student", "-d", "999", "--width", "0.5", "--aspp-rates", "1", "2", "--dual-output"]) == 0
    student = json.loads((folder / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres_student_do"]
    assert student["architecture"]["network_class_name"] == DUAL_OUTPUT_STUDENT_CLASS
    assert student["architecture"]["arch_kwargs"]["aspp_rates"] == [1, 2]

    assert main(["add-student", "-d", "Dataset999_Phantom", "--no-aspp", "--name", "tiny"]) == 0
    tiny = json.loads((folder / "nnUNetPlans.json").read_text())["configurations"]["tiny"]
    assert tiny["architecture"]["arch_kwargs"]["aspp_rates"] is None

    before = (folder / "nnUNetPlans.json").read_bytes()
    assert main(["add-student", "-p", str(folder / "nnUNetPlans.json"), "--name", "tiny", "--width", "2"]) == 2
    assert "different content" in capsys.readouterr().err
    assert (folder / "nnUNetPlans.json").read_bytes() == before
    assert main(["add-student", "-d", "998"]) == 2
    assert "'998' not found" in capsys.readouterr().err
    assert main(["add-student", "-p", "nnUNetPlans"]) == 2
    assert "give a dataset (-d)" in capsys.readouterr().err


def test_student_of_a_2d_configuration(plans_file):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    plans = small_plans()
    arch = json.loads(json.dumps(plans["configurations"]["3d_fullres"]["architecture"]))
    arch["arch_kwargs"].update(conv_op="torch.nn.modules.conv.Conv2d", kernel_sizes=[[3, 3]] * 4,
                               strides=[[1, 1], [2, 2], [2, 2], [2, 2]],
                               norm_op="torch.nn.modules.instancenorm.InstanceNorm2d")
    plans["configurations"]["2d"] = {"data_identifier": "nnUNetPlans_2d", "batch_size": 12, "patch_size": [64, 48],
                                     "architecture": arch}
    plans_file.write_text(json.dumps(plans))
    name, _ = add_student_configuration(plans_file, parent="2d", width_multiplier=0.125, aspp_rates=[1, 5])
    student = json.loads(plans_file.read_text())["configurations"][name]
    assert name == "2d_student" and student["inherits_from"] == "2d"
    architecture = student["architecture"]
    network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], 1, 2, deep_supervision=True)
    assert [tuple(o.shape) for o in network(torch.zeros(1, 1, 64, 48))] == [(1, 2, 64, 48), (1, 2, 32, 24),
                                                                             (1, 2, 16, 12)]
    with pytest.raises(ConfigurationError, match="< 6"):  # bottleneck 8x6
        add_student_configuration(plans_file, parent="2d", name="2d_wide_aspp", aspp_rates=[6])
