"""The distillation objective: frozen teachers + student outputs -> ``Seg + α·Mid + β·KL`` (Ben Loussaief et al.).

:class:`DistillationObjective` is an ``nn.Module`` whose only parameters are the feature adapters (1x1x1 convs for
channel mismatches): the trainer puts them into its optimizer and checkpoint, never into the exported network.
Teachers are held in a plain list, so they are neither parameters nor part of any ``state_dict``.

Per training step (shapes: data ``(B, C, *patch)``, deep-supervision outputs ``[(B, K, *s_i)]``):

1. every teacher (all its folds, eval mode, no autograd) sees the student's augmented patch, converted to its CT
   normalisation and, for box-guided teachers, with the axial boxes of the batch's full-resolution target appended;
2. per sample, teacher weights ``w (B, J)`` from the teachers' probabilities (T = 1) and the target
   (:func:`~nnunet_kd.teacher_weights.compute_teacher_weights`);
3. KL: the fused target at every deep-supervision scale is ``Σ_j w_j · softmax(z_j / T)`` (the teacher's own
   deep-supervision output when its pooling matches the student's, else its full-resolution probabilities pooled to
   that scale); the softened KL of each scale is weighted with nnU-Net's deep-supervision weights (from the trainer);
4. Mid: for each named stage and teacher, the feature loss (MSE/cosine after adapters, or attention transfer +
   region contrast) weighted per sample with ``w_j``; averaged over stages, summed over teachers;
5. total = Seg + α·Mid + β·KL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.feature_capture import FeatureRecorder, compile_keeping_hooks, unwrap_network
from nnunet_kd.losses import (
    AttentionTransferLoss,
    DeepSupervisionLoss,
    FeatureAlignmentLoss,
    RegionContrastLoss,
    SoftenedKLDivergence,
    combine_kd_losses,
    pool_probabilities_to_shapes,
)
from nnunet_kd.teacher_weights import compute_teacher_weights, fuse_teacher_probabilities
from nnunet_kd.teachers import FrozenTeacher


@dataclass(frozen=True)
class KDConfig:
    """Effective distillation hyper-parameters (class defaults of the trainer, overridden by the spec)."""

    temperature: float = 2.0
    alpha: float = 0.1
    beta: float = 0.1
    weighting: str = "adaptive"
    feature_stages: tuple[str, ...] = ()
    feature_loss: str = "mse"


def resolve_stage_name(network: nn.Module, name: str) -> str:
    """``decoder.stages.-1`` -> ``decoder.stages.4``: negative indices count from the end of their container."""
    parts = name.split(".")
    module = unwrap_network(network)
    resolved = []
    for part in parts:
        if part.lstrip("-").isdigit() and int(part) < 0 and hasattr(module, "__len__"):
            part = str(len(module) + int(part))
        resolved.append(part)
        module = getattr(module, part, None) if not part.isdigit() else (
            module[int(part)] if hasattr(module, "__getitem__") and int(part) < len(module) else None)
        if module is None:
            break
    return ".".join(resolved)


class DistillationObjective(nn.Module):
    """Computes the distillation loss of one batch; holds the adapters (its parameters) but not the teachers.

    Args:
        teachers: loaded frozen teachers.
        config: hyper-parameters.
        ds_weights: nnU-Net's deep-supervision weights of the student's loss (one per output, highest resolution
            first); ``[1.0]`` without deep supervision.
        fixed_weights: per-teacher weights for the ``fixed`` scheme and as fallback (``None``: uniform fallback).
    """

    def __init__(self, teachers: list[FrozenTeacher], config: KDConfig, ds_weights: list[float],
                 fixed_weights: list[float] | None = None):
        super().__init__()
        self.teachers = list(teachers)  # a plain list: not submodules, never in state_dict or parameters()
        self.config = config
        self.ds_weights = list(ds_weights)
        self.fixed_weights = fixed_weights
        self.kl = DeepSupervisionLoss(SoftenedKLDivergence(config.temperature), self.ds_weights)
        self.feature_losses = nn.ModuleDict()
        self.attention = AttentionTransferLoss()
        self.region_contrast = RegionContrastLoss()
        self._student_recorder: FeatureRecorder | None = None
        self._teacher_recorders: list[FeatureRecorder] = []
        self.student_stages: list[str] = []
        self.teacher_stages: list[list[str]] = []

    # ------------------------------------------------------------------------------------------ setup
    def attach_features(self, student: nn.Module, example: Tensor, example_target: Tensor) -> None:
        """Hook the configured stages on student and teachers and build the feature losses (adapters).

        Args:
            student: the student network (hooks are registered before any ``torch.compile``).
            example: one input batch ``(B, C, *patch)`` used for a dry run that reveals the channel counts.
            example_target: ``(B, 1, *patch)`` label for the box channel of box-guided teachers.
        """
        if not self.config.feature_stages:
            return
        self.student_stages = [resolve_stage_name(student, s) for s in self.config.feature_stages]
        self._student_recorder = FeatureRecorder(student, self.student_stages)
        self._student_recorder.attach()
        for teacher in self.teachers:
            stages = [resolve_stage_name(teacher.networks[0], s) for s in self.config.feature_stages]
            try:
                recorder = FeatureRecorder(teacher.networks[0], stages)
            except ConfigurationError as error:
                raise ConfigurationError(f"teacher {teacher.label}: {error}") from None
            recorder.attach()
            self.teacher_stages.append(stages)
            self._teacher_recorders.append(recorder)
        with torch.no_grad():
            was_training = student.training
            student.eval()
            student(example)
            student.train(was_training)
            for teacher in self.teachers:
                teacher.networks[0](teacher.prepare_input(example, example_target))
        if self.config.feature_loss in ("mse", "cosine"):
            spatial_dims = example.ndim - 2
            for s, stage in enumerate(self.student_stages):
                student_channels = self._student_recorder.features[stage].shape[1]
                for j, recorder in enumerate(self._teacher_recorders):
                    teacher_channels = recorder.features[self.teacher_stages[j][s]].shape[1]
                    self.feature_losses[f"{s}_{j}"] = FeatureAlignmentLoss(
                        student_channels, teacher_channels, self.config.feature_loss, spatial_dims)
        self._clear_features()

    def compile_teachers(self) -> None:
        """``torch.compile`` every teacher network (all folds). Call after :meth:`attach_features`: hooks registered
        later would not be traced."""
        for teacher in self.teachers:
            teacher.networks = [compile_keeping_hooks(network) for network in teacher.networks]

    def detach_features(self) -> None:
        for recorder in [self._student_recorder, *self._teacher_recorders]:
            if recorder is not None:
                recorder.detach()

    def _clear_features(self) -> None:
        for recorder in [self._student_recorder, *self._teacher_recorders]:
            if recorder is not None:
                recorder.clear()

    # ------------------------------------------------------------------------------------------ teachers
    @torch.no_grad()
    def run_teacher(self, teacher: FrozenTeacher, data: Tensor, target_full: Tensor,
                    shapes: list[torch.Size]) -> tuple[list[Tensor], Tensor]:
        """Softened probabilities at every student output scale, and full-resolution probabilities at T = 1.

        Folds are averaged in probability space. Returns ``([(B, K, *s_i)], (B, K, *patch))``.
        """
        x = teacher.prepare_input(data, target_full)
        temperature = self.config.temperature
        soft_sum: list[Tensor] | None = None
        plain_sum: Tensor | None = None
        for network in teacher.networks:
            with torch.autocast(data.device.type, enabled=data.device.type == "cuda"):
                output = network(x)
            outputs = [o.float() for o in output] if isinstance(output, (list, tuple)) else [output.float()]
            plain = torch.softmax(outputs[0], dim=1)
            if len(outputs) >= len(shapes) and all(o.shape[2:] == s for o, s in zip(outputs, shapes)):
                soft = [torch.softmax(o / temperature, dim=1) for o in outputs[: len(shapes)]]
            else:
                soft = pool_probabilities_to_shapes(torch.softmax(outputs[0] / temperature, dim=1), shapes)
            soft_sum = soft if soft_sum is None else [a + b for a, b in zip(soft_sum, soft)]
            plain_sum = plain if plain_sum is None else plain_sum + plain
        n = len(teacher.networks)
        return [s / n for s in soft_sum], plain_sum / n

    # ------------------------------------------------------------------------------------------ loss
    def forward(self, student_outputs: list[Tensor], targets: list[Tensor], data: Tensor,
                seg_loss: Tensor) -> dict[str, Tensor]:
        """The total loss and its components for one batch.

        Args:
            student_outputs: the student's logits per deep-supervision scale, highest resolution first.
            targets: the matching label maps ``(B, 1, *s_i)``.
            data: the student's input batch (the same augmented patch goes to the teachers).
            seg_loss: the student's segmentation loss (nnU-Net's, already computed).

        Returns:
            ``{'loss', 'seg', 'mid', 'kl', 'weights' (B, J)}``; only ``'loss'`` carries gradients.
        """
        shapes = [o.shape[2:] for o in student_outputs]
        results = [self.run_teacher(t, data, targets[0], shapes) for t in self.teachers]
        weights = compute_teacher_weights([plain for _, plain in results], targets[0], self.config.weighting,
                                          self.fixed_weights)
        kl = None
        if self.config.beta > 0:
            fused = [fuse_teacher_probabilities([soft[i] for soft, _ in results], weights)
                     for i in range(len(student_outputs))]
            kl = self.kl(student_outputs, fused)
        mid = self._feature_loss(targets[0], weights) if self.config.feature_stages else None
        self._clear_features()
        losses = combine_kd_losses(seg_loss, mid, kl, self.config.alpha, self.config.beta)
        losses["weights"] = weights.detach()
        return losses

    def _feature_loss(self, target: Tensor, weights: Tensor) -> Tensor:
        student_features = self._student_recorder.features
        missing = [stage for stage in self.student_stages if stage not in student_features]
        if missing:
            raise RuntimeError(
                f"the student's feature hooks did not fire for {', '.join(missing)}: the network was probably compiled "
                "from a graph traced without them (torch.compile does not guard on hooks by default); attach the hooks "
                "before the first compiled call, or set nnUNet_compile=f")
        total = 0.0
        for s, stage in enumerate(self.student_stages):
            for j, recorder in enumerate(self._teacher_recorders):
                fs = student_features[stage]
                ft = recorder.features[self.teacher_stages[j][s]].detach()
                sample_weights = weights[:, j]
                if self.config.feature_loss == "at_rc":
                    term = self.attention(fs, ft, sample_weights=sample_weights) + self.region_contrast(
                        fs, ft, target, sample_weights=sample_weights)
                else:
                    term = self.feature_losses[f"{s}_{j}"](fs, ft, sample_weights=sample_weights)
                total = total + term
        return total / len(self.student_stages)
