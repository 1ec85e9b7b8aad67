"""Teachers on scarce labels: box-guided vs point-guided vs box-supervised (Dice etc. on held-out phantoms).

Reuses a pipeline work folder (``nnunet_kd pipeline --quick -w WORK --stages data plan teacher`` makes the strong
dataset 500 with its test set and the box-guided teacher). Adds:

- point-guided teacher = nnU-Net's plain trainer on the same strong cases and configuration, no box input, with as
  many iterations as the box-guided teacher (quick profile: ``nnUNetTrainerQuickNoMirroring_TeacherIterations``);
- box-supervised teacher = the same plain trainer on dataset 505, whose labels are the filled boxes of 500's labels
  (``nnunet_kd boxes-to-labels``), planned with 500's plans;

then predicts the test set with all three (the box-guided one with the test boxes) and writes an evaluation report.

    python benchmarks/studies/bench_teachers.py -w nnunet_kd_work [--num-test 10] [--seed 0]

``--num-test``/``--seed`` change the phantoms of a new work folder (the data stage of an existing folder is kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from nnunet_kd.pipeline.profiles import PROFILES
from nnunet_kd.pipeline.runner import CommandRunner, pipeline_environment
from nnunet_kd.pipeline.stages import STRONG, STRONG_NAME, Model, TeacherStudentPipeline

COARSE, COARSE_NAME = 505, "LungPhantomBoxLabels"
#: plain trainer with the box-guided teacher's schedule, per profile
MATCHED_PLAIN_TRAINER = {"quick": "nnUNetTrainerQuickNoMirroring_TeacherIterations", "full": "nnUNetTrainer"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--work-dir", required=True, type=Path)
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--num-test", type=int, default=None, help="held-out test phantoms (profile default)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed")
    args = parser.parse_args()
    work = args.work_dir.resolve()
    env = pipeline_environment(work, use_existing_folders=False)
    runner = CommandRunner(env, work / "logs")
    profile = PROFILES[args.profile]
    if args.num_test:
        profile = dataclasses.replace(profile, num_test=args.num_test)
    pipeline = TeacherStudentPipeline(profile, work, env, runner, seed=args.seed)
    p = pipeline.profile
    plain = MATCHED_PLAIN_TRAINER[args.profile]
    for stage in pipeline.stages()[:3]:  # data, plan, box-guided teacher
        if not stage.done():
            stage.run()
    strong = pipeline.dataset_folder(STRONG, STRONG_NAME)
    coarse = pipeline.dataset_folder(COARSE, COARSE_NAME)
    timings = {}
    if not (coarse / "dataset.json").is_file():
        runner.run("bench-teachers", ["nnunet_kd", "boxes-to-labels", "-i", STRONG, "-d", COARSE, "--name",
                                      COARSE_NAME, "--from", "labels"])
    if not (pipeline.dataset_folder(COARSE, COARSE_NAME, pipeline.preprocessed) / "nnUNetPlans_3d_fullres").is_dir():
        pipeline.plan_with_strong_plans("bench-teachers", COARSE, COARSE_NAME)
    pipeline.dataset_names[COARSE] = COARSE_NAME
    teachers = [
        Model("box-guided", STRONG, p.box_trainer, pipeline.box_configuration, p.teacher_fold, uses_boxes=True),
        Model("point-guided", STRONG, plain, p.student_configuration, p.teacher_fold),
        Model("box-supervised", COARSE, plain, p.student_configuration, p.teacher_fold),
    ]
    report = work / "bench_teachers"
    evaluate = ["nnunet_kd", "evaluate", "--ref", strong / "labelsTs", "-o", report, "--no-plots"]
    for teacher in teachers:
        if not (pipeline.model_folder(teacher) / "checkpoint_final.pth").is_file():
            start = time.time()
            runner.run(f"bench-{teacher.name}", ["nnUNetv2_train", teacher.dataset, teacher.configuration,
                                                 teacher.fold, "-tr", teacher.trainer, "-device", p.device, "--c"])
            timings[teacher.name] = time.time() - start
        out = report / "predictions" / teacher.name
        if len(list(out.glob("*.nii.gz"))) < p.num_test:
            pipeline.predict_test_set(teacher, out, f"bench-{teacher.name}")
        evaluate += ["--pred", f"{teacher.name}={out}"]
    runner.run("bench-teachers", evaluate)
    print((report / "report.md").read_text())
    print("training wall time (s):", {k: round(v) for k, v in timings.items()})


if __name__ == "__main__":
    main()
