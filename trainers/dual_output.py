"""nnUNetTrainerDualOutput: trains the dual-output ("DO") student, segmentation + axial box mask.

Use with a student configuration (``nnunet_kd add-student -d 501 [--dual-output]``): the trainer builds the
dual-output variant of the student the plans name (so inference with ``-tr nnUNetTrainerDualOutput`` rebuilds the
same network and loads its box decoder too; the predictor then gets segmentation logits only). The loss is nnU-Net's
segmentation loss + ``box_loss_weight`` × Dice/CE of the box decoder's output against the axial box mask of the
patch's label (:mod:`nnunet_kd.losses.box_mask`).
"""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_kd.boxes.axial_boxes import axial_axis_after_transpose
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.network_wrappers import unwrap_network
from nnunet_kd.students.configuration import DUAL_OUTPUT_STUDENT_CLASS, STUDENT_CLASSES
from nnunet_kd.trainers.safe_checkpoints import SafeCheckpointMixin


class nnUNetTrainerDualOutput(SafeCheckpointMixin, nnUNetTrainer):
    """nnU-Net's trainer with the dual-output student network and the segmentation + box loss."""

    box_loss_weight: float = 1.0

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager,
                                   configuration_manager: ConfigurationManager,
                                   num_input_channels: int,
                                   num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        class_name = configuration_manager.network_arch_class_name
        if class_name not in STUDENT_CLASSES:
            raise ConfigurationError(
                f"nnUNetTrainerDualOutput needs a student configuration (network {STUDENT_CLASSES[0]}), but this "
                f"configuration builds {class_name}; add one with: nnunet_kd add-student -d <dataset> --dual-output"
            )
        return get_network_from_plans(
            DUAL_OUTPUT_STUDENT_CLASS,
            configuration_manager.network_arch_init_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            num_input_channels,
            num_output_channels,
            allow_init=True,
            deep_supervision=enable_deep_supervision)

    def _build_loss(self) -> nn.Module:
        from nnunet_kd.losses.box_mask import DualOutputLoss, NetworkBoxOutputLoss

        axial_axis = axial_axis_after_transpose(self.plans_manager.transpose_forward)
        if len(self.configuration_manager.patch_size) == 2 and axial_axis != 0:
            raise ConfigurationError(
                f"configuration {self.configuration_name!r} is 2D but its slices are not axial "
                f"(transpose_forward {self.plans_manager.transpose_forward}); the box head needs axial slices"
            )
        loss = DualOutputLoss(super()._build_loss(), self.box_loss_weight, axial_axis,
                              ignore_label=self.label_manager.ignore_label)
        return NetworkBoxOutputLoss(loss, self._last_box_logits)

    def _last_box_logits(self) -> torch.Tensor | None:
        return unwrap_network(self.network).last_box_logits
