"""The scarce-label study on phantoms: every model of the papers, several seeds, one row per test case.

For each seed ``k`` (work folder ``WORK_ROOT/seed<k>``) this runs the pipeline's stages with the ``study`` profile
(8 strong : 24 weak training phantoms, 5 validation phantoms held out of every training by a one-fold split, 20
held-out test phantoms; every model 2000 iterations, 4000 with ``--epochs 100``) and the models the pipeline does
not train (:mod:`nnunet_kd.pipeline.study`), predicts the test phantoms with all of them and scores them with
``nnunet_kd evaluate``.
After each seed it writes ``WORK_ROOT/study.json`` (and the ``--results`` copy): ``{"config", "rows", "curves"}``,
one row per model, seed and test case, one learning curve per model and seed. ``study_report.py`` makes the tables,
statistics, claims and figure from that file.

Every step is skipped when its output exists: rerun the same command to continue an interrupted study.

    python benchmarks/studies/study.py -w study_work [--seeds 0 1 2] [--epochs 50|100] [--gpu] \
        [--results benchmarks/results/study.json]

``--gpu`` runs the same study (same counts, splits and trainers) on CUDA with the full profile's phantoms and networks
(``3d_fullres`` as nnU-Net plans it, and its half-width plain student).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.errors import NnunetKdError
from nnunet_kd.evaluation.study_statistics import CONVERGENCE_CRITERION
from nnunet_kd.pipeline.profiles import FULL, STUDY, Profile
from nnunet_kd.pipeline.runner import CommandRunner, pipeline_environment
from nnunet_kd.pipeline.stages import TeacherStudentPipeline
from nnunet_kd.pipeline.study import SeedStudy, run_seed

#: epochs of 40 iterations -> suffix of the study trainers' class names (nnU-Net's ``_100epochs`` convention)
SCHEDULES = {50: "", 100: "_100epochs"}


def study_profile(gpu: bool, epochs: int = 50) -> tuple[Profile, str]:
    """The study's profile and its logit-distillation trainer: the study's data, splits and trainers (schedule and
    validation-case curve) everywhere, every model for ``epochs`` epochs of 40 iterations; on the GPU with the full
    profile's phantoms and networks (``3d_fullres`` as planned, its half-width plain student)."""
    suffix = SCHEDULES[epochs]
    profile = dataclasses.replace(STUDY, ignore_label_student=True, box_trainer=STUDY.box_trainer + suffix,
                                  plain_trainer=STUDY.plain_trainer + suffix, kd_trainer=STUDY.kd_trainer + suffix)
    if gpu:
        profile = dataclasses.replace(profile, name="study-gpu", phantom=FULL.phantom, device="cuda",
                                      student_configuration="3d_fullres", student_patch=None, teacher_patch=None)
    return profile, "nnUNetTrainerKDStudy" + suffix


def source_commit() -> str:
    """The commit of the code that ran (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def study_document(results: dict[int, dict], profile: Profile, command: str, commit: str) -> dict:
    """``{"config", "rows", "curves"}`` of the finished seeds."""
    curves = [c for r in results.values() for c in r["curves"]]
    iterations = {c["model"]: c["iterations"] for c in curves}
    return {
        "config": {
            "profile": profile.name, "device": profile.device, "seeds": sorted(results),
            "num_test_cases": profile.num_test, "num_validation_cases": profile.num_validation,
            "strong_to_weak": f"{profile.num_strong}:{profile.num_weak}", "iterations": iterations,
            "convergence_criterion": CONVERGENCE_CRITERION, "commit": commit, "command": command,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "date": datetime.date.today().isoformat(),
            "wall_s": {str(seed): r["wall_s"] for seed, r in sorted(results.items())},
        },
        "rows": [row for r in results.values() for row in r["rows"]],
        "curves": curves,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--work-root", required=True, type=Path, help="one work folder per seed: seed<k>/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gpu", action="store_true", help="full profile networks and trainers on CUDA")
    parser.add_argument("--epochs", type=int, choices=sorted(SCHEDULES), default=50,
                        help="epochs of 40 iterations for every model (default 50: 2000 iterations)")
    parser.add_argument("--results", type=Path, default=None, help="also write study.json here")
    args = parser.parse_args()
    root, seeds = args.work_root.resolve(), list(dict.fromkeys(args.seeds))
    if root.exists() and not root.is_dir():
        parser.error(f"{root} is not a folder")
    profile, kd_trainer = study_profile(args.gpu, args.epochs)
    command, commit = shlex.join(["python", *sys.argv]), source_commit()
    results = {}
    for seed in seeds:
        work = root / f"seed{seed}"
        env = pipeline_environment(work, use_existing_folders=False)
        pipeline = TeacherStudentPipeline(profile, work, env, CommandRunner(env, work / "logs"), seed)
        print(f"[study] seed {seed} in {work}", flush=True)
        results[seed] = run_seed(SeedStudy(pipeline, kd_trainer))
        document = study_document(results, profile, command, commit)
        for target in filter(None, (root / "study.json", args.results)):
            atomic_write_json(target, document)
        print(f"[study] seed {seed} done in {results[seed]['wall_s']:.0f} s; wrote {root / 'study.json'}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except NnunetKdError as error:
        sys.exit(f"study: error: {error}")
    except KeyboardInterrupt:
        sys.exit("study: interrupted; rerun the same command to resume")
