"""Test-only trainers (never shipped): a few iterations, no mirroring.

Found by nnU-Net through ``nnUNet_extTrainer=<trainer-dir>:<repo>/tests/ext_trainers``. Absolute imports only,
no side effects (nnU-Net imports every module of an ext folder during any external lookup).
"""

import torch

from nnunet_kd.trainers.box_guided import nnUNetTrainerBoxGuided
from nnunet_kd.trainers.distillation import nnUNetTrainerMKD
from nnunet_kd.trainers.quick import NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerQuickNoMirroring


class nnUNetTrainerQuickNoMirroring_test(nnUNetTrainerQuickNoMirroring):
    """One epoch of two iterations and one validation iteration."""

    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1


class nnUNetTrainerBoxGuided_test(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerBoxGuided):
    """Long enough (200 iterations) for the teacher to follow its boxes (measured: test Dice 0.78, no voxel without
    boxes, on 2026-11-23)."""

    quick_num_epochs = 20
    quick_iterations_per_epoch = 10
    quick_val_iterations_per_epoch = 1


class nnUNetTrainerMKD_test(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerMKD):
    """Two epochs of two iterations, checkpoint every epoch."""

    quick_num_epochs = 2
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.save_every = 1


class nnUNetTrainerBoxGuided_smoke(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerBoxGuided):
    """One epoch of two iterations (pipeline smoke test)."""

    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1


class nnUNetTrainerMKD_smoke(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerMKD):
    """One epoch of two iterations (pipeline smoke test)."""

    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1
