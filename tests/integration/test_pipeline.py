"""The pipeline command end to end on the smallest setting (few iterations per stage), then a resumed rerun."""

from __future__ import annotations

import json


def test_pipeline_runs_every_stage_and_resumes(nnunet_env, tmp_path):
    work = tmp_path / "work"
    command = ["nnunet_kd", "pipeline", "--quick", "-w", str(work), "--num-strong", "5", "--num-weak", "2",
               "--num-test", "2", "--box-trainer", "nnUNetTrainerBoxGuided_smoke",
               "--plain-trainer", "nnUNetTrainerQuickNoMirroring_test", "--kd-trainer", "nnUNetTrainerMKD_smoke"]
    first = nnunet_env.run(*command, timeout=1500)
    assert "report:" in first.stdout and "Dice" in first.stdout  # the results table is printed at the end
    summary = json.loads((work / "report" / "summary.json").read_text())
    assert len(summary["models"]) == 5  # teacher, baseline, SO, MKD, compact MKD
    for model in ("box-guided_teacher", "baseline", "SO_student", "MKD_student", "compact_MKD_student"):
        assert len(list((work / "predictions" / model).glob("*.nii.gz"))) == 2
    student_dataset = work / "nnUNet_raw" / "Dataset501_LungPhantomStudent"
    assert len(list((student_dataset / "labelsTr").glob("*.nii.gz"))) == 5 + 2  # strong + pseudo-labelled weak
    second = nnunet_env.run(*command, timeout=600)
    assert second.stdout.count("already done, skipped") == 11  # nothing is recomputed
    assert "nnUNetv2_train" not in second.stdout
