"""``nnunet_kd pipeline``: the whole teacher-student chain on synthetic phantoms, resumable stage by stage."""

from __future__ import annotations

import argparse

NAME = "pipeline"
HELP = "run the teacher-student chain end to end (phantoms -> teacher -> pseudo-labels -> students -> report)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--quick", dest="profile", action="store_const", const="quick",
                         help="small phantoms and short schedules for a 2-core CPU (default)")
    profile.add_argument("--full", dest="profile", action="store_const", const="full",
                         help="realistic phantom sizes and nnU-Net's standard schedules (a GPU)")
    parser.set_defaults(profile="quick")
    parser.add_argument("-w", "--work-dir", default="nnunet_kd_work",
                        help="folder for datasets, models, logs and the report (default ./nnunet_kd_work)")
    parser.add_argument("--use-environment-folders", action="store_true",
                        help="use the nnUNet_raw/preprocessed/results of the environment instead of the work dir's")
    parser.add_argument("--stages", nargs="+", default=None, help="run only these stages (see --list-stages)")
    parser.add_argument("--list-stages", action="store_true", help="print the stages and whether they are done")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed")
    parser.add_argument("--device", default=None, help="override the profile's device (cpu, cuda)")
    parser.add_argument("--box-trainer", default=None, help="override the profile's box-guided teacher trainer")
    parser.add_argument("--plain-trainer", default=None, help="override the profile's baseline/SO student trainer")
    parser.add_argument("--kd-trainer", default=None, help="override the profile's distillation trainer")
    parser.add_argument("--num-strong", type=int, default=None, help="strong training phantoms (>= 5 for 5 folds)")
    parser.add_argument("--num-weak", type=int, default=None, help="weak (box-only) training phantoms")
    parser.add_argument("--num-test", type=int, default=None, help="held-out test phantoms")
    parser.add_argument("--ignore-label-student", action="store_true",
                        help="also train the teacher-free baseline on strong cases + weak cases with nnU-Net's ignore "
                             "label inside their boxes (one more training and prediction)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo every line of the nnU-Net commands")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time
    from pathlib import Path

    from nnunet_kd.errors import ConfigurationError
    from nnunet_kd.paths import require_nnunet_environment
    from nnunet_kd.pipeline.profiles import PROFILES
    from nnunet_kd.pipeline.runner import CommandRunner, pipeline_environment
    from nnunet_kd.pipeline.stages import TeacherStudentPipeline
    from nnunet_kd.pipeline.work_folder import claim_work_folder

    overrides = {"device": args.device, "box_trainer": args.box_trainer, "plain_trainer": args.plain_trainer,
                 "kd_trainer": args.kd_trainer, "num_strong": args.num_strong, "num_weak": args.num_weak,
                 "num_test": args.num_test, "ignore_label_student": args.ignore_label_student or None}
    profile = dataclasses.replace(PROFILES[args.profile], **{k: v for k, v in overrides.items() if v is not None})
    if profile.num_strong < 5 or profile.num_test < 1 or profile.num_weak < 1:
        raise ConfigurationError("need at least 5 strong cases (nnU-Net's 5 folds), 1 weak and 1 test case")
    work_dir = Path(args.work_dir).resolve()
    if args.use_environment_folders:
        require_nnunet_environment()
    claim_work_folder(work_dir, {"profile": dataclasses.asdict(profile), "seed": args.seed,
                                 "use_environment_folders": args.use_environment_folders})
    env = pipeline_environment(work_dir, args.use_environment_folders)
    pipeline = TeacherStudentPipeline(profile, work_dir, env, CommandRunner(env, work_dir / "logs", args.verbose),
                                      args.seed)
    stages = pipeline.stages()
    if args.list_stages:
        for stage in stages:
            print(f"{'done' if stage.done() else 'todo':4}  {stage.name:28} {stage.description}")
        return 0
    selected = args.stages or [s.name for s in stages]
    unknown = set(selected) - {s.name for s in stages}
    if unknown:
        raise ConfigurationError(f"unknown stage(s) {sorted(unknown)}; stages: {', '.join(s.name for s in stages)}")
    print(f"nnunet_kd pipeline ({profile.name} profile) in {work_dir}", flush=True)
    start = time.time()
    for number, stage in enumerate(stages, start=1):
        if stage.name not in selected:
            continue
        if stage.done():
            print(f"[{number}/{len(stages)}] {stage.name}: already done, skipped", flush=True)
            continue
        print(f"[{number}/{len(stages)}] {stage.name}: {stage.description}", flush=True)
        stage.run()
    report = pipeline.report_folder / "report.md"
    print(f"\npipeline finished in {time.time() - start:.0f} s")
    if report.is_file():
        print(report.read_text())
        print(f"report: {report}")
    print("models:")
    for model in pipeline.models:
        print(f"  {model.name}: {pipeline.model_folder(model)}")
    return 0
