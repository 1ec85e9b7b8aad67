"""nnUNetTrainer subclasses shipped by nnunet-kd (installed as ``nnunet_kd.trainers``).

nnU-Net finds them through ``nnUNet_extTrainer=$(nnunet_kd trainer-dir)``, which re-exports every name in
``__all__``. Class names are public API (they name results folders and are stored in checkpoints): never rename
one, and never reuse a name of nnU-Net's built-in trainers (those are searched first and would win).
"""

from nnunet_kd.trainers.box_guided import (
    nnUNetTrainerBoxGuided,
    nnUNetTrainerBoxGuidedMerged,
    nnUNetTrainerBoxGuidedNoBoxAug,
    nnUNetTrainerBoxGuidedQuick,
    nnUNetTrainerBoxGuidedStudy,
    nnUNetTrainerBoxGuidedStudy_100epochs,
)
from nnunet_kd.trainers.dual_output import nnUNetTrainerDualOutput
from nnunet_kd.trainers.knowledge_distillation import (
    nnUNetTrainerKD,
    nnUNetTrainerKDQuick,
    nnUNetTrainerKDStudy,
    nnUNetTrainerKDStudy_100epochs,
    nnUNetTrainerMKD,
    nnUNetTrainerMKD_ATRC,
    nnUNetTrainerMKD_DiceLovasz,
    nnUNetTrainerMKD_LowLevel,
    nnUNetTrainerMKD_PaperWeights,
    nnUNetTrainerMKD_Uniform,
    nnUNetTrainerMKDQuick,
    nnUNetTrainerMKDStudy,
    nnUNetTrainerMKDStudy_100epochs,
)
from nnunet_kd.trainers.quick import (
    nnUNetTrainerQuick,
    nnUNetTrainerQuickNoMirroring,
    nnUNetTrainerQuickNoMirroring_TeacherIterations,
    nnUNetTrainerStudyNoMirroring,
    nnUNetTrainerStudyNoMirroring_100epochs,
)
from nnunet_kd.trainers.size_balanced import (
    nnUNetTrainerKDSizeBalanced,
    nnUNetTrainerMKDSizeBalanced,
    nnUNetTrainerSizeBalanced,
)

__all__ = [
    "nnUNetTrainerBoxGuided",
    "nnUNetTrainerBoxGuidedMerged",
    "nnUNetTrainerBoxGuidedNoBoxAug",
    "nnUNetTrainerBoxGuidedQuick",
    "nnUNetTrainerBoxGuidedStudy",
    "nnUNetTrainerBoxGuidedStudy_100epochs",
    "nnUNetTrainerDualOutput",
    "nnUNetTrainerKD",
    "nnUNetTrainerKDQuick",
    "nnUNetTrainerKDStudy",
    "nnUNetTrainerKDStudy_100epochs",
    "nnUNetTrainerKDSizeBalanced",
    "nnUNetTrainerMKD",
    "nnUNetTrainerMKD_ATRC",
    "nnUNetTrainerMKD_DiceLovasz",
    "nnUNetTrainerMKD_LowLevel",
    "nnUNetTrainerMKD_PaperWeights",
    "nnUNetTrainerMKD_Uniform",
    "nnUNetTrainerMKDQuick",
    "nnUNetTrainerMKDStudy",
    "nnUNetTrainerMKDStudy_100epochs",
    "nnUNetTrainerMKDSizeBalanced",
    "nnUNetTrainerQuick",
    "nnUNetTrainerQuickNoMirroring",
    "nnUNetTrainerQuickNoMirroring_TeacherIterations",
    "nnUNetTrainerSizeBalanced",
    "nnUNetTrainerStudyNoMirroring",
    "nnUNetTrainerStudyNoMirroring_100epochs",
]
