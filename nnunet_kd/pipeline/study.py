"""The scarce-label study: every model of the papers on the same phantoms, per seed, as resumable steps.

One seed's work folder holds one pipeline run (:class:`~nnunet_kd.pipeline.stages.TeacherStudentPipeline`, usually
with the ``study`` profile: validation phantoms held out of every training by a one-fold split) and the models the
pipeline does not train:

- ``kd_student``: logit distillation only (the profile's KD trainer for logits), student configuration;
- ``compact_student``: the compact configuration with the plain trainer (no distillation);
- ``box_supervised_teacher``: the plain trainer on dataset 505, the strong cases with their boxes filled
  (``nnunet_kd boxes-to-labels --from labels``);
- ``all_strong``: the plain trainer on dataset 506, every training case (strong and weak) with its true label;
- ``so_student_confidence`` and ``mkd_student_confidence``: the SO and MKD students on dataset 507, the student
  dataset exported with confidence-aware pseudo-labels (``export-pseudo-labels --ignore-uncertain 0.3 0.7``: the
  ignore label where the teacher's tumour probability is between 0.3 and 0.7 inside the dilated boxes).

Each step is skipped when its output exists, so an interrupted study continues where it stopped: the pipeline's own
stages, each extra dataset, each training (``nnUNetv2_train --c`` resumes from the latest checkpoint), each model's
test predictions (written under a temporary name, renamed when complete), the evaluation and the seed's result file.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_kd.atomic import atomic_path, atomic_write_json
from nnunet_kd.errors import NnunetKdError
from nnunet_kd.pipeline.stages import (
    PLANS,
    STRONG,
    STRONG_NAME,
    STUDENT,
    WEAK,
    WEAK_NAME,
    Model,
    TeacherStudentPipeline,
)

BOX_LABELS, BOX_LABELS_NAME = 505, "LungPhantomBoxLabels"
ALL_STRONG, ALL_STRONG_NAME = 506, "LungPhantomAllStrong"
CONFIDENT, CONFIDENT_NAME = 507, "LungPhantomStudentConfidence"
#: the tumour-probability band that becomes the ignore label in dataset 507 (fixed beforehand, not tuned)
UNSURE_BAND = (0.3, 0.7)
#: the study's model names, in table order
MODEL_NAMES = ("point_guided_teacher", "box_guided_teacher", "box_supervised_teacher", "so_student", "kd_student",
               "mkd_student", "compact_student", "compact_mkd_student", "all_strong", "ignore_box_student",
               "so_student_confidence", "mkd_student_confidence")
#: study row metric -> ``nnunet_kd evaluate`` column (Dice, object F1, DSC-TP as fractions; HD95 in mm)
ROW_METRICS = {"dice": "dice", "hd95": "hd95_mm", "object_f1": "object_f1", "dsc_tp": "dsc_tp"}


@dataclass(frozen=True)
class Step:
    """One resumable unit of a seed's work."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], None]


def run_steps(steps: Sequence[Step], log: Callable[[str], None] = print) -> list[str]:
    """Run the steps that are not done, in order; returns the names of those that ran. An exception stops the
    sequence: the steps after it stay undone and run on the next call."""
    ran = []
    for step in steps:
        if step.done():
            continue
        log(f"[study] {step.name}")
        step.run()
        ran.append(step.name)
    return ran


def write_all_strong_dataset(pipeline: TeacherStudentPipeline) -> Path:
    """Raw dataset 506: 500's and 502's training images (hard links) with 500's labels + 502's ground truth."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    from nnunet_kd.file_links import place_file

    target = pipeline.dataset_folder(ALL_STRONG, ALL_STRONG_NAME)
    if (target / "dataset.json").is_file():
        return target
    clashes = [p for p in pipeline.raw.glob(f"Dataset{ALL_STRONG}_*") if p.name != target.name]
    if clashes:
        raise NnunetKdError(f"another dataset with id {ALL_STRONG} exists: {clashes[0]}")
    strong, weak = pipeline.dataset_folder(STRONG, STRONG_NAME), pipeline.dataset_folder(WEAK, WEAK_NAME)
    info = json.loads((strong / "dataset.json").read_text())
    ending, channels = info["file_ending"], len(info["channel_names"])
    sources = [(strong, sorted((strong / "labelsTr").glob(f"*{ending}"))),
               (weak, sorted((weak / "referenceTr").glob(f"*{ending}")))]
    names = [label.name for _, labels in sources for label in labels]
    if len(set(names)) != len(names):  # phantom cases are named strong_<i> / weak_<i>: unique by construction
        raise NnunetKdError(f"strong and weak datasets share case names; cannot merge them into {target.name}")
    with atomic_path(target) as tmp:  # built under a temporary name, renamed at the end
        for folder, labels in sources:
            for label in labels:
                case = label.name[: -len(ending)]
                for channel in range(channels):
                    image = f"{case}_{channel:04d}{ending}"
                    place_file(folder / "imagesTr" / image, tmp / "imagesTr" / image)
                place_file(label, tmp / "labelsTr" / label.name)
        generate_dataset_json(str(tmp), channel_names=info["channel_names"], labels=info["labels"],
                              num_training_cases=len(names), file_ending=ending, dataset_name=target.name,
                              description="upper bound: strong 500 labelsTr + weak 502 referenceTr (ground truth)",
                              license="CC0 (synthetic data)", converted_by="nnunet_kd.pipeline.study")
    return target


class SeedStudy:
    """The study's steps for one seed, on a pipeline whose profile names the trainers.

    Args:
        pipeline: the seed's pipeline (its work folder, profile and seed).
        kd_trainer: the logit-distillation trainer (``nnUNetTrainerKDStudy`` for the CPU study).
    """

    def __init__(self, pipeline: TeacherStudentPipeline, kd_trainer: str):
        self.pipeline = pipeline
        p = pipeline.profile
        pipeline.dataset_names[BOX_LABELS] = BOX_LABELS_NAME
        pipeline.dataset_names[ALL_STRONG] = ALL_STRONG_NAME
        pipeline.dataset_names[CONFIDENT] = CONFIDENT_NAME
        baseline, so, mkd, compact_mkd = pipeline.models[1:5]
        extra = {
            "box_supervised_teacher": Model("box-supervised teacher", BOX_LABELS, p.plain_trainer,
                                            p.student_configuration, p.teacher_fold),
            "kd_student": Model("KD student", STUDENT, kd_trainer, p.student_configuration, p.student_fold,
                                distills=True),
            "compact_student": Model("compact student", STUDENT, p.plain_trainer, pipeline.compact_configuration,
                                     p.student_fold),
            "all_strong": Model("all-strong upper bound", ALL_STRONG, p.plain_trainer, p.student_configuration,
                                p.student_fold),
            "so_student_confidence": Model("SO student, confidence-aware pseudo-labels", CONFIDENT, p.plain_trainer,
                                           p.student_configuration, p.student_fold),
            "mkd_student_confidence": Model("MKD student, confidence-aware pseudo-labels", CONFIDENT, p.kd_trainer,
                                            p.student_configuration, p.student_fold, distills=True),
        }
        self.extra_models = extra
        models = {"point_guided_teacher": baseline, "box_guided_teacher": pipeline.teacher, "so_student": so,
                  "mkd_student": mkd, "compact_mkd_student": compact_mkd, **extra}
        if p.ignore_label_student:
            models["ignore_box_student"] = pipeline.models[5]
        self.models = {name: models[name] for name in MODEL_NAMES if name in models}

    # ------------------------------------------------------------------------------------------ paths
    @property
    def folder(self) -> Path:
        return self.pipeline.work_dir / "study"

    @property
    def result_file(self) -> Path:
        return self.folder / "seed_result.json"

    @property
    def evaluation_folder(self) -> Path:
        return self.folder / "evaluation"

    def prediction_folder(self, name: str) -> Path:
        return self.folder / "predictions" / name

    # ------------------------------------------------------------------------------------------ steps
    def steps(self) -> list[Step]:
        pipeline = self.pipeline
        steps = [Step(f"pipeline: {s.name}", s.done, s.run) for s in pipeline.stages()
                 if s.name not in ("predict", "evaluate")]
        steps += [
            Step("dataset 505: filled boxes of the strong cases", self._box_labels_done, self._box_labels),
            Step("dataset 506: every training case with its true label", self._all_strong_done, self._all_strong),
            Step("dataset 507: confidence-aware pseudo-labels", self._confident_done, self._confident),
        ]
        for name, model in self.extra_models.items():
            steps.append(Step(f"train {name}", *pipeline.training_step(model)))
        for name in self.models:
            steps.append(Step(f"predict {name}", lambda n=name: self._predicted(n), lambda n=name: self._predict(n)))
        steps += [Step("evaluate", self._evaluated, self._evaluate),
                  Step("seed result", self.result_done, self._write_result)]
        return steps

    def _preprocessed(self, dataset: int, name: str) -> bool:
        plans = self.pipeline.plans_file(dataset, name)
        folder = self.pipeline.dataset_folder(dataset, name, self.pipeline.preprocessed) / f"{PLANS}_3d_fullres"
        raw = self.pipeline.dataset_folder(dataset, name) / "labelsTr"
        return plans.is_file() and folder.is_dir() and \
            len(list(folder.glob("*.pkl"))) == len(list(raw.glob("*.nii.gz")))

    def _box_labels_done(self) -> bool:
        return self._preprocessed(BOX_LABELS, BOX_LABELS_NAME)

    def _box_labels(self) -> None:
        pipeline = self.pipeline
        if not (pipeline.dataset_folder(BOX_LABELS, BOX_LABELS_NAME) / "dataset.json").is_file():
            pipeline.runner.run("study-box-labels", ["nnunet_kd", "boxes-to-labels", "-i", STRONG, "-d", BOX_LABELS,
                                                     "--name", BOX_LABELS_NAME, "--from", "labels"])
        pipeline.plan_with_strong_plans("study-box-labels", BOX_LABELS, BOX_LABELS_NAME)

    def _all_strong_done(self) -> bool:
        return self._preprocessed(ALL_STRONG, ALL_STRONG_NAME)

    def _all_strong(self) -> None:
        write_all_strong_dataset(self.pipeline)
        self.pipeline.plan_with_strong_plans("study-all-strong", ALL_STRONG, ALL_STRONG_NAME)

    def _confident_done(self) -> bool:
        return self._preprocessed(CONFIDENT, CONFIDENT_NAME)

    def _confident(self) -> None:
        pipeline, t = self.pipeline, self.pipeline.teacher
        if not (pipeline.dataset_folder(CONFIDENT, CONFIDENT_NAME) / "dataset.json").is_file():
            command = ["nnunet_kd", "export-pseudo-labels", "-t", f"{STRONG}:{t.trainer}:{t.configuration}:{t.fold}",
                       "-w", WEAK, "-s", STRONG, "-o", CONFIDENT, "--output-name", CONFIDENT_NAME, "-device",
                       pipeline.profile.device, "--ignore-uncertain", *map(str, UNSURE_BAND)]
            if pipeline.profile.device == "cpu":
                command.append("--disable-tta")
            pipeline.runner.run("study-confidence", command)
        pipeline.plan_with_strong_plans("study-confidence", CONFIDENT, CONFIDENT_NAME)

    def _predicted(self, name: str) -> bool:
        return len(list(self.prediction_folder(name).glob("*.nii.gz"))) == self.pipeline.profile.num_test

    def _predict(self, name: str) -> None:
        """Test predictions into ``<name>.partial``, renamed when complete (a killed prediction is redone whole)."""
        out = self.prediction_folder(name)
        partial = out.with_name(f"{name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.pipeline.predict_test_set(self.models[name], partial, f"study-predict-{name}")
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)

    def _evaluated(self) -> bool:
        summary = self.evaluation_folder / "summary.json"
        return summary.is_file() and list(json.loads(summary.read_text())["models"]) == list(self.models)

    def _evaluate(self) -> None:
        strong = self.pipeline.dataset_folder(STRONG, STRONG_NAME)
        command = ["nnunet_kd", "evaluate", "--ref", strong / "labelsTs", "-o", self.evaluation_folder, "--no-plots"]
        for name in self.models:
            command += ["--pred", f"{name}={self.prediction_folder(name)}"]
        self.pipeline.runner.run("study-evaluate", command)

    def result_done(self) -> bool:
        """The result file holds the curves of exactly this study's models (a study given more models redoes it)."""
        if not self.result_file.is_file():
            return False
        return [c["model"] for c in json.loads(self.result_file.read_text())["curves"]] == list(self.models)

    def _write_result(self) -> None:
        rows = study_rows(self.evaluation_folder / "cases.csv", self.pipeline.seed)
        curves = [learning_curve(self.pipeline.model_folder(model), name, self.pipeline.seed)
                  for name, model in self.models.items()]
        atomic_write_json(self.result_file, {"seed": self.pipeline.seed, "rows": rows, "curves": curves})


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value


def study_rows(cases_csv: Path, seed: int) -> list[dict[str, Any]]:
    """``{"model", "seed", "case", "dice", "hd95", "object_f1", "dsc_tp"}`` per row of an evaluation's ``cases.csv``
    (``null`` where a metric is undefined)."""
    with open(cases_csv, newline="") as f:
        return [{"model": row["model"], "seed": seed, "case": row["case"],
                 **{key: _number(row[column]) for key, column in ROW_METRICS.items()}} for row in csv.DictReader(f)]


def learning_curve(model_folder: Path, name: str, seed: int) -> dict[str, Any]:
    """The model's learning curves from ``checkpoint_final.pth``: the Dice of the whole validation cases where the
    trainer measured it (``val_cases_dice``, ``None`` in other epochs; empty for trainers without
    :class:`~nnunet_kd.trainers.validation_curve.ValidationCasesCurveMixin`), nnU-Net's per-epoch pseudo Dice on
    validation patches and its EMA, the training loss and the training time; iterations from ``debug.json``."""
    from nnunet_kd.integrity.checkpoints import load_checkpoint

    logging = load_checkpoint(model_folder / "checkpoint_final.pth", f"{name} (seed {seed})")["logging"]
    debug = json.loads((model_folder / "debug.json").read_text())
    epochs = len(logging["mean_fg_dice"])
    seconds = sum(end - start for start, end in zip(logging["epoch_start_timestamps"],
                                                    logging["epoch_end_timestamps"], strict=False))
    return {"model": name, "seed": seed, "epochs": epochs,
            "iterations": epochs * int(debug["num_iterations_per_epoch"]),
            "training_s": round(seconds, 1),
            "val_cases_dice": [None if math.isnan(float(v)) else round(float(v), 5)
                               for v in logging.get("val_cases_dice", [])],
            "val_dice": [round(float(v), 5) for v in logging["mean_fg_dice"]],
            "val_dice_ema": [round(float(v), 5) for v in logging["ema_fg_dice"]],
            "train_loss": [round(float(v), 5) for v in logging["train_losses"]]}


def run_seed(study: SeedStudy) -> dict[str, Any]:
    """Run the seed's remaining steps; returns its result (rows and curves). The wall time of every call is added
    to ``study/wall_seconds.json``, so a resumed seed reports the time of all its runs."""
    timer = study.folder / "wall_seconds.json"
    study.folder.mkdir(parents=True, exist_ok=True)
    was_complete, start = study.result_done(), time.time()
    try:
        run_steps(study.steps())
    finally:
        if not was_complete:
            previous = json.loads(timer.read_text())["seconds"] if timer.is_file() else 0.0
            atomic_write_json(timer, {"seconds": round(previous + time.time() - start, 1)})
    result = json.loads(study.result_file.read_text())
    result["wall_s"] = json.loads(timer.read_text())["seconds"]
    return result
