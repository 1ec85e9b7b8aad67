"""The distillation objective: frozen teachers + student outputs -> ``Seg + α·Mid + β·KL`` (Ben Loussaief et al.,
the multi-teacher paper).

:class:`DistillationObjective` is an ``nn.Module`` whose only parameters are the feature adapters (1x1x1 convs for
channel mismatches): the trainer puts them into its optimizer and checkpoint, never into the exported network.
Teachers are held in a plain list, so they are neither parameters nor part of any ``state_dict``.

Per training step (shapes: data ``(B, C, *patch)``, deep-supervision outputs ``[(B, K, *s_i)]``). Steps 1-2 and the
fused target of step 3 are :meth:`DistillationObjective.teach`, which the trainer calls *before* the student's forward
pass (the teachers' transient activations are freed before the student's are kept for the backward pass, so they
never add up); the losses of steps 3-5 are its ``forward``:

1. every teacher (all its folds, eval mode, no autograd) sees the student's augmented patch, converted to its CT
   normalisation and, for box-guided teachers, with the axial boxes of the batch's full-resolution target appended
   (computed by the trainer's data-augmentation workers);
2. per sample, teacher weights ``w (B, J)`` from the teachers' probabilities (T = 1) and the target
   (:func:`~nnunet_kd.distillation.teacher_weights.compute_teacher_weights`); a sample whose label came from a
   teacher (a pseudo-labelled case, ``trusted`` False) gets the fallback weights: agreement with a teacher's own
   output would always favour that teacher;
3. KL: the fused target at every deep-supervision scale is ``Σ_j w_j · softmax(z_j / T)`` (the teacher's own
   deep-supervision output when its pooling matches the student's, else its full-resolution probabilities pooled to
   that scale); the softened KL of each scale is weighted with nnU-Net's deep-supervision weights (from the trainer);
4. Mid: for each named stage and teacher, the feature loss (MSE/cosine after adapters, or attention transfer +
   region contrast) weighted per sample with ``w_j``; averaged over stages, summed over teachers. A teacher with
   several folds contributes the mean of its folds' features (as its KL target is the mean of their probabilities).
   A teacher of another architecture names its own matching modules (:func:`teacher_stage_names`); transformer
   tokens are put back on their patch grid (:func:`~nnunet_kd.distillation.feature_capture.feature_map`);
5. total = Seg + α·Mid + β·KL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nnunet_kd.distillation.feature_capture import FeatureRecorder, feature_map
from nnunet_kd.distillation.frozen_teachers import FrozenTeacher
from nnunet_kd.distillation.spec import TeacherSpec
from nnunet_kd.distillation.teacher_weights import compute_teacher_weights, fuse_teacher_probabilities
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.losses import (
    AttentionTransferLoss,
    DeepSupervisionLoss,
    FeatureAlignmentLoss,
    RegionContrastLoss,
    SoftenedKLDivergence,
    combine_kd_losses,
    pool_probabilities_to_shapes,
)
from nnunet_kd.network_wrappers import compile_keeping_hooks, unwrap_network


@dataclass(frozen=True)
class KDConfig:
    """Effective distillation hyper-parameters (class defaults of the trainer, overridden by the spec)."""

    temperature: float = 2.0
    alpha: float = 0.1
    beta: float = 0.1
    weighting: str = "adaptive"
    feature_stages: tuple[str, ...] = ()
    feature_loss: str = "mse"


@dataclass(frozen=True)
class TeacherTargets:
    """What the frozen teachers contribute to one batch (:meth:`DistillationObjective.teach`); no gradients.

    Attributes:
        probabilities: the fused softened teacher target per student output scale ``[(B, K, *s_i)]``, highest
            resolution first; ``None`` when β = 0 (no KL term).
        weights: ``(B, J)`` per-sample teacher weights, each row summing to 1.
    """

    probabilities: list[Tensor] | None
    weights: Tensor


def resolve_stage_name(network: nn.Module, name: str) -> str:
    """``decoder.stages.-1`` -> ``decoder.stages.4``: negative indices count from the end of their container."""
    parts = name.split(".")
    module = unwrap_network(network)
    resolved = []
    for index, part in enumerate(parts):
        if part.lstrip("-").isdigit() and int(part) < 0 and hasattr(module, "__len__"):
            part = str(len(module) + int(part))
        resolved.append(part)
        module = getattr(module, part, None) if not part.isdigit() else (
            module[int(part)] if hasattr(module, "__getitem__") and int(part) < len(module) else None)
        if module is None:  # not a module: the name stays as given, for the recorder's error message
            return ".".join(resolved + parts[index + 1:])
    return ".".join(resolved)


def teacher_stage_names(spec: TeacherSpec, student_stages: tuple[str, ...], label: str) -> tuple[str, ...]:
    """The teacher's module names matched to the student's feature stages: its spec's own ``feature_stages`` (one per
    student stage, for a teacher of another architecture) or else the student's names.

    Raises:
        ConfigurationError: the teacher lists a different number of stages than the student uses.
    """
    if spec.feature_stages is None or not student_stages:  # a logits-only trainer ignores the teacher's stages
        return tuple(student_stages)
    if len(spec.feature_stages) != len(student_stages):
        raise ConfigurationError(
            f"teacher {label}: its feature_stages name {len(spec.feature_stages)} modules "
            f"({', '.join(spec.feature_stages)}) but the student aligns {len(student_stages)} "
            f"({', '.join(student_stages)}); give one teacher module per student stage")
    return tuple(spec.feature_stages)


class DistillationObjective(nn.Module):
    """Computes the distillation loss of one batch; holds the adapters (its parameters) but not the teachers.

    Args:
        teachers: loaded frozen teachers.
        config: hyper-parameters.
        ds_weights: nnU-Net's deep-supervision weights of the student's loss (one per output, highest resolution
            first); ``[1.0]`` without deep supervision.
        fixed_weights: per-teacher weights for the ``fixed`` scheme and as fallback (``None``: uniform fallback).
        ignore_label: the student dataset's ignore label, or None.
    """

    def __init__(self, teachers: list[FrozenTeacher], config: KDConfig, ds_weights: list[float],
                 fixed_weights: list[float] | None = None, ignore_label: int | None = None):
        super().__init__()
        #: nnU-Net's ignore label: left out of the teacher weights' agreement and of the boxes derived from a label;
        #: the KL and feature terms teach every voxel (the teachers' soft targets matter most where the label is
        #: missing)
        self.ignore_label = ignore_label
        self.teachers = list(teachers)  # a plain list: not submodules, never in state_dict or parameters()
        self.config = config
        self.ds_weights = list(ds_weights)
        self.fixed_weights = fixed_weights
        self.kl = DeepSupervisionLoss(SoftenedKLDivergence(config.temperature), self.ds_weights)
        self.feature_losses = nn.ModuleDict()
        self.attention = AttentionTransferLoss()
        self.region_contrast = RegionContrastLoss()
        self._student_recorder: FeatureRecorder | None = None
        self._teacher_recorders: list[list[FeatureRecorder]] = []  # per teacher, one per fold
        self.student_stages: list[str] = []
        self.teacher_stages: list[list[str]] = []

    # ------------------------------------------------------------------------------------------ setup
    def prepare(self, student: nn.Module, example: Tensor, example_target: Tensor) -> None:
        """Before training: hook the configured stages on student and teachers, check that every teacher runs on the
        student's patch, and build the feature losses (adapters).

        Args:
            student: the student network (hooks are registered before any ``torch.compile``).
            example: one input batch ``(B, C, *patch)`` for a dry run that reveals the channel counts.
            example_target: ``(B, 1, *patch)`` label for the box channel of box-guided teachers.

        Raises:
            ConfigurationError: a stage does not exist, a teacher cannot process the patch, or a stage's output is
                no feature map; the message names the student or the teacher.
        """
        if self.config.feature_stages:
            self._attach_recorders(student)
        with torch.no_grad():
            for teacher in self.teachers:
                try:
                    x = teacher.prepare_input(example, example_target, ignore_label=self.ignore_label)
                    for network in teacher.networks if self.config.feature_stages else teacher.networks[:1]:
                        network(x)
                except Exception as error:  # any architecture's own failure, e.g. a fixed-size position embedding
                    raise ConfigurationError(
                        f"teacher {teacher.label} cannot process the student's patch {list(example.shape[2:])}: "
                        f"{type(error).__name__}: {error}") from None
            if not self.config.feature_stages:
                return
            was_training = student.training
            student.eval()
            student(example)
            student.train(was_training)
        spatial = example.shape[2:]
        student_maps = [self._map(self._student_recorder, stage, spatial, "student") for stage in self.student_stages]
        teacher_maps = [[self._teacher_map(j, s, spatial) for s in range(len(self.student_stages))]
                        for j in range(len(self.teachers))]
        if self.config.feature_loss in ("mse", "cosine"):
            spatial_dims = example.ndim - 2
            for s, student_map in enumerate(student_maps):
                for j, maps in enumerate(teacher_maps):
                    self.feature_losses[f"{s}_{j}"] = FeatureAlignmentLoss(
                        student_map.shape[1], maps[s].shape[1], self.config.feature_loss, spatial_dims)
        self._clear_features()

    def _attach_recorders(self, student: nn.Module) -> None:
        """Forward hooks on the student's configured stages and on each teacher's matching modules."""
        self.student_stages = [resolve_stage_name(student, s) for s in self.config.feature_stages]
        try:
            self._student_recorder = FeatureRecorder(student, self.student_stages)
        except ConfigurationError as error:
            raise ConfigurationError(f"student: {error}") from None
        self._student_recorder.attach()
        for teacher in self.teachers:
            names = teacher_stage_names(teacher.spec, self.config.feature_stages, teacher.label)
            stages = [resolve_stage_name(teacher.networks[0], s) for s in names]
            try:  # every fold: the teacher's features are the mean over its folds, like its probabilities
                recorders = [FeatureRecorder(network, stages).attach() for network in teacher.networks]
            except ConfigurationError as error:
                hint = "" if teacher.spec.feature_stages else (
                    " (a teacher of another architecture names its own modules, one per student stage, in its "
                    "spec entry's feature_stages)")
                raise ConfigurationError(f"teacher {teacher.label}: {error}{hint}") from None
            self.teacher_stages.append(stages)
            self._teacher_recorders.append(recorders)

    @staticmethod
    def _map(recorder: FeatureRecorder, stage: str, spatial: torch.Size, who: str) -> Tensor:
        try:
            return feature_map(recorder.features[stage], spatial)
        except ConfigurationError as error:
            raise ConfigurationError(f"{who}, stage {stage}: {error}") from None

    def _teacher_map(self, teacher: int, stage: int, spatial: torch.Size) -> Tensor:
        """Teacher ``teacher``'s feature map ``(B, C, *s)`` matched to student stage ``stage``: the mean over its
        folds, without gradients."""
        name = self.teacher_stages[teacher][stage]
        who = f"teacher {self.teachers[teacher].label}"
        maps = [self._map(recorder, name, spatial, who).detach() for recorder in self._teacher_recorders[teacher]]
        return maps[0] if len(maps) == 1 else torch.stack(maps).mean(dim=0)

    def compile_teachers(self) -> None:
        """``torch.compile`` every teacher network (all folds). Call after :meth:`prepare`: hooks registered
        later would not be traced."""
        for teacher in self.teachers:
            teacher.networks = [compile_keeping_hooks(network) for network in teacher.networks]

    def _recorders(self) -> list[FeatureRecorder]:
        student = [] if self._student_recorder is None else [self._student_recorder]
        return student + [recorder for recorders in self._teacher_recorders for recorder in recorders]

    def detach_features(self) -> None:
        for recorder in self._recorders():
            recorder.detach()

    def _clear_features(self) -> None:
        for recorder in self._recorders():
            recorder.clear()

    # ------------------------------------------------------------------------------------------ teachers
    @torch.no_grad()
    def run_teacher(self, teacher: FrozenTeacher, data: Tensor, target_full: Tensor, shapes: list[torch.Size],
                    with_plain: bool = True, boxes: Tensor | None = None) -> tuple[list[Tensor], Tensor | None]:
        """Softened probabilities at every student output scale, and full-resolution probabilities at T = 1
        (``None`` unless ``with_plain``: only the adaptive teacher weights need them).

        Folds are averaged in probability space. Returns ``([(B, K, *s_i)], (B, K, *patch))``.
        """
        x = teacher.prepare_input(data, target_full, boxes, self.ignore_label)
        temperature = self.config.temperature
        soft_sum: list[Tensor] | None = None
        plain_sum: Tensor | None = None
        for network in teacher.networks:
            with torch.autocast(data.device.type, enabled=data.device.type == "cuda"):
                output = network(x)
            outputs = [o.float() for o in output] if isinstance(output, (list, tuple)) else [output.float()]
            plain = torch.softmax(outputs[0], dim=1) if with_plain else None
            if len(outputs) >= len(shapes) and all(o.shape[2:] == s for o, s in zip(outputs, shapes)):
                soft = [torch.softmax(o / temperature, dim=1) for o in outputs[: len(shapes)]]
            else:
                soft = pool_probabilities_to_shapes(torch.softmax(outputs[0] / temperature, dim=1), shapes)
            soft_sum = soft if soft_sum is None else [a + b for a, b in zip(soft_sum, soft)]
            if with_plain:
                plain_sum = plain if plain_sum is None else plain_sum + plain
        n = len(teacher.networks)
        if n == 1:
            return soft_sum, plain_sum
        return [s / n for s in soft_sum], None if plain_sum is None else plain_sum / n

    # ------------------------------------------------------------------------------------------ loss
    @torch.no_grad()
    def teach(self, data: Tensor, targets: list[Tensor], boxes: Tensor | None = None,
              trusted: Tensor | None = None) -> TeacherTargets:
        """Run the teachers on the batch: per-sample weights and the fused softened target at every output scale.

        Call it before the student's forward pass: the teachers' activations are then freed before the student keeps
        its own for the backward pass. Teacher features for Mid stay in the
        hooks until :meth:`forward`.

        Args:
            data: the student's input batch ``(B, C, *patch)`` (the same augmented patch goes to the teachers).
            targets: the label maps ``(B, 1, *s_i)``, one per student output scale, highest resolution first (their
                shapes are the student's output shapes).
            boxes: ``(B, 1, *patch)`` axial box mask of ``targets[0]`` for box-guided teachers, if already computed
                (else they are derived from ``targets[0]`` on the host).
            trusted: ``(B,)`` bool, False for samples whose label a teacher made (pseudo-labelled cases): they get
                the fallback teacher weights. None: every label is trusted.
        """
        shapes = [t.shape[2:] for t in targets]
        # only the adaptive schemes with several teachers look at the teachers' T = 1 probabilities and the label;
        # otherwise the weights are the fallback (uniform or fixed; one teacher always weighs 1)
        agreement = len(self.teachers) > 1 and self.config.weighting in ("adaptive", "paper_literal")
        results = [self.run_teacher(t, data, targets[0], shapes, agreement, boxes) for t in self.teachers]
        weights = compute_teacher_weights([plain if agreement else soft[0] for soft, plain in results],
                                          targets[0] if agreement else None, self.config.weighting,
                                          self.fixed_weights, trusted=trusted if agreement else None,
                                          ignore_label=self.ignore_label)
        fused = None
        if self.config.beta > 0:
            fused = results[0][0] if len(self.teachers) == 1 else [
                fuse_teacher_probabilities([soft[i] for soft, _ in results], weights) for i in range(len(shapes))]
        return TeacherTargets(fused, weights)

    def forward(self, student_outputs: list[Tensor], targets: list[Tensor], seg_loss: Tensor,
                teacher_targets: TeacherTargets) -> dict[str, Tensor]:
        """The total loss and its components for one batch.

        Args:
            student_outputs: the student's logits per deep-supervision scale, highest resolution first.
            targets: the matching label maps ``(B, 1, *s_i)``.
            seg_loss: the student's segmentation loss (nnU-Net's, already computed).
            teacher_targets: :meth:`teach` of the same batch.

        Returns:
            ``{'loss', 'seg', 'mid', 'kl', 'weights' (B, J)}``; only ``'loss'`` carries gradients.
        """
        kl = None if teacher_targets.probabilities is None else self.kl(student_outputs,
                                                                        teacher_targets.probabilities)
        mid = self._feature_loss(targets[0], teacher_targets.weights) if self.config.feature_stages else None
        self._clear_features()
        losses = combine_kd_losses(seg_loss, mid, kl, self.config.alpha, self.config.beta)
        losses["weights"] = teacher_targets.weights
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
        spatial = target.shape[2:]
        for s, stage in enumerate(self.student_stages):
            fs = feature_map(student_features[stage], spatial)
            for j in range(len(self.teachers)):
                ft = self._teacher_map(j, s, spatial)
                sample_weights = weights[:, j]
                if self.config.feature_loss == "at_rc":
                    term = self.attention(fs, ft, sample_weights=sample_weights) + self.region_contrast(
                        fs, ft, target, sample_weights=sample_weights)
                else:
                    term = self.feature_losses[f"{s}_{j}"](fs, ft, sample_weights=sample_weights)
                total = total + term
        return total / len(self.student_stages)
