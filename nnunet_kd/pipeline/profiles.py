"""Pipeline profiles: how much data, which configurations and trainers (their class names fix the schedules)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from nnunet_kd.synthetic.chest_phantom import PhantomConfig


@dataclass(frozen=True)
class Profile:
    """Everything that differs between the CPU quick run and a full GPU run.

    Attributes:
        phantom: phantom geometry and tumour sizes.
        num_strong, num_weak, num_test: strong training cases (voxel labels), weak training cases (boxes only), and
            held-out strong test cases.
        num_validation: strong validation phantoms, added to the strong dataset's training cases (and so to every
            dataset made from it) but held out of training by a one-fold ``splits_final.json`` (fold 0: train = the
            training cases, val = these): nnU-Net's per-epoch validation Dice then is a learning curve on cases no
            model trains on. Needs ``teacher_fold`` and ``student_fold`` ``0``.
        student_configuration: configuration of the students (added to the plans for the quick profile).
        student_patch: patch of the quick students (``None``: the planned one).
        teacher_patch: patch of the box-guided teacher (tumour-centred crops); ``None``: the student's.
        box_trainer, plain_trainer, kd_trainer: nnU-Net trainer class names (schedules are class attributes).
        teacher_fold: the teacher trains on all strong cases (``all``), as in the paper.
        student_fold: fold of the baseline and the students: ``all`` in the quick profile (every case trains, no
            slow final validation; the held-out test set is the evaluation), ``0`` in the full profile (nnU-Net's
            validation of fold 0 is kept).
        device: ``cpu`` or ``cuda``.
        compact_kind, compact_width, compact_aspp_rates: the compact student (``add-student --kind``: a narrow
            ``plain`` U-Net, or the ``depthwise``-separable residual U-Net with ASPP at these rates).
        augmentation_processes: ``nnUNet_n_proc_DA`` of the training commands (``None``: nnU-Net's choice). On a
            2-core CPU with the quick profile's small networks, augmenting in the training process (0) is fastest:
            worker processes only compete with the network for the same two cores (``benchmarks/README.md``).
        predict_in_process: ``nnUNetv2_predict -npp 0 -nps 0`` (no preprocessing and export worker processes; on
            small volumes their start-up costs more than they save).
        ignore_label_student: also train the teacher-free baseline: the student configuration on the strong cases
            plus the weak cases labelled with nnU-Net's ignore label inside their boxes (``boxes-to-labels
            --ignore-inside``), trained with the plain trainer (off by default: one more training and prediction).
    """

    name: str
    phantom: PhantomConfig
    num_strong: int
    num_weak: int
    num_test: int
    student_configuration: str
    student_patch: tuple[int, int, int] | None
    teacher_patch: tuple[int, int, int] | None
    box_trainer: str
    plain_trainer: str
    kd_trainer: str
    device: str
    teacher_fold: str = "all"
    student_fold: str = "0"
    compact_kind: str = "depthwise"
    compact_width: float = 1.0
    compact_aspp_rates: tuple[int, ...] = (1, 2)
    augmentation_processes: int | None = None
    predict_in_process: bool = False
    ignore_label_student: bool = False
    num_validation: int = 0
    small_features: tuple[int, ...] = field(default=(8, 16, 32, 64))


QUICK = Profile(
    name="quick",
    phantom=PhantomConfig(shape_zyx=(40, 64, 64), spacing_xyz=(5.0, 5.0, 6.0), min_diameter_mm=25.0,
                          max_diameter_mm=50.0),
    num_strong=8,
    num_weak=8,
    num_test=6,
    student_configuration="3d_quick",
    student_patch=(24, 32, 32),
    teacher_patch=(24, 32, 32),
    box_trainer="nnUNetTrainerBoxGuidedQuick",
    plain_trainer="nnUNetTrainerQuickNoMirroring",
    kd_trainer="nnUNetTrainerMKDQuick",
    device="cpu",
    student_fold="all",
    compact_kind="plain",
    compact_width=0.5,
    augmentation_processes=0,
    predict_in_process=True,
)

STUDY = dataclasses.replace(
    QUICK,
    name="study",
    num_weak=24,
    num_test=20,
    num_validation=5,
    box_trainer="nnUNetTrainerBoxGuidedStudy",
    plain_trainer="nnUNetTrainerStudyNoMirroring",
    kd_trainer="nnUNetTrainerMKDStudy",
    teacher_fold="0",
    student_fold="0",
)
"""The CPU phantom study (``benchmarks/studies/study.py``): the quick profile's networks, 8 strong : 24 weak training
cases, 5 validation and 20 test phantoms, every model trained for 2000 iterations on fold 0 (validation cases held
out)."""

FULL = Profile(
    name="full",
    phantom=PhantomConfig(),
    num_strong=20,
    num_weak=60,
    num_test=20,
    student_configuration="3d_fullres",
    student_patch=None,
    teacher_patch=None,
    box_trainer="nnUNetTrainerBoxGuided",
    plain_trainer="nnUNetTrainer",
    kd_trainer="nnUNetTrainerMKD",
    device="cuda",
    compact_aspp_rates=(1, 2, 3),
)

PROFILES = {p.name: p for p in (QUICK, STUDY, FULL)}
