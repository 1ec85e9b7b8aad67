"""Test-only trainers (never shipped): a few iterations, no mirroring.

Found by nnU-Net through ``nnUNet_extTrainer=<trainer-dir>:<repo>/tests/ext_trainers``. Absolute imports only,
no side effects (nnU-Net imports every module of an ext folder during any external lookup).
"""

import random

import numpy as np
import torch

from nnunet_kd.boxes.channel import box_channel_of_labels
from nnunet_kd.trainers.box_guided import nnUNetTrainerBoxGuided
from nnunet_kd.trainers.knowledge_distillation import nnUNetTrainerMKD, nnUNetTrainerMKD_DiceLovasz
from nnunet_kd.trainers.quick import NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerQuickNoMirroring
from nnunet_kd.trainers.size_balanced import nnUNetTrainerMKDSizeBalanced
from nnunet_kd.trainers.validation_curve import ValidationCasesCurveMixin


class nnUNetTrainerQuickNoMirroring_test(nnUNetTrainerQuickNoMirroring):
    """One epoch of two iterations and one validation iteration."""

    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_iterations_per_case = None
    quick_val_iterations_per_epoch = 1


class SeededMixin:
    """Seeds Python, NumPy and torch when the trainer is built. With ``nnUNet_n_proc_DA=0`` (augmentation in the
    main process) a training run is then repeatable on one machine; nnU-Net itself seeds nothing."""

    seed = 1234

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        super().__init__(plans, configuration, fold, dataset_json, device)


class nnUNetTrainerBoxGuided_test(SeededMixin, NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerBoxGuided):
    """250 iterations with the quick schedule's AdamW: enough for the teacher to follow its boxes (seeded runs reach
    pseudo Dice > 0.8 by epoch 6; with nnU-Net's SGD they often stayed at 0, see trainers/quick.py)."""

    quick_num_epochs = 25
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

    def initialize(self):
        super().initialize()
        # the KL term must weigh the student's deep-supervision outputs exactly as nnU-Net's own loss does
        nnunet_weights = [float(w) for w in self.loss.weight_factors]
        assert len(nnunet_weights) > 1, "deep supervision is off"
        assert self.kd_objective.ds_weights == nnunet_weights == self.kd_objective.kl.weights, "weights differ"
        self.print_to_log_file(f"distillation deep-supervision weights checked: {nnunet_weights}")

    def compute_loss(self, data, target, boxes=None, trusted=None):
        # the box channel that the data-augmentation workers appended for the box-guided teacher must be exactly the
        # axial boxes of this batch's augmented full-resolution label, and the student must see the image only
        if self.teacher_box_axis is not None:
            expected = box_channel_of_labels(target[0] if isinstance(target, list) else target, self.teacher_box_axis,
                                             self.label_manager.ignore_label)
            assert boxes is not None and torch.equal(boxes, expected.to(boxes.dtype)), "box channel differs"
            assert data.shape[1] == self.num_input_channels, f"student sees {data.shape[1]} channels"
            self.box_batches_checked = getattr(self, "box_batches_checked", 0) + int(expected.any())
        return super().compute_loss(data, target, boxes, trusted)

    def on_train_end(self):
        self.print_to_log_file(f"box channel checked on {getattr(self, 'box_batches_checked', 0)} batches with boxes")
        super().on_train_end()


class nnUNetTrainerMKDSizeBalanced_test(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerMKDSizeBalanced):
    """Size-balanced multi-scale distillation: one epoch of two iterations. One bin edge at 25 ml splits the test
    phantoms (about 15-80 ml) into two bins of unequal size, so that some cases must be repeated."""

    tumour_volume_bin_edges_ml = (25.0,)
    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1


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


class nnUNetTrainerMKD_DiceLovasz_test(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerMKD_DiceLovasz):
    """The Dice + Lovász variant: one epoch of two iterations."""

    quick_num_epochs = 1
    quick_iterations_per_epoch = 2
    quick_val_iterations_per_epoch = 1


class nnUNetTrainerQuickNoMirroring_curve_test(ValidationCasesCurveMixin, nnUNetTrainerQuickNoMirroring_test):
    """The plain test trainer measuring the validation-case curve after its one epoch (study smoke test)."""


class nnUNetTrainerBoxGuided_curve_smoke(ValidationCasesCurveMixin, nnUNetTrainerBoxGuided_smoke):
    """The box-guided smoke trainer measuring the validation-case curve (its box channel) after its one epoch."""
