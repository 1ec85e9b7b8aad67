"""The study's steps for one seed on the smallest setting: every model trained on fold 0 with the validation phantoms
held out, predicted and scored; an interrupted seed resumes without training anything again."""

from __future__ import annotations

import dataclasses
import json

import pytest

from nnunet_kd.pipeline.profiles import STUDY
from nnunet_kd.pipeline.runner import CommandRunner
from nnunet_kd.pipeline.stages import TeacherStudentPipeline
from nnunet_kd.pipeline.study import MODEL_NAMES, SeedStudy, run_seed

SMOKE = dataclasses.replace(STUDY, num_strong=5, num_weak=2, num_test=2, num_validation=1,
                            box_trainer="nnUNetTrainerBoxGuided_curve_smoke",
                            plain_trainer="nnUNetTrainerQuickNoMirroring_curve_test",
                            kd_trainer="nnUNetTrainerMKD_smoke")


def test_study_seed_trains_every_model_on_fold_0_and_resumes(nnunet_env, tmp_path, monkeypatch, capsys):
    work = tmp_path / "seed0"
    folders = {name: str(work / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in folders.values():
        (work / folder).mkdir(parents=True, exist_ok=True)
    env = nnunet_env.env(**folders)
    pipeline = TeacherStudentPipeline(SMOKE, work, env, CommandRunner(env, work / "logs"), seed=0)
    study = SeedStudy(pipeline, kd_trainer="nnUNetTrainerMKD_smoke")

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stopped before its last step, as by Ctrl-C
        patch.setattr(SeedStudy, "_write_result", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_seed(study)
    assert not study.result_file.exists()
    capsys.readouterr()

    result = run_seed(study)
    resumed = capsys.readouterr().out
    assert "nnUNetv2_train" not in resumed and "nnUNetv2_predict" not in resumed  # only the result file was left
    assert "[study] seed result" in resumed

    names = [name for name in MODEL_NAMES if name != "ignore_box_student"]
    assert sorted({row["model"] for row in result["rows"]}) == sorted(names)
    assert len(result["rows"]) == len(names) * 2  # every model on both test phantoms
    row = result["rows"][0]
    assert set(row) == {"model", "seed", "case", "dice", "hd95", "object_f1", "dsc_tp"} and 0 <= row["dice"] <= 1
    assert [c["model"] for c in result["curves"]] == names
    assert all(len(c["val_dice"]) == c["epochs"] >= 1 for c in result["curves"])
    # trainers with the validation-case curve measured it after their one epoch (the teacher with its box channel)
    curves = {c["model"]: c["val_cases_dice"] for c in result["curves"]}
    for model in ("box_guided_teacher", "point_guided_teacher", "so_student", "all_strong"):
        assert len(curves[model]) == 1 and 0.0 <= curves[model][0] <= 1.0, (model, curves[model])
    assert curves["mkd_student"] == []  # its smoke trainer has no curve
    assert result["wall_s"] > 0
    # every dataset's split holds the validation phantom out of training
    for dataset, case in (("Dataset500_LungPhantomStrong", "strong_005"),
                          ("Dataset501_LungPhantomStudent", "strong_strong_005"),  # the export's case name
                          ("Dataset505_LungPhantomBoxLabels", "strong_005"),
                          ("Dataset506_LungPhantomAllStrong", "strong_005"),
                          ("Dataset507_LungPhantomStudentConfidence", "strong_strong_005")):
        split = json.loads((work / "nnUNet_preprocessed" / dataset / "splits_final.json").read_text())
        assert len(split) == 1 and split[0]["val"] == [case] and case not in split[0]["train"]
    student_split = json.loads((work / "nnUNet_preprocessed" / "Dataset501_LungPhantomStudent" /
                                "splits_final.json").read_text())
    assert len(student_split[0]["train"]) == 5 + 2  # strong + pseudo-labelled weak cases
    confident = json.loads((work / "nnUNet_raw" / "Dataset507_LungPhantomStudentConfidence" / "dataset.json")
                           .read_text())
    assert confident["labels"]["ignore"] == 2  # exported with --ignore-uncertain
