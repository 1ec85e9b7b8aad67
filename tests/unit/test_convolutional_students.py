"""Narrow nnU-Net U-Net students (``add-student --kind plain|residual``): plans that nnU-Net builds, hand-counted
parameters and MACs, deep-supervision outputs, and bad options refused with the plans file untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_student_plans import small_plans

from nnunet_kd.cli import main
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.students.configuration import add_student_configuration
from nnunet_kd.students.convolutional_students import PLAIN_UNET_CLASS, RESIDUAL_UNET_CLASS
from nnunet_kd.students.cost import configuration_cost


@pytest.fixture
def plans_file(tmp_path: Path) -> Path:
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(small_plans(), indent=4) + "\n")
    return path


def build(plans_file: Path, name: str, deep_supervision: bool = False) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cm = PlansManager(str(plans_file)).get_configuration(name)
    return get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                  cm.network_arch_init_kwargs_req_import, 1, 2, deep_supervision=deep_supervision)


def conv(c_in: int, c_out: int, k: int = 27, bias: bool = True) -> int:
    return c_in * c_out * k + (c_out if bias else 0)


NORM = 2  # InstanceNorm3d(affine=True): weight and bias per channel


def test_plain_student_of_two_stages_has_the_hand_counted_parameters_and_macs(plans_file):
    add_student_configuration(plans_file, kind="plain", width_multiplier=0.25, n_stages=2)
    plans = json.loads(plans_file.read_text())
    architecture = plans["configurations"]["3d_fullres_plain_student"]["architecture"]
    assert architecture["network_class_name"] == PLAIN_UNET_CLASS
    assert architecture["arch_kwargs"]["features_per_stage"] == [8, 16]
    # encoder: 2 convs per stage (stride 2 in the first of stage 1); decoder: transposed conv 16->8 (kernel 2),
    # 2 convs on the 16 concatenated channels, 1x1 segmentation head 8->2
    encoder = conv(1, 8) + conv(8, 8) + 2 * 8 * NORM + conv(8, 16) + conv(16, 16) + 2 * 16 * NORM
    decoder = (16 * 8 * 8 + 8) + conv(16, 8) + conv(8, 8) + 2 * 8 * NORM + conv(8, 2, k=1)
    cost = configuration_cost(plans, "3d_fullres_plain_student", 1, 2, patch_size=(8, 8, 8))
    assert cost.parameters == encoder + decoder == 18738
    assert sum(p.numel() for p in build(plans_file, "3d_fullres_plain_student").parameters()) == 18738
    # MACs per convolution: output voxels x output channels x input channels x kernel; 8^3 = 512, 4^3 = 64 voxels
    macs = (512 * 8 * 1 * 27 + 512 * 8 * 8 * 27 + 64 * 16 * 8 * 27 + 64 * 16 * 16 * 27  # encoder
            + 64 * 16 * 8 * 8  # transposed convolution: input elements x output channels x kernel
            + 512 * 8 * 16 * 27 + 512 * 8 * 8 * 27 + 512 * 2 * 8)  # decoder and head
    assert cost.macs == macs == 4386816


def test_residual_student_of_two_stages_has_the_hand_counted_parameters(plans_file):
    add_student_configuration(plans_file, kind="residual", width_multiplier=0.25, n_stages=2)
    plans = json.loads(plans_file.read_text())
    kwargs = plans["configurations"]["3d_fullres_residual_student"]["architecture"]["arch_kwargs"]
    assert plans["configurations"]["3d_fullres_residual_student"]["architecture"]["network_class_name"] == \
        RESIDUAL_UNET_CLASS
    assert kwargs["n_blocks_per_stage"] == [1, 3]  # nnU-Net's ResEnc presets, first two stages
    stem = conv(1, 8) + 8 * NORM
    block = lambda c_in, c_out: conv(c_in, c_out) + conv(c_out, c_out) + 2 * c_out * NORM  # noqa: E731
    downsampling_skip = conv(8, 16, k=1, bias=False) + 16 * NORM  # average pooling, 1x1 conv, norm (BasicBlockD)
    encoder = stem + block(8, 8) + block(8, 16) + downsampling_skip + 2 * block(16, 16)
    decoder = (16 * 8 * 8 + 8) + conv(16, 8) + conv(8, 8) + 2 * 8 * NORM + conv(8, 2, k=1)
    assert configuration_cost(plans, "3d_fullres_residual_student", 1, 2).parameters == encoder + decoder == 48490


@pytest.mark.parametrize("kind", ["plain", "residual"])
def test_students_give_nnunets_deep_supervision_outputs(plans_file, kind):
    name, _ = add_student_configuration(plans_file, kind=kind, width_multiplier=0.5, n_stages=3)
    network = build(plans_file, name, deep_supervision=True)
    with torch.no_grad():
        outputs = network(torch.zeros(1, 1, 32, 64, 64))
    # one output per decoder stage, full resolution first (what nnU-Net's deep-supervision loss expects)
    assert [tuple(o.shape) for o in outputs] == [(1, 2, 32, 64, 64), (1, 2, 16, 32, 32)]


def test_the_full_width_plain_student_is_the_parent_network(plans_file):
    add_student_configuration(plans_file, kind="plain", width_multiplier=1.0, name="same")
    plans = json.loads(plans_file.read_text())
    assert configuration_cost(plans, "same", 1, 2).parameters == configuration_cost(plans, "3d_fullres", 1,
                                                                                      2).parameters


@pytest.mark.parametrize(("options", "message"), [
    ({"kind": "plain", "width_multiplier": 0.001}, "leaves a stage with 0 channels"),
    ({"kind": "plain", "n_stages": 1}, "2 to 4 stages"),
    ({"kind": "residual", "n_stages": 5}, "2 to 4 stages"),
    ({"kind": "plain", "dual_output": True}, "depthwise student only"),
    ({"kind": "depthwise", "n_stages": 2}, "plain and residual students only"),
    ({"kind": "mobile"}, "unknown student kind 'mobile'"),
])
def test_bad_student_options_are_refused_and_the_plans_untouched(plans_file, options, message):
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match=message):
        add_student_configuration(plans_file, **options)
    assert plans_file.read_bytes() == before


def test_command_line_adds_a_plain_student(plans_file, capsys):
    assert main(["add-student", "-p", str(plans_file), "--kind", "plain", "--width", "0.5", "--stages", "3"]) == 0
    assert "3d_fullres_plain_student" in capsys.readouterr().out
    kwargs = json.loads(plans_file.read_text())["configurations"]["3d_fullres_plain_student"]["architecture"][
        "arch_kwargs"]
    assert kwargs["features_per_stage"] == [16, 32, 64] and kwargs["n_conv_per_stage_decoder"] == [2, 2]
