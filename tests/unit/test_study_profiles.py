"""The phantom study's profiles (``benchmarks/studies/study.py``): the same design on the CPU and, with ``--gpu``,
with the full profile's phantoms and networks."""

from __future__ import annotations

from _benchmark_scripts import load_benchmark_script

from nnunet_kd.pipeline.profiles import FULL, QUICK, STUDY


def load_study_script():
    return load_benchmark_script("studies/study.py")


def test_study_profile_holds_validation_cases_out_on_fold_0_with_the_study_trainers():
    assert (STUDY.num_strong, STUDY.num_weak, STUDY.num_validation, STUDY.num_test) == (8, 24, 5, 20)
    assert STUDY.teacher_fold == STUDY.student_fold == "0"
    assert {STUDY.box_trainer, STUDY.plain_trainer, STUDY.kd_trainer} == {
        "nnUNetTrainerBoxGuidedStudy", "nnUNetTrainerStudyNoMirroring", "nnUNetTrainerMKDStudy"}
    assert STUDY.phantom == QUICK.phantom and STUDY.student_configuration == QUICK.student_configuration


def test_gpu_study_changes_only_device_phantoms_and_networks():
    study = load_study_script()
    cpu, kd = study.study_profile(gpu=False)
    gpu, kd_gpu = study.study_profile(gpu=True)
    assert kd == kd_gpu == "nnUNetTrainerKDStudy" and cpu.ignore_label_student and gpu.ignore_label_student
    assert (gpu.device, gpu.phantom, gpu.student_configuration) == ("cuda", FULL.phantom, "3d_fullres")
    same = ("num_strong", "num_weak", "num_validation", "num_test", "box_trainer", "plain_trainer", "kd_trainer",
            "teacher_fold", "student_fold", "compact_kind", "compact_width")
    assert all(getattr(cpu, name) == getattr(gpu, name) for name in same)


def test_a_longer_study_names_the_100_epoch_trainers_which_nnunet_finds():
    from nnunet_kd.trainers import __all__ as shipped

    study = load_study_script()
    profile, kd = study.study_profile(gpu=False, epochs=100)
    names = (profile.box_trainer, profile.plain_trainer, profile.kd_trainer, kd)
    assert names == ("nnUNetTrainerBoxGuidedStudy_100epochs", "nnUNetTrainerStudyNoMirroring_100epochs",
                     "nnUNetTrainerMKDStudy_100epochs", "nnUNetTrainerKDStudy_100epochs")
    assert set(names) <= set(shipped)
    import nnunet_kd.trainers as trainers

    assert {getattr(trainers, name).quick_num_epochs for name in names} == {100}
    assert study.study_profile(gpu=False) == study.study_profile(gpu=False, epochs=50)
