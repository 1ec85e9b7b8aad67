"""The distillation objective on tiny real U-Nets: KL, features, adapters, frozen teachers, box channel."""

from __future__ import annotations

import copy

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_kd.boxes import axial_box_mask
from nnunet_kd.distillation import DistillationObjective, KDConfig
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.kd_spec import TeacherSpec
from nnunet_kd.normalization import NormalizationConversion
from nnunet_kd.teachers import FrozenTeacher

torch.manual_seed(0)
PATCH = (8, 16, 16)
DS_WEIGHTS = [2 / 3, 1 / 3]  # a 3-stage U-Net has 2 deep-supervision outputs


def unet(width: int = 4, inputs: int = 1) -> PlainConvUNet:
    return PlainConvUNet(inputs, 3, [width, 2 * width, 4 * width], nn.Conv3d, 3, [1, 2, 2], 1, 2, 1, True,
                         nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU,
                         {"inplace": True}, deep_supervision=True)


def frozen(network: nn.Module, needs_boxes: bool = False) -> FrozenTeacher:
    network.eval().requires_grad_(False)
    return FrozenTeacher(spec=TeacherSpec("1", "T", "c"), label="t", networks=[network], model_folder=None,
                         folds=(0,), needs_boxes=needs_boxes, box_axial_axis=0,
                         normalization=NormalizationConversion(), strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]])


def batch():
    data = torch.randn(2, 1, *PATCH)
    target = torch.zeros(2, 1, *PATCH)
    target[:, :, 2:6, 4:10, 5:9] = 1
    targets = [target, target[:, :, ::2, ::2, ::2]]
    return data, targets


def test_identical_teacher_gives_zero_kl_and_no_teacher_gradients():
    student = unet()
    teacher = frozen(copy.deepcopy(student))
    objective = DistillationObjective([teacher], KDConfig(temperature=3.0, alpha=0.0, beta=1.0), DS_WEIGHTS)
    data, targets = batch()
    student.eval()  # same mode as the teacher, so both compute the same function
    outputs = student(data)
    seg = torch.tensor(0.5)
    losses = objective(outputs, targets, data, seg)
    assert abs(losses["kl"].item()) < 1e-6
    assert abs(losses["loss"].item() - 0.5) < 1e-6
    assert list(objective.parameters()) == [] and objective.state_dict() == {}  # teachers are not submodules


def test_kl_gradient_reaches_the_student_only():
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(alpha=0.0, beta=1.0), DS_WEIGHTS)
    data, targets = batch()
    losses = objective(student(data), targets, data, torch.tensor(0.0))
    assert losses["kl"].item() > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in teacher.networks[0].parameters())


def test_features_with_adapters_for_a_wider_teacher_and_stage_resolution():
    student, teacher = unet(4), frozen(unet(8))
    config = KDConfig(alpha=1.0, beta=0.0, feature_stages=("encoder.stages.0", "decoder.stages.-1"))
    objective = DistillationObjective([teacher], config, DS_WEIGHTS)
    data, targets = batch()
    objective.attach_features(student, data[:1], targets[0][:1])
    assert objective.student_stages == ["encoder.stages.0", "decoder.stages.1"]
    assert set(objective.feature_losses) == {"0_0", "1_0"}
    adapter_parameters = list(objective.parameters())
    assert adapter_parameters and all(p.requires_grad for p in adapter_parameters)
    losses = objective(student(data), targets, data, torch.tensor(0.0))
    assert losses["mid"].item() > 0 and losses["kl"].item() == 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in adapter_parameters)
    assert all(p.grad is None for p in teacher.networks[0].parameters())


def test_unknown_stage_of_a_teacher_is_a_clear_error():
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(feature_stages=("encoder.stem",)), DS_WEIGHTS)
    data, targets = batch()
    with pytest.raises(ConfigurationError, match="encoder.stem"):
        objective.attach_features(student, data[:1], targets[0][:1])


def test_student_hooks_that_did_not_fire_are_a_clear_error():
    # what a compiled graph traced without the hooks looks like to the objective: the student's features are missing
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(feature_stages=("encoder.stages.0",)), DS_WEIGHTS)
    data, targets = batch()
    objective.attach_features(student, data[:1], targets[0][:1])
    objective._student_recorder.detach()
    with pytest.raises(RuntimeError, match="hooks did not fire for encoder.stages.0"):
        objective(student(data), targets, data, torch.tensor(0.0))


class _Compiled(nn.Module):
    """Stands in for torch.compile's OptimizedModule (a real compile needs a C++ toolchain and minutes on a CPU)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def test_compiled_teachers_keep_their_hooks_and_give_the_same_losses(monkeypatch):
    student, teacher = unet(), frozen(unet(8))
    objective = DistillationObjective([teacher], KDConfig(feature_stages=("encoder.stages.0",)), DS_WEIGHTS)
    data, targets = batch()
    objective.attach_features(student, data[:1], targets[0][:1])
    student.eval()
    before = objective(student(data), targets, data, torch.tensor(0.0))
    monkeypatch.setattr(torch, "compile", _Compiled)
    objective.compile_teachers()
    assert isinstance(teacher.networks[0], _Compiled)
    after = objective(student(data), targets, data, torch.tensor(0.0))
    assert after["mid"].item() == pytest.approx(before["mid"].item()) and after["mid"].item() > 0
    assert after["kl"].item() == pytest.approx(before["kl"].item())


def test_box_guided_teacher_gets_the_boxes_of_the_target():
    teacher = frozen(unet(inputs=2), needs_boxes=True)
    data, targets = batch()
    x = teacher.prepare_input(data, targets[0])
    assert x.shape == (2, 2, *PATCH)
    assert torch.equal(x[:, :1], data)
    expected = torch.from_numpy(axial_box_mask(targets[0][0, 0].numpy() > 0)).float()
    assert torch.equal(x[0, 1], expected)


def test_two_teachers_adaptive_weights_favour_the_one_that_agrees_with_the_label():
    student = unet()
    data, targets = batch()

    class Oracle(nn.Module):
        def forward(self, x):
            fg = (x[:, -1:] > 0).float()  # its box channel marks the tumour
            logits = torch.cat([torch.zeros_like(fg), 10 * (2 * fg - 1)], dim=1)  # background, tumour
            return [logits, logits[:, :, ::2, ::2, ::2]]

    teachers = [frozen(Oracle(), needs_boxes=True), frozen(unet())]
    objective = DistillationObjective(teachers, KDConfig(alpha=0.0, beta=1.0), DS_WEIGHTS)
    weights = objective(student(data), targets, data, torch.tensor(0.0))["weights"]
    assert weights.shape == (2, 2)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert (weights[:, 0] > 0.9).all()
