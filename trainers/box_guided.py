"""Box-guided teacher: CT + axial box masks in, tumour segmentation out (Fredriksen et al. 2022).

Route: nnU-Net's cascade input path. The plans configuration (added by ``nnunet_kd add-box-config``) inherits the
CT configuration and declares ``"previous_stage": "boxes"``; nnU-Net then appends the box mask to the network input
after all intensity augmentation, resamples it as a label map (it stays binary), and at inference reads it from
``nnUNetv2_predict -prev_stage_predictions <box folder>`` with no plugin code on that path. During training the box
channel is re-derived from the spatially augmented label, per axial slice and per lesion, and perturbed like real
annotations (:mod:`nnunet_kd.boxes.augmentation`); validation uses exact boxes.

Variants change class attributes only, so the class name (and with it nnU-Net's results folder) names the experiment.
"""

import torch
from batchgeneratorsv2.transforms.nnunet.seg_to_onehot import MoveSegAsOneHotToDataTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_kd.boxes.augmentation import BoxAugmentation
from nnunet_kd.boxes.axial_boxes import axial_axis_after_transpose
from nnunet_kd.boxes.cascade_configuration import check_box_guided_configuration
from nnunet_kd.boxes.channel import (
    AxialBoxChannelTransform,
    box_folder,
    write_preprocessed_box_files,
)
from nnunet_kd.errors import exit_on_user_error
from nnunet_kd.trainers.quick import NoMirroringMixin, QuickScheduleMixin, StudyScheduleMixin
from nnunet_kd.trainers.safe_checkpoints import SafeCheckpointMixin

#: nnU-Net's own cascade perturbations of the previous-stage channel; box augmentation replaces them.
_REPLACED_CASCADE_AUGMENTATIONS = ("ApplyRandomBinaryOperatorTransform",
                                   "RemoveRandomConnectedComponentFromOneHotEncodingTransform")


class nnUNetTrainerBoxGuided(SafeCheckpointMixin, nnUNetTrainer):
    """Box-guided teacher with annotation-like box augmentation (see :class:`BoxAugmentation` for the defaults)."""

    box_augmentation: BoxAugmentation | None = BoxAugmentation()
    merge_boxes_per_slice: bool = False
    #: every training patch contains tumour (nnU-Net: 0.33), as the paper's teacher saw crops around the tumour
    foreground_patch_fraction: float = 1.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        with exit_on_user_error(type(self).__name__):
            check_box_guided_configuration(self.configuration_manager, self.label_manager, configuration)
        self.oversample_foreground_percent = self.foreground_patch_fraction
        self.box_axial_axis = axial_axis_after_transpose(self.plans_manager.transpose_forward)
        self.folder_with_segs_from_previous_stage = str(
            box_folder(self.preprocessed_dataset_folder_base, self.configuration_manager.data_identifier)
        )

    def initialize(self):
        if self.local_rank == 0:
            written = write_preprocessed_box_files(self.preprocessed_dataset_folder,
                                                   self.folder_with_segs_from_previous_stage, self.box_axial_axis,
                                                   self.merge_boxes_per_slice, self.label_manager.ignore_label)
            if written:
                self.print_to_log_file(f"wrote exact box masks of {written} cases to "
                                       f"{self.folder_with_segs_from_previous_stage}")
        super().initialize()

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        """nnU-Net's pipeline with the box channel re-derived from the augmented label.

        An instance method (nnU-Net calls it through ``self``) because the box transform needs this configuration's
        spacing and axial axis.
        """
        compose = super().get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                                  do_dummy_2d_data_aug, use_mask_for_norm, is_cascaded,
                                                  foreground_labels, regions, ignore_label)
        transforms = [t for t in compose.transforms
                      if not (isinstance(t, RandomTransform)
                              and type(t.transform).__name__ in _REPLACED_CASCADE_AUGMENTATIONS)]
        move = next(i for i, t in enumerate(transforms) if isinstance(t, MoveSegAsOneHotToDataTransform))
        transforms.insert(move, AxialBoxChannelTransform(
            axial_axis=self.box_axial_axis,
            spacing=tuple(self.configuration_manager.spacing),
            augmentation=self.box_augmentation,
            merge_per_slice=self.merge_boxes_per_slice,
            ignore_label=self.label_manager.ignore_label,
        ))
        compose.transforms = transforms
        return compose


class nnUNetTrainerBoxGuidedNoBoxAug(nnUNetTrainerBoxGuided):
    """Exact boxes of the augmented label: no margin, shift, jitter or dropped boxes (ablation)."""

    box_augmentation = None


class nnUNetTrainerBoxGuidedMerged(nnUNetTrainerBoxGuided):
    """One box per slice around all lesions on it, as in the paper's code (no lesion dropping: lesions are merged)."""

    merge_boxes_per_slice = True
    box_augmentation = BoxAugmentation(lesion_drop_probability=0.0)


class nnUNetTrainerBoxGuidedQuick(NoMirroringMixin, QuickScheduleMixin, nnUNetTrainerBoxGuided):
    """The box-guided teacher on the CPU quick schedule (``nnunet_kd pipeline --quick``): 12 epochs of 40
    iterations. With half as many it already fills the boxes but not the tumour shapes (on the quick pipeline's test
    phantoms: Dice 62 %, object F1 26 % after 240 iterations; Dice 88 %, object F1 100 % after 480)."""

    quick_num_epochs = 12


class nnUNetTrainerBoxGuidedStudy(NoMirroringMixin, StudyScheduleMixin, nnUNetTrainerBoxGuided):
    """The box-guided teacher on the phantom study's schedule (``benchmarks/studies/study.py``)."""


class nnUNetTrainerBoxGuidedStudy_100epochs(nnUNetTrainerBoxGuidedStudy):
    """The study's box-guided teacher for 100 epochs (4000 iterations; ``study.py --epochs 100``)."""

    quick_num_epochs = 100
