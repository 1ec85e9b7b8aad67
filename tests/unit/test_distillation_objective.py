"""The distillation objective on tiny real U-Nets: KL, features, adapters, frozen teachers, box channel."""

from __future__ import annotations

import copy

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_kd.boxes.axial_boxes import axial_box_mask
from nnunet_kd.distillation.ct_normalization import NormalizationConversion
from nnunet_kd.distillation.frozen_teachers import FrozenTeacher
from nnunet_kd.distillation.objective import DistillationObjective, KDConfig
from nnunet_kd.distillation.spec import TeacherSpec
from nnunet_kd.errors import ConfigurationError

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
    losses = objective(outputs, targets, seg, objective.teach(data, targets))
    assert abs(losses["kl"].item()) < 1e-6
    assert abs(losses["loss"].item() - 0.5) < 1e-6
    assert list(objective.parameters()) == [] and objective.state_dict() == {}  # teachers are not submodules


def test_kl_gradient_reaches_the_student_only():
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(alpha=0.0, beta=1.0), DS_WEIGHTS)
    data, targets = batch()
    losses = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
    assert losses["kl"].item() > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in teacher.networks[0].parameters())


def test_features_with_adapters_for_a_wider_teacher_and_stage_resolution():
    student, teacher = unet(4), frozen(unet(8))
    config = KDConfig(alpha=1.0, beta=0.0, feature_stages=("encoder.stages.0", "decoder.stages.-1"))
    objective = DistillationObjective([teacher], config, DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    assert objective.student_stages == ["encoder.stages.0", "decoder.stages.1"]
    assert set(objective.feature_losses) == {"0_0", "1_0"}
    adapter_parameters = list(objective.parameters())
    assert adapter_parameters and all(p.requires_grad for p in adapter_parameters)
    losses = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
    assert losses["mid"].item() > 0 and losses["kl"].item() == 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in adapter_parameters)
    assert all(p.grad is None for p in teacher.networks[0].parameters())


def test_unknown_stage_of_a_teacher_is_a_clear_error():
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(feature_stages=("encoder.stem",)), DS_WEIGHTS)
    data, targets = batch()
    with pytest.raises(ConfigurationError, match="encoder.stem"):
        objective.prepare(student, data[:1], targets[0][:1])


def test_student_hooks_that_did_not_fire_are_a_clear_error():
    # what a compiled graph traced without the hooks looks like to the objective: the student's features are missing
    student, teacher = unet(), frozen(unet())
    objective = DistillationObjective([teacher], KDConfig(feature_stages=("encoder.stages.0",)), DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    objective._student_recorder.detach()
    with pytest.raises(RuntimeError, match="hooks did not fire for encoder.stages.0"):
        objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))


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
    objective.prepare(student, data[:1], targets[0][:1])
    student.eval()
    before = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
    monkeypatch.setattr(torch, "compile", _Compiled)
    objective.compile_teachers()
    assert isinstance(teacher.networks[0], _Compiled)
    after = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
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
    weights = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))["weights"]
    assert weights.shape == (2, 2)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert (weights[:, 0] > 0.9).all()


# ---------------------------------------------------------------- teachers of other architectures


def resenc_unet(width: int = 4) -> nn.Module:
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    return ResidualEncoderUNet(1, 3, [width, 2 * width, 4 * width], nn.Conv3d, 3, [1, 2, 2], [1, 2, 2], 2, 1, True,
                               nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU,
                               {"inplace": True}, deep_supervision=True)


def primus(embed: int = 48) -> nn.Module:
    """nnU-Net's Primus (transformer) with 4x4x4 patches: no deep supervision, tokens inside."""
    from dynamic_network_architectures.architectures.primus import Primus

    return Primus(1, embed, (4, 4, 4), 2, 2, 4, PATCH, drop_path_rate=0.0, scale_attn_inner=True, init_values=0.1)


def test_residual_encoder_teacher_distils_logits_and_features_by_the_same_names():
    student, teacher = unet(), frozen(resenc_unet(8))
    config = KDConfig(alpha=1.0, beta=1.0, feature_stages=("encoder.stages.0", "encoder.stages.1"))
    objective = DistillationObjective([teacher], config, DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    losses = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
    assert losses["kl"].item() > 0 and losses["mid"].item() > 0
    assert [m.teacher_channels for m in objective.feature_losses.values()] == [8, 16]


def test_transformer_teacher_without_deep_supervision_gives_the_pooled_kl():
    from nnunet_kd.losses import SoftenedKLDivergence, pool_probabilities_to_shapes

    student, network = unet(), primus()
    objective = DistillationObjective([frozen(network)], KDConfig(temperature=2.0, alpha=0.0, beta=1.0), DS_WEIGHTS)
    data, targets = batch()
    outputs = student(data)
    kl = objective(outputs, targets, torch.tensor(0.0), objective.teach(data, targets))["kl"]
    with torch.no_grad():  # by hand: the teacher's full-resolution softened probabilities pooled to each scale
        soft = torch.softmax(network(data) / 2.0, dim=1)
    pooled = pool_probabilities_to_shapes(soft, [o.shape[2:] for o in outputs])
    expected = sum(w * SoftenedKLDivergence(2.0)(o, p) for w, o, p in zip(DS_WEIGHTS, outputs, pooled, strict=True))
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5) and kl.item() > 0


def test_transformer_teacher_aligns_its_own_modules_tokens_included():
    student, network = unet(), primus()
    teacher = frozen(network)
    teacher.spec = TeacherSpec("1", "nnUNet_Primus_S_Trainer", "c", feature_stages=("down_projection", "eva.blocks.1"))
    config = KDConfig(alpha=1.0, beta=0.0, feature_stages=("encoder.stages.0", "encoder.stages.2"))
    objective = DistillationObjective([teacher], config, DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    assert objective.teacher_stages == [["down_projection", "eva.blocks.1"]]
    assert [(m.student_channels, m.teacher_channels) for m in objective.feature_losses.values()] == [(4, 48), (16, 48)]
    losses = objective(student(data), targets, torch.tensor(0.0), objective.teach(data, targets))
    assert losses["mid"].item() > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in objective.parameters())
    assert all(p.grad is None for p in network.parameters())


def test_transformer_teacher_with_the_students_stage_names_or_a_wrong_count_is_a_clear_error():
    data, targets = batch()
    config = KDConfig(feature_stages=("encoder.stages.0",))
    objective = DistillationObjective([frozen(primus())], config, DS_WEIGHTS)
    with pytest.raises(ConfigurationError, match=r"teacher t: Primus has no module named 'encoder.stages.0'.*"
                                                 r"eva\.blocks\.1.*spec entry's feature_stages"):
        objective.prepare(unet(), data[:1], targets[0][:1])
    teacher = frozen(primus())
    teacher.spec = TeacherSpec("1", "T", "c", feature_stages=("down_projection", "eva.blocks.1"))
    with pytest.raises(ConfigurationError, match="name 2 modules .* the student aligns 1"):
        DistillationObjective([teacher], config, DS_WEIGHTS).prepare(unet(), data[:1], targets[0][:1])
    with pytest.raises(ConfigurationError, match="student: PlainConvUNet has no module named 'eva'"):
        DistillationObjective([teacher], KDConfig(feature_stages=("eva", "down_projection")),
                              DS_WEIGHTS).prepare(unet(), data[:1], targets[0][:1])


def test_teacher_that_cannot_process_the_students_patch_is_a_clear_error_before_training():
    # Primus is built for one input size (its position embedding): a student patch of another size cannot pass
    objective = DistillationObjective([frozen(primus())], KDConfig(), DS_WEIGHTS)  # logits only: no hooks needed
    larger = torch.zeros(1, 1, 16, 16, 16)
    with pytest.raises(ConfigurationError, match=r"teacher t cannot process the student's patch \[16, 16, 16\]: "
                                                 r"RuntimeError"):
        objective.prepare(unet(), larger, torch.zeros_like(larger))
    data, targets = batch()
    objective.prepare(unet(), data[:1], targets[0][:1])  # its own size passes


# ---------------------------------------------------------------- teacher weights inside the objective


def _expected_kl(outputs, teacher_outputs_per_teacher, weights, temperature):
    """Σ_scales w_s · KL(student_s ‖ Σ_j v_j softmax(teacher_j,s / T)), by hand with fixed teacher weights v."""
    from nnunet_kd.losses import SoftenedKLDivergence

    total = 0.0
    for s, (weight, output) in enumerate(zip(DS_WEIGHTS, outputs, strict=True)):
        fused = sum(v * torch.softmax(t[s] / temperature, dim=1) for v, t in
                    zip(weights, teacher_outputs_per_teacher, strict=True))
        total = total + weight * SoftenedKLDivergence(temperature)(output, fused)
    return total


@pytest.mark.parametrize("weighting", ["adaptive", "uniform", "paper_literal"])
def test_one_teacher_weighs_one_under_every_scheme_and_gives_the_plain_softened_kl(weighting):
    student, network = unet(), unet(8)
    objective = DistillationObjective([frozen(network)], KDConfig(temperature=2.0, beta=1.0, weighting=weighting),
                                      DS_WEIGHTS)
    data, targets = batch()
    outputs = student(data)
    losses = objective(outputs, targets, torch.tensor(0.0), objective.teach(data, targets))
    assert torch.equal(losses["weights"], torch.ones(2, 1))
    with torch.no_grad():
        expected = _expected_kl(outputs, [network(data)], [1.0], 2.0)
    assert losses["kl"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_two_teachers_with_fixed_weights_are_fused_by_those_weights():
    student, first, second = unet(), unet(8), unet(4)
    objective = DistillationObjective([frozen(first), frozen(second)], KDConfig(beta=1.0, weighting="fixed"),
                                      DS_WEIGHTS, fixed_weights=[3.0, 1.0])
    data, targets = batch()
    outputs = student(data)
    losses = objective(outputs, targets, torch.tensor(0.0), objective.teach(data, targets))
    assert torch.allclose(losses["weights"], torch.tensor([[0.75, 0.25], [0.75, 0.25]]))
    with torch.no_grad():
        expected = _expected_kl(outputs, [first(data), second(data)], [0.75, 0.25], 2.0)
    assert losses["kl"].item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------- the trainer's step


def test_trainer_runs_the_teachers_before_the_student_and_the_order_does_not_change_the_losses():
    # teachers first: their activations are freed before the student keeps its own for the backward pass
    # (benchmarks/README.md measures the memory and time this saves); the losses are those of the other order
    from nnunet_kd.trainers.knowledge_distillation import nnUNetTrainerDistillationBase

    student, network = unet(), unet(8)
    objective = DistillationObjective([frozen(network)], KDConfig(alpha=1.0, beta=1.0,
                                                                  feature_stages=("encoder.stages.0",)), DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    order = []
    student.register_forward_pre_hook(lambda module, args: order.append("student"))
    network.register_forward_pre_hook(lambda module, args: order.append("teacher"))
    trainer = object.__new__(nnUNetTrainerDistillationBase)  # only what compute_loss reads (no dataset needed)
    trainer.kd_objective, trainer.network = objective, student
    trainer.loss = lambda output, target: sum(o.square().mean() for o in output)  # stands in for Dice + CE
    losses = trainer.compute_loss(data, targets)
    assert order == ["teacher", "student"]

    outputs = student(data)  # the other order, by hand
    by_hand = objective(outputs, targets, trainer.loss(outputs, targets), objective.teach(data, targets))
    for key in ("loss", "seg", "mid", "kl"):
        assert losses[key].item() == pytest.approx(by_hand[key].item(), rel=1e-6) and losses[key].item() > 0


# ---------------------------------------------------------------- several folds, pseudo-labelled samples


def test_teacher_with_two_folds_aligns_the_student_with_the_mean_of_both_folds_features():
    student, fold_a, fold_b = unet(), unet(), unet()
    with torch.no_grad():
        for p in fold_b.parameters():
            p.mul_(-1.5)  # a second fold with other weights: other features
    teacher = frozen(fold_a)
    fold_b.eval().requires_grad_(False)
    teacher.networks, teacher.folds = [fold_a, fold_b], (0, 1)
    stage = "encoder.stages.0"
    objective = DistillationObjective([teacher], KDConfig(alpha=1.0, beta=0.0, feature_stages=(stage,)), DS_WEIGHTS)
    data, targets = batch()
    objective.prepare(student, data[:1], targets[0][:1])
    teacher_targets = objective.teach(data, targets)
    mid = objective(student(data), targets, torch.tensor(0.0), teacher_targets)["mid"]

    def features(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return network.encoder.stages[0](x)

    student.eval()  # same function as in the objective's forward above (InstanceNorm: no running statistics)
    mean = (features(fold_a, data) + features(fold_b, data)) / 2
    expected = (features(student, data) - mean).square().mean()  # same channel count: the adapter is the identity
    assert mid.item() == pytest.approx(expected.item(), rel=1e-5)
    only_a = (features(student, data) - features(fold_a, data)).square().mean()
    assert abs(only_a.item() - expected.item()) > 1e-3 * expected.item()  # fold 0 alone would be another loss


def test_pseudo_labelled_samples_get_the_fallback_weights_instead_of_agreement():
    # the oracle agrees with the label; on a sample whose label is a teacher's output (trusted False) agreement means
    # nothing, so the weights are the fallback: uniform here, the fixed weights when given
    class Oracle(nn.Module):
        def forward(self, x):
            fg = (x[:, -1:] > 0).float()
            logits = torch.cat([torch.zeros_like(fg), 10 * (2 * fg - 1)], dim=1)
            return [logits, logits[:, :, ::2, ::2, ::2]]

    data, targets = batch()
    trusted = torch.tensor([True, False])
    objective = DistillationObjective([frozen(Oracle(), needs_boxes=True), frozen(unet())],
                                      KDConfig(alpha=0.0, beta=1.0), DS_WEIGHTS)
    weights = objective.teach(data, targets, trusted=trusted).weights
    assert weights[0, 0] > 0.9
    assert torch.allclose(weights[1], torch.tensor([0.5, 0.5]))
    fixed = DistillationObjective([frozen(Oracle(), needs_boxes=True), frozen(unet())],
                                  KDConfig(alpha=0.0, beta=1.0), DS_WEIGHTS, fixed_weights=[1.0, 3.0])
    assert torch.allclose(fixed.teach(data, targets, trusted=trusted).weights[1], torch.tensor([0.25, 0.75]))
