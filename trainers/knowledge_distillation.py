"""Distillation trainers: frozen teachers supervise the student through softened logits and features.

``nnUNetTrainerDistillationBase`` owns the training step (nnU-Net 2.8.1's ``train_step`` with one change: the loss
comes from :meth:`compute_loss`); everything else is in :mod:`nnunet_kd.distillation.objective`. Teachers and
hyper-parameters come from the spec file (:mod:`nnunet_kd.distillation.spec`), checked in ``__init__`` so that a
bad spec stops the run before any training. Variants set class attributes only, and list in
``fixed_hyper_parameters`` the ones their name promises (``nnUNetTrainerKD``: no feature stages, logits only); a spec
may not set those. Cases that came from the pseudo-label export (their provenance beside the raw dataset says so) get
the fallback teacher weights. Checkpoints are loaded without running code
(:mod:`nnunet_kd.integrity.checkpoints`) and written under a temporary name.

The student network is nnU-Net's own (or a compact one from the plans): ``nnUNetv2_predict`` of a distilled model
needs no teacher, no boxes and no spec.
"""

import os
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.boxes.channel import AppendTeacherBoxChannelTransform
from nnunet_kd.distillation.distributed import average_gradients, broadcast_parameters, mean_over_ranks
from nnunet_kd.distillation.epoch_log import log_epoch_values, plot_kd_progress, register_keys
from nnunet_kd.distillation.frozen_teachers import StudentContext, check_teacher, load_teacher
from nnunet_kd.distillation.objective import DistillationObjective, KDConfig, teacher_stage_names
from nnunet_kd.distillation.spec import HYPER_PARAMETERS, KDSpec, load_spec, spec_path
from nnunet_kd.errors import ConfigurationError, exit_on_user_error
from nnunet_kd.integrity.checkpoints import load_checkpoint
from nnunet_kd.losses.segmentation import DiceLovaszLoss
from nnunet_kd.network_wrappers import compile_keeping_hooks
from nnunet_kd.pseudo_labels.provenance import pseudo_labelled_cases
from nnunet_kd.trainers.quick import NoMirroringMixin, QuickScheduleMixin, StudyScheduleMixin
from nnunet_kd.trainers.safe_checkpoints import SafeCheckpointMixin

_COMPONENTS = ("kd_seg", "kd_mid", "kd_kl")


class nnUNetTrainerDistillationBase(SafeCheckpointMixin, nnUNetTrainer):
    """Shared base of the distillation trainers (train a variant: the base promises nothing by its name)."""

    temperature: float = 2.0
    alpha: float = 0.1
    beta: float = 0.1
    weighting: str = "adaptive"
    feature_stages: tuple = ()
    feature_loss: str = "mse"
    #: hyper-parameters whose value this class's name promises; a spec may not set them (collected over the MRO)
    fixed_hyper_parameters: tuple[str, ...] = ()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        with exit_on_user_error(type(self).__name__):
            self.kd_spec = load_spec(spec_path(self.preprocessed_dataset_folder_base))
            self.kd_config = self._effective_config(self.kd_spec)
            self.kd_student = self._student_context()
            for index, teacher in enumerate(self.kd_spec.teachers):
                check_teacher(teacher, teacher.label(index), self.kd_student)
                teacher_stage_names(teacher, self.kd_config.feature_stages, teacher.label(index))
            self.kd_pseudo_labelled_cases = self._pseudo_labelled_cases()
        self.kd_objective: DistillationObjective | None = None
        self.kd_log_keys = [*_COMPONENTS, *(f"kd_weight_{t.label(i)}" for i, t in enumerate(self.kd_spec.teachers))]
        register_keys(self.logger, self.kd_log_keys)

    # ------------------------------------------------------------------------------------------ configuration
    @classmethod
    def fixed_by_name(cls) -> frozenset[str]:
        """The hyper-parameters this trainer's name promises (its and its bases' ``fixed_hyper_parameters``)."""
        return frozenset(name for klass in cls.__mro__ for name in vars(klass).get("fixed_hyper_parameters", ()))

    def _effective_config(self, spec: KDSpec) -> KDConfig:
        """The class defaults, overridden by the spec where the class name does not promise a value."""
        values = {name: getattr(self, name) for name in HYPER_PARAMETERS}
        fixed = self.fixed_by_name()
        for name, value in spec.overrides.items():
            if name in fixed:
                raise ConfigurationError(
                    f"{spec.source} sets {name}, which {type(self).__name__} fixes to {getattr(type(self), name)!r}; "
                    f"remove it from the spec or train with a trainer that does not fix it"
                )
            values[name] = value
        values["feature_stages"] = tuple(values["feature_stages"])
        if type(self).feature_stages and not values["feature_stages"]:
            raise ConfigurationError(
                f"{spec.source} sets no feature_stages, but {type(self).__name__} distils features; name at least one "
                f"module or train with nnUNetTrainerKD (logits only)")
        return KDConfig(**values)

    def _pseudo_labelled_cases(self) -> frozenset[str]:
        """Training cases whose label a teacher made, from the pseudo-label export's provenance in
        ``$nnUNet_raw/<dataset>``; empty when there is none (every label is then a reference label)."""
        raw = os.environ.get("nnUNet_raw", "").strip()
        if not raw:
            return frozenset()
        return pseudo_labelled_cases(Path(raw) / self.plans_manager.dataset_name)

    def _student_context(self) -> StudentContext:
        cm = self.configuration_manager
        return StudentContext(plans=self.plans_manager.plans, configuration=self.configuration_name,
                              dataset_json=self.dataset_json, fold=self.fold, patch_size=tuple(cm.patch_size),
                              transpose_forward=tuple(self.plans_manager.transpose_forward),
                              spacing=tuple(cm.spacing), num_image_channels=len(self.dataset_json["channel_names"]))

    def _do_i_compile(self):
        # nnU-Net asks (in its initialize) before the objective and its feature hooks exist; our initialize compiles
        # the student once they do (hooks first, then compile: this order gives eager's losses and
        # gradients). Under DDP the student stays eager: compiling inside the DDP wrapper is unverified.
        return getattr(self, "kd_objective", None) is not None and not self.is_ddp and super()._do_i_compile()

    # ------------------------------------------------------------------------------------------ set-up
    def initialize(self):
        super().initialize()
        with exit_on_user_error(type(self).__name__):
            teachers = [load_teacher(t, t.label(i), self.kd_student, self.device, self.enable_deep_supervision)
                        for i, t in enumerate(self.kd_spec.teachers)]
            ds_weights = self.deep_supervision_weights()
            fixed = [t.weight or 1.0 for t in self.kd_spec.teachers] if any(
                t.weight for t in self.kd_spec.teachers) else None
            self.kd_objective = DistillationObjective(teachers, self.kd_config, ds_weights, fixed,
                                                      self.label_manager.ignore_label).to(self.device)
            patch = self.configuration_manager.patch_size
            example = torch.zeros((1, len(self.dataset_json["channel_names"]), *patch), device=self.device)
            self.kd_objective.prepare(self.network, example, torch.zeros((1, 1, *patch), device=self.device))
            self.kd_objective.to(self.device)
        if self._do_i_compile():
            self.print_to_log_file("Using torch.compile for the student and the teachers (after the distillation "
                                   "hooks were attached)...")
            self.network = compile_keeping_hooks(self.network)
            self.kd_objective.compile_teachers()
        adapters = [p for p in self.kd_objective.parameters() if p.requires_grad]
        if adapters:
            broadcast_parameters(adapters)  # DDP syncs the wrapped student only; adapters start equal on every rank
            self.optimizer.add_param_group({"params": adapters})
        for teacher in teachers:
            self.print_to_log_file(f"distillation teacher {teacher.label}: {teacher.model_folder} folds "
                                   f"{list(teacher.folds)}, box input: {teacher.needs_boxes}, normalisation "
                                   f"converted: {teacher.normalization.needed}")
        if self.kd_pseudo_labelled_cases:
            self.print_to_log_file(f"{len(self.kd_pseudo_labelled_cases)} pseudo-labelled cases (export provenance) "
                                   "get the fallback teacher weights")

    def deep_supervision_weights(self) -> list[float]:
        """nnU-Net's own weights of the student's deep-supervision outputs (its loss wrapper's ``weight_factors``),
        highest resolution first; ``[1.0]`` without deep supervision. The KL term uses the same weights."""
        weights = getattr(self.loss, "weight_factors", None)
        return [1.0] if weights is None else [float(w) for w in weights]

    def on_train_start(self):
        super().on_train_start()
        if self.local_rank == 0:
            atomic_write_json(f"{self.output_folder}/kd_spec.json",
                              {"spec_file": self.kd_spec.source, **self.kd_spec.to_json(),
                               "effective": {k: list(v) if isinstance(v, tuple) else v
                                             for k, v in vars(self.kd_config).items()}})

    # ------------------------------------------------------------------------------------------ data
    @property
    def teacher_box_axis(self) -> int | None:
        """Axial axis of the box channel that box-guided teachers need; None if no teacher needs one."""
        teachers = self.kd_objective.teachers if self.kd_objective is not None else []
        return next((t.box_axial_axis for t in teachers if t.needs_boxes), None)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        """nnU-Net's pipeline; with a box-guided teacher, the axial boxes of the augmented label are appended to the
        image by the data-augmentation workers (off the training step), and ``train_step`` splits them off."""
        compose = super().get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                                  do_dummy_2d_data_aug, use_mask_for_norm, is_cascaded,
                                                  foreground_labels, regions, ignore_label)
        if self.teacher_box_axis is not None:
            compose.transforms.append(AppendTeacherBoxChannelTransform(self.teacher_box_axis,
                                                                       self.label_manager.ignore_label))
        return compose

    # ------------------------------------------------------------------------------------------ training step
    def trusted_samples(self, keys) -> torch.Tensor:
        """``(B,)`` bool: False for the batch's pseudo-labelled cases (their label is a teacher's output)."""
        return torch.tensor([key not in self.kd_pseudo_labelled_cases for key in keys], dtype=torch.bool,
                            device=self.device)

    def compute_loss(self, data: torch.Tensor, target, boxes: torch.Tensor | None = None,
                     trusted: torch.Tensor | None = None) -> dict:
        """The teachers first (their activations are freed before the student keeps its own for the backward pass),
        then the student's forward, nnU-Net's segmentation loss and the distillation terms (DistillationObjective)."""
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        teacher_targets = self.kd_objective.teach(data, targets, boxes, trusted)
        output = self.network(data)
        seg = self.loss(output, target)
        outputs = list(output) if isinstance(output, (list, tuple)) else [output]
        return self.kd_objective(outputs, targets, seg, teacher_targets)

    def train_step(self, batch: dict) -> dict:
        # nnU-Net 2.8.1 train_step; the loss comes from compute_loss, adapters are clipped and stepped too
        data = batch["data"].to(self.device, non_blocking=True)
        boxes = None
        if self.teacher_box_axis is not None:  # the last channel is the teachers' box mask (get_training_transforms)
            data, boxes = data[:, :-1], data[:, -1:]
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        trusted = self.trusted_samples(batch["keys"]) if self.kd_pseudo_labelled_cases else None
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            losses = self.compute_loss(data, target, boxes, trusted)
        loss = losses["loss"]
        adapters = list(self.kd_objective.parameters())
        parameters = [*self.network.parameters(), *adapters]
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            average_gradients(adapters)  # DDP averages the student's gradients, not the adapters'
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            average_gradients(adapters)
            torch.nn.utils.clip_grad_norm_(parameters, 12)
            self.optimizer.step()
        mean_weights = losses["weights"].mean(0).cpu().numpy()
        out = {"loss": loss.detach().cpu().numpy(),
               **{f"kd_{k}": losses[k].detach().float().cpu().numpy() for k in ("seg", "mid", "kl")}}
        out.update({key: mean_weights[j] for j, key in enumerate(self.kd_log_keys[len(_COMPONENTS):])})
        return out

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        values = mean_over_ranks({key: float(np.mean([o[key] for o in train_outputs])) for key in self.kd_log_keys},
                                 self.kd_log_keys)
        log_epoch_values(self.logger, values, self.current_epoch)
        self.print_to_log_file(", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    def on_epoch_end(self):
        super().on_epoch_end()
        if self.local_rank == 0:
            plot_kd_progress(self.logger, self.kd_log_keys, self.output_folder)

    # ------------------------------------------------------------------------------------------ checkpoints
    def add_to_checkpoint(self, checkpoint_file: Path) -> None:
        """The adapters beside (never inside) the network weights of nnU-Net's checkpoint, before it is renamed into
        place (:class:`SafeCheckpointMixin`)."""
        state = self.kd_objective.state_dict() if self.kd_objective is not None else {}
        if state:
            checkpoint = load_checkpoint(checkpoint_file, "the student's checkpoint")
            checkpoint["kd_adapters"] = state
            torch.save(checkpoint, checkpoint_file)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's resume (``--c``, ``--val``) after the safety check (:class:`SafeCheckpointMixin`); the adapters
        are restored too."""
        super().load_checkpoint(filename_or_checkpoint)
        checkpoint = self.checked_checkpoint or {}
        if "kd_adapters" in checkpoint and self.kd_objective is not None:
            self.kd_objective.load_state_dict(checkpoint["kd_adapters"])


class nnUNetTrainerKD(nnUNetTrainerDistillationBase):
    """Logit distillation only: Seg + β·KL (1..N teachers, adaptive per-sample weights); a spec with feature_stages
    is refused (train nnUNetTrainerMKD for features)."""

    fixed_hyper_parameters = ("feature_stages",)


class nnUNetTrainerMKD(nnUNetTrainerDistillationBase):
    """Multi-scale distillation: Seg + α·Mid + β·KL with features (by default the first three encoder stages; the
    spec's feature_stages replace them) aligned by MSE after 1x1x1 adapters, and logits, from 1..N teachers with
    adaptive per-sample weights."""

    feature_stages = ("encoder.stages.0", "encoder.stages.1", "encoder.stages.2")


class nnUNetTrainerMKD_LowLevel(nnUNetTrainerMKD):
    """Ablation (IJCNN-2026 paper: low-level features distil best): the first encoder stage only."""

    feature_stages = ("encoder.stages.0",)
    fixed_hyper_parameters = ("feature_stages",)


class nnUNetTrainerMKD_ATRC(nnUNetTrainerMKD):
    """Mid = attention transfer + region contrast (Ben Loussaief et al.), channel-free: no adapters."""

    feature_loss = "at_rc"
    fixed_hyper_parameters = ("feature_loss",)


class nnUNetTrainerMKD_Uniform(nnUNetTrainerMKD):
    """Ablation: every teacher weighs the same (no adaptive weighting)."""

    weighting = "uniform"
    fixed_hyper_parameters = ("weighting",)


class nnUNetTrainerMKD_PaperWeights(nnUNetTrainerMKD):
    """Reproduction only: the weight formula as printed in the multi-teacher paper (w_j ∝ DiceLoss_j), which gives
    the worse teacher more weight (see nnunet_kd.distillation.teacher_weights)."""

    weighting = "paper_literal"
    fixed_hyper_parameters = ("weighting",)


class nnUNetTrainerMKD_DiceLovasz(nnUNetTrainerMKD):
    """The multi-teacher paper's segmentation loss, Seg = 0.2·Dice + 0.3·Lovász (its eq. 5), in place of nnU-Net's
    Dice + CE, on every deep-supervision output with nnU-Net's own weights. Voxels with the dataset's ignore label
    count in neither term, as in nnU-Net's Dice + CE."""

    def _build_loss(self):
        nnunet_loss = super()._build_loss()  # only for nnU-Net's deep-supervision weights
        weights = getattr(nnunet_loss, "weight_factors", None)
        loss = DiceLovaszLoss(dice_weight=0.2, lovasz_weight=0.3, batch_dice=self.configuration_manager.batch_dice,
                              ignore_label=self.label_manager.ignore_label)
        return loss if weights is None else DeepSupervisionWrapper(loss, weights)


class nnUNetTrainerKDQuick(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerKD):
    """Logit distillation on the CPU quick schedule (4 iterations per training case and epoch)."""

    quick_iterations_per_case = 4


class nnUNetTrainerMKDQuick(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerMKD):
    """Multi-scale distillation on the CPU quick schedule (4 iterations per training case and epoch)."""

    quick_iterations_per_case = 4


class nnUNetTrainerKDStudy(NoMirroringMixin, StudyScheduleMixin, nnUNetTrainerKD):
    """Logit distillation on the phantom study's schedule (``benchmarks/studies/study.py``)."""


class nnUNetTrainerMKDStudy(NoMirroringMixin, StudyScheduleMixin, nnUNetTrainerMKD):
    """Multi-scale distillation on the phantom study's schedule (``benchmarks/studies/study.py``)."""


class nnUNetTrainerKDStudy_100epochs(nnUNetTrainerKDStudy):
    """The study's logit distillation for 100 epochs (4000 iterations; ``study.py --epochs 100``)."""

    quick_num_epochs = 100


class nnUNetTrainerMKDStudy_100epochs(nnUNetTrainerMKDStudy):
    """The study's multi-scale distillation for 100 epochs (4000 iterations; ``study.py --epochs 100``)."""

    quick_num_epochs = 100
