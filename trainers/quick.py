"""Short-schedule trainers for the CPU quick profile (``nnunet_kd pipeline --quick``) and smoke tests.

Like nnU-Net's own ``nnUNetTrainer_5epochs``, they change the schedule: the mixin is combined with any trainer, so
``class nnUNetTrainerBoxGuidedQuick(QuickScheduleMixin, nnUNetTrainerBoxGuided)`` is the box-guided teacher on the
quick schedule. The quick schedule also swaps nnU-Net's optimiser (SGD, lr 1e-2, Nesterov momentum 0.99) for AdamW
(lr 3e-3, nnU-Net's weight decay and poly decay, as in nnU-Net's own ``nnUNetTrainerAdam`` variants): in a few
hundred iterations SGD's first epochs collapse to an all-background prediction and recover after a random number of
epochs, or not at all (pseudo Dice 0.00 after 200 iterations in 2 of 3 seeded runs of the box-guided teacher on the
integration phantoms), while AdamW passes 0.4 pseudo Dice in the second epoch and ends above 0.8. With nnU-Net's 1000
epochs SGD recovers. ``benchmarks/README.md`` has the measurements.
"""

from __future__ import annotations

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_kd.trainers.safe_checkpoints import SafeCheckpointMixin
from nnunet_kd.trainers.validation_curve import ValidationCasesCurveMixin


class QuickScheduleMixin:
    """Few epochs (10 of 40 iterations) with AdamW, at least half of the patches tumour-centred: a model that learns
    something in minutes on 2 CPU cores. Few long epochs rather than many short ones: nnU-Net's work between epochs
    (checkpoint, progress plot, about 1.3 s on 2 cores) would otherwise take a third of the time.

    ``quick_min_foreground_patch_fraction`` raises nnU-Net's foreground oversampling (0.33) to at least this share
    (a trainer that asks for more, like the box-guided teacher's 1.0, keeps its own). On the integration phantoms
    (plain U-Net, 24x32x32 patches, 200 AdamW iterations) 0.33 keeps the pseudo Dice below 0.1, and tumour-centred
    patches only reach 0.85 but predict 2-10x too many voxels on test cases (tumour-free regions are never seen);
    half and half is the compromise.
    """

    quick_num_epochs: int = 10
    quick_iterations_per_epoch: int = 40
    #: when set, an epoch is this many iterations per training case of the fold instead (every model of the quick
    #: profile then sees each of its training cases equally often, whatever the size of its dataset)
    quick_iterations_per_case: int | None = None
    quick_val_iterations_per_epoch: int = 2
    quick_initial_lr: float = 3e-3
    quick_min_foreground_patch_fraction: float = 0.5

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.quick_num_epochs
        self.num_iterations_per_epoch = self.quick_iterations_per_epoch
        self.num_val_iterations_per_epoch = self.quick_val_iterations_per_epoch
        self.initial_lr = self.quick_initial_lr
        self.oversample_foreground_percent = max(self.oversample_foreground_percent,
                                                 self.quick_min_foreground_patch_fraction)

    def on_train_start(self):
        super().on_train_start()
        if self.quick_iterations_per_case:
            training_cases, _ = self.do_split()
            self.num_iterations_per_epoch = self.quick_iterations_per_case * len(training_cases)
            self.print_to_log_file(f"quick schedule: {self.num_iterations_per_epoch} iterations per epoch "
                                   f"({self.quick_iterations_per_case} per training case, {len(training_cases)} cases)")

    def configure_optimizers(self):
        """AdamW with nnU-Net's weight decay and poly learning-rate decay (see the module docstring for why)."""
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def perform_actual_validation(self, save_probabilities: bool = False):
        if self.fold == "all":  # the "validation" cases are the training cases: skip the slow, meaningless pass
            self.print_to_log_file("quick schedule: no final validation for fold 'all' (it would score training cases)")
            return
        super().perform_actual_validation(save_probabilities)


class StudyScheduleMixin(ValidationCasesCurveMixin, QuickScheduleMixin):
    """The phantom study's schedule (``benchmarks/studies/study.py``): 50 epochs of 40 iterations (2000) for every
    model, whatever its dataset's size; every 2 epochs the validation cases are predicted whole
    (:class:`ValidationCasesCurveMixin`), the learning curve that convergence is judged by; a checkpoint every 5
    epochs. In a 25-epoch version of this schedule every student was still improving at the end (the EMA of its
    validation pseudo Dice rose by 2-6 points over the last 5 epochs), and nnU-Net's per-epoch pseudo Dice on 10
    batches of validation patches varied by 3.6-8.2 points (std over the last 10 epochs) for 10 of the 12 models,
    too noisy to judge by (``benchmarks/README.md``, "Pilot"). At 50 epochs, the whole-case curves of 6 of the 12 models
    of the study's first seed still rose by 1.2-8.2 points from epochs 31-40 to 41-50 (mean of each block), hence
    the ``_100epochs`` variants of the study trainers (``study.py --epochs 100``)."""

    quick_num_epochs = 50
    quick_iterations_per_epoch = 40
    quick_iterations_per_case = None
    quick_val_iterations_per_epoch = 4

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        # nnU-Net writes checkpoint_latest.pth every 50 epochs and never after the last one, so never in 50 epochs;
        # every 5 lets an interrupted study resume its training (nnUNetv2_train --c) instead of starting it again
        self.save_every = 5


class NoMirroringMixin:
    """No mirroring in augmentation nor in test-time augmentation (TTA costs 8x in 3D on CPU)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class nnUNetTrainerQuick(SafeCheckpointMixin, QuickScheduleMixin, nnUNetTrainer):
    """nnU-Net's default trainer on the quick schedule (the point-guided / plain baseline of the quick profile)."""


class nnUNetTrainerQuickNoMirroring(SafeCheckpointMixin, NoMirroringMixin, QuickScheduleMixin, nnUNetTrainer):
    """Quick schedule without mirroring: the baseline and the SO student of the quick profile, 4 iterations per
    training case and epoch (8 strong cases: 320 iterations; 16 strong + pseudo-labelled: 640)."""

    quick_iterations_per_case = 4


class nnUNetTrainerQuickNoMirroring_TeacherIterations(nnUNetTrainerQuickNoMirroring):
    """The quick plain trainer with as many iterations as the quick box-guided teacher (the teacher comparison gives
    every teacher the same number of iterations)."""

    quick_num_epochs = 12
    quick_iterations_per_case = None


class nnUNetTrainerStudyNoMirroring(SafeCheckpointMixin, NoMirroringMixin, StudyScheduleMixin, nnUNetTrainer):
    """nnU-Net's trainer on the phantom study's schedule: the point-guided teacher (strong-only baseline), the
    box-supervised teacher, the SO and compact students and the all-strong upper bound of the study."""


class nnUNetTrainerStudyNoMirroring_100epochs(nnUNetTrainerStudyNoMirroring):
    """The study's plain trainer for 100 epochs (4000 iterations; ``study.py --epochs 100``)."""

    quick_num_epochs = 100
